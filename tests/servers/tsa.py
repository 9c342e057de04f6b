"""A real RFC 3161 time-stamping authority on 127.0.0.1: OpenSSL's `openssl ts -reply` behind
the stand-in HTTP server, with its own root CA, an intermediate CA and a TSA certificate
(extendedKeyUsage critical timeStamping), all made by `openssl` in a temp dir.

`TsaServer.mode` makes it misbehave on purpose, the way a broken or hostile TSA (or a
man in the middle of plain HTTP) could:

* `ok`             answer the query as a TSA should;
* `wrong-imprint`  answer with a valid token for a different hash;
* `rogue`          answer with a token signed by another PKI (a root poster does not trust);
* `tamper`         answer with a valid token with one bit of its signed content changed.

It also serves its PKI's root certificate at `GET /cacert.pem` (`root_url`), the way FreeTSA
publishes its root for poster to fetch and pin; `root_body` replaces what it serves (another
certificate, a page that is no certificate). Scripted HTTP failures
(`server.fail("POST", "/tsr", 503, times=2)`) come from the base.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rfc3161_client._rust import parse_timestamp_request

from tests.servers.base import HttpError, Request, Response, StandInServer

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]


def _openssl(*args: str, cwd: Path) -> bytes:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


@dataclass(frozen=True)
class Pki:
    """A root CA → intermediate CA → TSA certificate chain and an `openssl ts` config."""

    dir: Path
    root: Path  # the trust anchor (PEM)
    intermediate: Path
    tsa_cert: Path
    tsa_key: Path
    config: Path

    @property
    def name(self) -> str:
        return self.dir.name


# rfc3161-client parses DER strictly: the certificates in a token form a SET OF, which DER
# orders by encoding. `openssl ts -reply` writes the signer's certificate first, then the
# chain, so that order is the sorted one only while the intermediate's encoding is the larger
# (as in FreeTSA's and IdenTrust's answers). `sorted_set=False` makes a PKI whose tokens break
# that rule, like answers poster has to refuse (see test_unparsable_answer_tries_the_next_tsa).
PADDING = 'nsComment="' + "an intermediate CA of the poster test suite, made larger than its TSA " * 2 + '"\n'


def make_pki(folder: Path, name: str, *, sorted_set: bool = True) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "intermediate.ext").write_text(
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n" + (PADDING if sorted_set else "")
    )
    (folder / "tsa.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n"
        "extendedKeyUsage=critical,timeStamping\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n"
    )
    _openssl(
        "req", "-x509", *EC, "-nodes", "-keyout", "root.key", "-out", "root.pem", "-days", "3650",
        "-subj", f"/O=poster tests/CN={name} root CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    for stem, issuer, ext, subject in (
        ("intermediate", "root", "intermediate.ext", f"/CN={name} intermediate CA"),
        ("tsa", "intermediate", "tsa.ext", f"/CN={name} TSA"),
    ):
        _openssl(
            "req", "-new", *EC, "-nodes", "-keyout", f"{stem}.key", "-out", f"{stem}.csr",
            "-subj", f"/O=poster tests{subject}",
            cwd=folder,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{stem}.csr", "-CA", f"{issuer}.pem", "-CAkey", f"{issuer}.key",
            "-CAcreateserial", "-out", f"{stem}.pem", "-days", "3000", "-extfile", ext, "-sha256",
            cwd=folder,
        )  # fmt: skip
    (folder / "chain.pem").write_bytes((folder / "intermediate.pem").read_bytes())
    (folder / "serial").write_text("01\n")
    config = folder / "ts.cnf"
    config.write_text(
        f"""[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {folder}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/chain.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.4146.2.3
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""
    )
    return Pki(
        folder,
        folder / "root.pem",
        folder / "intermediate.pem",
        folder / "tsa.pem",
        folder / "tsa.key",
        config,
    )


def reply(pki: Pki, query: bytes) -> bytes:
    """`openssl ts -reply` for one DER query (a whole TimeStampResp, DER)."""
    work = pki.dir / f"q-{threading.get_ident()}"
    work.mkdir(exist_ok=True)
    (work / "query.tsq").write_bytes(query)
    _openssl(
        "ts", "-reply", "-config", str(pki.config), "-queryfile", "query.tsq", "-out", "reply.tsr",
        cwd=work,
    )  # fmt: skip
    return (work / "reply.tsr").read_bytes()


def query_for(digest_hex: str, *, nonce: bool = True) -> bytes:
    """A query made by `openssl ts -query` (not by poster) for a SHA-256 digest."""
    args = ["ts", "-query", "-digest", digest_hex, "-sha256", "-cert"]
    if not nonce:
        args.append("-no_nonce")
    return subprocess.run(["openssl", *args], capture_output=True, check=True).stdout


def flip_imprint(token: bytes, digest: bytes) -> bytes:
    """The token with one bit of its message imprint (inside the signed TSTInfo) flipped:
    what a corrupted download or an edit in transit looks like."""
    at = token.find(digest)
    if at < 0:
        raise RuntimeError("the digest is not in the token")
    return token[:at] + bytes([token[at] ^ 0x01]) + token[at + 1 :]


class TsaServer(StandInServer):
    def __init__(self, pki: Pki, rogue: Pki) -> None:
        super().__init__()
        self.pki = pki
        self.rogue = rogue
        self.mode = "ok"
        self.answered = 0
        self._ts_lock = threading.Lock()  # `openssl ts -reply` keeps a serial file
        self.root_body: bytes = pki.root.read_bytes()
        self.route("POST", r"/tsr", self.stamp)
        self.route("GET", r"/cacert\.pem", self.root)

    @property
    def tsr_url(self) -> str:
        return f"{self.url}/tsr"

    @property
    def root_url(self) -> str:
        return f"{self.url}/cacert.pem"

    def root(self, _req: Request, _m: Any) -> Response:
        return Response(200, self.root_body, content_type="application/x-pem-file")

    def stamp(self, req: Request, _m: Any) -> Response:
        if req.header("content-type") != "application/timestamp-query":
            raise HttpError(415, "expected application/timestamp-query")
        with self._ts_lock:
            if self.mode == "wrong-imprint":
                # the same query (nonce included) with another hash in its message imprint
                asked = parse_timestamp_request(req.body).message_imprint.message
                other = hashlib.sha256(b"not what was asked " + asked).digest()[: len(asked)]
                body = reply(self.pki, req.body.replace(asked, other))
            elif self.mode == "rogue":
                body = reply(self.rogue, req.body)
            else:
                body = reply(self.pki, req.body)
                if self.mode == "tamper":
                    body = flip_imprint(body, parse_timestamp_request(req.body).message_imprint.message)
            self.answered += 1
        return Response(200, body, content_type="application/timestamp-reply")


def ca_bundle(folder: Path, *pkis: Pki) -> Path:
    """One PEM file with the roots of `pkis`: what `[proof] tsa_ca_file` points at."""
    path = folder / "tsa-roots.pem"
    path.write_bytes(b"".join(p.root.read_bytes() for p in pkis))
    return path
