"""RFC 3161 trusted time-stamps of every original and of the ledger head.

A time-stamping authority (TSA) signs "this SHA-256 existed at time T" with its own key and
clock; anyone can check the signature later with `openssl ts -verify`. poster asks for one:

* per original, of its SHA-256 (the request's message imprint is the file's hash, so the
  token checks against the original file itself, or its `sha256sum`);
* per ledger head, of the last row's hash (the imprint is the row hash: it is the SHA-256 of
  the row's preimage, `ledger.preimage`), which pins every row up to it.

Only those hashes leave the machine. Requests are recorded in the `stamps` table as
`pending` first and tried right after intake and after each posting batch, with a short
deadline; a TSA that does not answer never holds up intake or posting: the stamp is tried
again later (1, 2, 4 … minutes, at most hourly) and shown in `poster status` and `poster
doctor` until it is made. Tokens are stored whole (the TSA's DER answer, a `.tsr`) in the
database, so a backup of the data folder carries them.

Building requests and verifying answers (signature chain to a trust anchor, TSA key usage,
nonce, message imprint) is done by `rfc3161-client`; this module only decides what to stamp,
talks HTTP, and keeps the records. A token is checked against the trust anchors when it
arrives and again by `poster ledger verify`. The anchors are the roots of the default TSAs
(`DEFAULT_TSAS`) plus `[proof] tsa_ca_file`. Each default TSA's root comes from one of two
places: a file shipped in `poster/data/tsa/` (taken from a package registry; provenance in
its README.md), or, for a root no registry ships, the TSA's own download URL, fetched once on
first use, accepted only if its SHA-256 fingerprint is the one pinned here, and kept in the
data folder (`state/tsa-roots/`). Until that root is here, that TSA is skipped like one that
does not answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from poster import __version__, ledger
from poster.i18n import _
from poster.store import ensure_private_dir, iso, now, parse_iso, transaction

if TYPE_CHECKING:
    # requests, cryptography and rfc3161-client are imported by the functions that talk to a
    # TSA or read certificates: `poster status` (which only counts stamps) stays quick to start
    import requests
    from cryptography import x509
    from rfc3161_client import TimeStampResponse

    from poster.config import Config

log = logging.getLogger(__name__)

TRUST_DIR = Path(__file__).with_name("data") / "tsa"
# A TSA answers in well under a second or two; one that hangs costs at most READ_TIMEOUT once
# per process and is then skipped (COOLDOWN), so `poster run --once` stays quick offline.
CONNECT_TIMEOUT = 3.0  # seconds
READ_TIMEOUT = 5.0
REQUEST_DEADLINE = 8.0  # one request, start to last byte
RUN_DEADLINE = 10.0  # one round of stamping after intake or posting
MAX_ANSWER_BYTES = 256 * 1024  # answers are a few kilobytes (token + certificates)
MAX_ROOT_BYTES = 64 * 1024  # a root certificate in PEM is 2-3 kilobytes
MAX_PER_RUN = 20  # stamps per round: a large backlog goes out over several rounds
MAX_BACKOFF = timedelta(hours=1)
COOLDOWN = timedelta(minutes=5)  # a TSA that could not be reached is skipped this long
# Row hashes recorded with a head, to name the first changed row: the rows since the previous
# head, at most this many (a ledger first time-stamped after years of posting is pinned all
# the same; a change before the recorded range is then named at the range's first row).
MAX_CHAIN_RECORD = 10_000
ORIGINAL = "original"
HEAD = "head"


class TsaError(Exception):
    """One TSA could not give a usable token; `str()` is one line saying why."""


class Unreachable(TsaError):
    """The TSA did not answer at all (DNS, connection, timeout): skip it for a while."""


# -- the default TSAs and where trust in each comes from ------------------------------------------
@dataclass(frozen=True)
class BundledRoot:
    """A root certificate shipped in poster/data/tsa/ (taken from a package registry)."""

    file: str


@dataclass(frozen=True)
class PinnedRoot:
    """A root certificate no package registry ships: downloaded from `url` on first use and
    accepted only if its SHA-256 fingerprint is `sha256` (pinned here, from a source other
    than that download)."""

    url: str
    sha256: str  # lower-case hex


@dataclass(frozen=True)
class DefaultTsa:
    name: str  # short, for file names
    tsa_url: str
    root: BundledRoot | PinnedRoot


# The TSAs of config.DEFAULT_TSA_URLS (same order) and the source of each one's root; see
# poster/data/tsa/README.md for how each was checked.
DEFAULT_TSAS: tuple[DefaultTsa, ...] = (
    # FreeTSA's root (self-signed) is in no registry's package; its fingerprint is the one
    # FreeTSA publishes and the one authsign 0.6.1 (PyPI) pins in authsign/trusted/roots.yaml.
    DefaultTsa(
        "freetsa",
        "https://freetsa.org/tsr",
        PinnedRoot(
            "https://freetsa.org/files/cacert.pem",
            "a6379e7cecc05faa3cbf076013d745e327bbbaa38c0b9af22469d4701d18aabc",
        ),
    ),
    # IdenTrust Commercial Root CA 1: byte-identical in certifi (PyPI) and Debian's ca-certificates
    DefaultTsa(
        "identrust", "http://timestamp.identrust.com", BundledRoot("identrust-commercial-root-ca-1.pem")
    ),
)
ROOT_CACHE = Path("state") / "tsa-roots"  # under the data folder


def fingerprint(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA256()).hex()


@cache
def _bundled(file: str) -> tuple[x509.Certificate, ...]:
    from cryptography import x509

    return tuple(x509.load_pem_x509_certificates((TRUST_DIR / file).read_bytes()))


def bundled_anchors() -> tuple[x509.Certificate, ...]:
    """The roots shipped with poster for the default TSAs."""
    return tuple(c for t in DEFAULT_TSAS if isinstance(t.root, BundledRoot) for c in _bundled(t.root.file))


def pinned_default(url: str) -> DefaultTsa | None:
    """The default TSA at `url` if its root is a pinned download."""
    return next((t for t in DEFAULT_TSAS if t.tsa_url == url and isinstance(t.root, PinnedRoot)), None)


def root_path(data_dir: Path, tsa: DefaultTsa) -> Path:
    assert isinstance(tsa.root, PinnedRoot)
    return data_dir / ROOT_CACHE / f"{tsa.name}-{tsa.root.sha256[:16]}.pem"


def _certificates(data: bytes) -> list[x509.Certificate]:
    """The certificates in a PEM file, or the one in a DER file; [] if it is neither."""
    from cryptography import x509

    try:
        return list(x509.load_pem_x509_certificates(data))
    except ValueError:
        pass
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        return []


def _pinned(certs: Iterable[x509.Certificate], pin: str) -> x509.Certificate | None:
    return next((c for c in certs if fingerprint(c) == pin), None)


def cached_root(data_dir: Path, tsa: DefaultTsa, *, warn: bool = True) -> x509.Certificate | None:
    """The pinned root from the data folder, if it was fetched and still has its fingerprint
    (a file that does not is ignored, with a warning unless `warn` is false)."""
    assert isinstance(tsa.root, PinnedRoot)
    path = root_path(data_dir, tsa)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    cert = _pinned(_certificates(data), tsa.root.sha256)
    if cert is None and warn:
        log.warning(
            _("{file}: not the pinned root certificate of {host}; ignored, fetched again when needed").format(
                file=path, host=host(tsa.tsa_url)
            )
        )
    return cert


def cached_roots(data_dir: Path) -> list[x509.Certificate]:
    """Every pinned default root fetched into this data folder (whatever tsa_urls says now:
    tokens made earlier by a TSA no longer configured still verify)."""
    found = []
    for tsa in DEFAULT_TSAS:
        if isinstance(tsa.root, PinnedRoot):
            cert = cached_root(data_dir, tsa)
            if cert is not None:
                found.append(cert)
    return found


def fetch_root(
    tsa: DefaultTsa, data_dir: Path, *, session: requests.Session, deadline: float
) -> x509.Certificate:
    """Download a pinned root, check its fingerprint, keep it in the data folder (private).
    Raises Unreachable, saying why, if it cannot be had: the TSA is then skipped like one that
    does not answer, and tried again later."""
    from cryptography.hazmat.primitives import serialization

    pin = tsa.root
    assert isinstance(pin, PinnedRoot)
    try:
        body = _exchange(
            session,
            "GET",
            pin.url,
            headers={"Accept": "application/x-pem-file, application/pkix-cert"},
            deadline=deadline,
            limit=MAX_ROOT_BYTES,
        )
    except TsaError as exc:
        reason = str(exc).removeprefix(f"{host(pin.url)}: ")  # the URL is named already
        raise Unreachable(
            _("{host}: cannot fetch its root certificate from {url} ({reason})").format(
                host=host(tsa.tsa_url), url=pin.url, reason=reason
            )
        ) from None
    certs = _certificates(body)
    cert = _pinned(certs, pin.sha256)
    if cert is None:
        if certs:
            message = _(
                "{host}: REFUSED the root certificate from {url}: SHA-256 {got}, not the pinned {pin}"
                " (a changed root or an altered download); skipped, tried again later"
            ).format(
                host=host(tsa.tsa_url),
                url=pin.url,
                got=", ".join(fingerprint(c) for c in certs),
                pin=pin.sha256,
            )
        else:
            message = _(
                "{host}: REFUSED what {url} sent: no certificate in it (the pinned root has SHA-256"
                " {pin}); skipped, tried again later"
            ).format(host=host(tsa.tsa_url), url=pin.url, pin=pin.sha256)
        log.warning(message)
        raise Unreachable(message)
    path = root_path(data_dir, tsa)
    try:
        ensure_private_dir(path.parent)
        tmp = path.with_name(path.name + ".tmp")
        with open(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        os.replace(tmp, path)
    except OSError as exc:  # without it kept, `ledger verify` could not check the tokens later
        raise Unreachable(
            _("{host}: cannot keep its root certificate in {file} ({error})").format(
                host=host(tsa.tsa_url), file=path, error=exc.strerror
            )
        ) from None
    log.info(
        _("fetched the root certificate of {host} from {url} (SHA-256 {pin}, as pinned) into {file}").format(
            host=host(tsa.tsa_url), url=pin.url, pin=pin.sha256, file=path
        )
    )
    return cert


def default_anchors(data_dir: Path | None) -> list[x509.Certificate]:
    """The default TSAs' roots: shipped, and pinned ones fetched into `data_dir`."""
    return [*bundled_anchors(), *(cached_roots(data_dir) if data_dir is not None else [])]


def anchors(config: Config) -> list[x509.Certificate]:
    """The roots a token's signer must chain to: the default TSAs' roots (shipped, or fetched
    and pinned into the data folder) and tsa_ca_file."""
    from cryptography import x509

    extra: list[x509.Certificate] = []
    if config.proof.tsa_ca_file is not None:
        extra = x509.load_pem_x509_certificates(config.proof.tsa_ca_file.read_bytes())
    return [*default_anchors(config.data_dir), *extra]


def missing_root(data_dir: Path, tsa_url: str | None) -> str | None:
    """Why a token of `tsa_url` cannot chain to its root, if that root is a pinned default one
    not (or no longer) in the data folder; None otherwise."""
    tsa = pinned_default(tsa_url or "")
    if tsa is None or cached_root(data_dir, tsa, warn=False) is not None:
        return None
    return _("the root certificate of {host} is not in {dir} (`poster doctor` fetches it)").format(
        host=host(tsa.tsa_url), dir=data_dir / ROOT_CACHE
    )


@dataclass(frozen=True)
class Token:
    """A verified time-stamp."""

    response: bytes  # the TSA's DER answer (TimeStampResp), what `openssl ts -verify -in` reads
    digest: bytes  # the SHA-256 it vouches for
    gen_time: datetime  # when, by the TSA's clock (UTC)
    tsa_name: str
    anchor: x509.Certificate  # the trust anchor its signer chains to
    certificates: tuple[x509.Certificate, ...]  # the certificates in the token (signer first)


def _signer(resp: TimeStampResponse) -> tuple[x509.Certificate | None, list[x509.Certificate]]:
    from cryptography import x509

    certs = [x509.load_der_x509_certificate(c) for c in resp.signed_data.certificates]
    infos = list(resp.signed_data.signer_infos)
    signer = None
    if len(infos) == 1:
        si = infos[0]
        signer = next(
            (c for c in certs if c.issuer == si.issuer and c.serial_number == si.serial_number), None
        )
    others = [c for c in certs if c is not signer]
    return signer, ([signer] if signer else []) + others


def _name(resp: TimeStampResponse, signer: x509.Certificate | None) -> str:
    """Who signed: the token's TSA name if it gives a directory name, else the signer's CN."""
    from cryptography import x509

    value = getattr(resp.tst_info.name, "value", None)
    for candidate in (value, signer.subject if signer else None):
        if isinstance(candidate, x509.Name):
            cn = candidate.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            if cn:
                return str(cn[0].value)
            if candidate.rfc4514_string():
                return candidate.rfc4514_string()
    return _("an unnamed TSA")


def _plain(reason: str) -> str:
    """rfc3161-client's and OpenSSL's reasons in plain words."""
    low = reason.lower()
    if "mismatch between messages" in low:
        return _("the token is for another hash (wrong message imprint)")
    if "nonce mismatch" in low:
        return _("the token answers another request (nonce mismatch)")
    if "pkistatus" in low:
        return _("the TSA refused the request")
    if "not yet valid" in low or "has expired" in low:
        return _("the TSA's certificate was not valid at the time in the token")
    if "digest failure" in low or "signature failure" in low or "bad signature" in low:
        return _("the token's signature does not match its content (damaged or altered)")
    if "certificate verify error" in low or "unable to get" in low or "self-signed" in low:
        return _("signed by a certificate that does not chain to a trusted TSA root")
    if "eku" in low:
        return _("the signer's certificate is not for time-stamping (extendedKeyUsage)")
    return reason.splitlines()[0][:200]


def verify(
    response: bytes, digest: bytes, trust: Sequence[x509.Certificate], *, nonce: int | None = None
) -> Token:
    """Check a TSA answer completely: status granted, signature valid and chaining to one of
    `trust` at the token's time, signer certified for time-stamping (critical EKU), nonce
    (when given) and message imprint. Raises TsaError with the reason in plain words."""
    from rfc3161_client import VerificationError, VerifierBuilder, decode_timestamp_response

    try:
        resp = decode_timestamp_response(response)
    except ValueError as exc:
        raise TsaError(
            _("not a time-stamp answer poster can read ({reason})").format(reason=str(exc)[:120])
        ) from None
    signer, certs = _signer(resp)
    # the anchor that issued the chain's top is tried first; each failing anchor costs a check
    issuers = {c.issuer for c in certs}
    ordered = sorted(trust, key=lambda a: a.subject not in issuers)
    first_reason: str | None = None
    for anchor in ordered:
        builder = VerifierBuilder(nonce=nonce) if nonce is not None else VerifierBuilder()
        try:
            builder.add_root_certificate(anchor).build().verify(resp, digest)
        except VerificationError as exc:
            reason = _plain(str(exc))
            # a failed chain (or signature) check may mean "not this anchor"; every later
            # check (nonce, key usage, imprint) only runs once the chain is good
            if not str(exc).startswith("Error while verifying certificates"):
                raise TsaError(reason) from None
            first_reason = first_reason or reason
            continue
        except ValueError as exc:
            raise TsaError(_plain(str(exc))) from None
        gen = resp.tst_info.gen_time
        gen = gen.replace(tzinfo=UTC) if gen.tzinfo is None else gen.astimezone(UTC)
        return Token(response, digest, gen, _name(resp, signer), anchor, tuple(certs))
    raise TsaError(first_reason or _("no trust anchor configured"))


# -- talking to a TSA ---------------------------------------------------------------------------
def host(url: str) -> str:
    return urlsplit(url).hostname or url


def _exchange(
    session: requests.Session,
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str],
    deadline: float,
    limit: int,
) -> bytes:
    """One HTTP exchange with a deadline for the whole of it and a cap on the answer's size
    (no redirects: the URL is the one configured)."""
    import requests

    left = deadline - time.monotonic()
    if left <= 0:
        raise Unreachable(_("{host}: no time left in this round").format(host=host(url)))
    try:
        with session.request(
            method,
            url,
            data=body,
            headers={**headers, "User-Agent": f"poster/{__version__}"},
            timeout=(min(CONNECT_TIMEOUT, left), min(READ_TIMEOUT, left)),
            stream=True,
            allow_redirects=False,
        ) as answer:
            if answer.status_code != 200:
                raise TsaError(
                    _("{host}: answered HTTP {status}").format(host=host(url), status=answer.status_code)
                )
            chunks: list[bytes] = []
            size = 0
            for chunk in answer.iter_content(16384):
                size += len(chunk)
                if size > limit:
                    raise TsaError(
                        _("{host}: answer larger than {limit} bytes").format(host=host(url), limit=limit)
                    )
                if time.monotonic() > deadline:
                    raise Unreachable(_("{host}: answer not complete in time").format(host=host(url)))
                chunks.append(chunk)
            return b"".join(chunks)
    except requests.Timeout:
        raise Unreachable(_("{host}: no answer in time").format(host=host(url))) from None
    except requests.ConnectionError:
        raise Unreachable(_("{host}: cannot connect").format(host=host(url))) from None
    except requests.RequestException as exc:
        raise TsaError(_("{host}: {error}").format(host=host(url), error=type(exc).__name__)) from None


def request(
    url: str,
    data: bytes,
    trust: Sequence[x509.Certificate],
    *,
    session: requests.Session,
    deadline: float,
) -> Token:
    """Ask one TSA to time-stamp SHA-256(`data`) and verify what comes back."""
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    query = TimestampRequestBuilder().data(data).hash_algorithm(HashAlgorithm.SHA256).build()
    body = _exchange(
        session,
        "POST",
        url,
        body=query.as_bytes(),
        headers={"Content-Type": "application/timestamp-query", "Accept": "application/timestamp-reply"},
        deadline=deadline,
        limit=MAX_ANSWER_BYTES,
    )
    try:
        return verify(body, hashlib.sha256(data).digest(), trust, nonce=query.nonce)
    except TsaError as exc:
        raise TsaError(f"{host(url)}: {exc}") from None


# -- the records --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stamp:
    id: int
    kind: str
    digest: str
    seq: int | None
    source: str | None
    chain: tuple[str, ...]
    state: str
    attempts: int
    next_try: datetime
    last_error: str | None
    tsa_url: str | None
    tsa_name: str | None
    gen_time: datetime | None
    token: bytes | None


def _stamp(r: sqlite3.Row) -> Stamp:
    return Stamp(
        r["id"],
        r["kind"],
        r["digest"],
        r["seq"],
        r["source"],
        tuple(json.loads(r["chain"])) if r["chain"] else (),
        r["state"],
        r["attempts"],
        parse_iso(r["next_try"]),
        r["last_error"],
        r["tsa_url"],
        r["tsa_name"],
        parse_iso(r["gen_time"]) if r["gen_time"] else None,
        bytes(r["token"]) if r["token"] is not None else None,
    )


def stamps(conn: sqlite3.Connection, *, kind: str | None = None, state: str | None = None) -> list[Stamp]:
    q, args = "SELECT * FROM stamps WHERE 1=1", []
    if kind:
        q, args = q + " AND kind = ?", [*args, kind]
    if state:
        q, args = q + " AND state = ?", [*args, state]
    return [_stamp(r) for r in conn.execute(q + " ORDER BY id", args)]


def for_original(conn: sqlite3.Connection, sha256: str) -> Stamp | None:
    row = conn.execute("SELECT * FROM stamps WHERE kind = ? AND digest = ?", (ORIGINAL, sha256)).fetchone()
    return None if row is None else _stamp(row)


def covering_head(conn: sqlite3.Connection, seq: int) -> Stamp | None:
    """The first time-stamped head at or after ledger row `seq`: it pins that row."""
    row = conn.execute(
        "SELECT * FROM stamps WHERE kind = ? AND state = 'stamped' AND seq >= ? ORDER BY seq LIMIT 1",
        (HEAD, seq),
    ).fetchone()
    return None if row is None else _stamp(row)


def record_originals(conn: sqlite3.Connection, at: datetime) -> int:
    """A pending stamp for every archived original that has none (new ones, and those taken
    in before time-stamping was switched on). Returns how many were added."""
    with transaction(conn):
        cur = conn.execute(
            "INSERT OR IGNORE INTO stamps (kind, digest, source, state, next_try, created_at)"
            " SELECT ?, o.sha256, MIN(o.archive_path), 'pending', ?, ? FROM originals o"
            " WHERE NOT EXISTS (SELECT 1 FROM stamps s WHERE s.kind = ? AND s.digest = o.sha256)"
            " GROUP BY o.sha256",
            (ORIGINAL, iso(at), iso(at), ORIGINAL),
        )
    return cur.rowcount


def record_head(conn: sqlite3.Connection, at: datetime) -> Stamp | None:
    """A pending stamp of the ledger head if rows were added since the last one. Before the
    head is pinned, the rows it adds are checked: a hash that does not match its row means
    the ledger was changed outside poster, and that is not time-stamped."""
    with transaction(conn):
        last = conn.execute("SELECT seq, row_hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        if last is None:
            return None
        prev_seq = conn.execute("SELECT MAX(seq) FROM stamps WHERE kind = ?", (HEAD,)).fetchone()[0] or 0
        if last["seq"] <= prev_seq:
            return None
        segment = conn.execute("SELECT * FROM ledger WHERE seq > ? ORDER BY seq", (prev_seq,)).fetchall()
        for row in segment:
            fields = dict(row)
            if hashlib.sha256(ledger.preimage(fields["prev_hash"], fields)).hexdigest() != fields["row_hash"]:
                log.error(
                    "%s",
                    _(
                        "ledger row {seq} does not match its hash: not time-stamping it; run `poster "
                        "ledger verify`"
                    ).format(seq=fields["seq"]),
                )
                return None
        conn.execute(
            "INSERT OR IGNORE INTO stamps (kind, digest, seq, chain, state, next_try, created_at)"
            " VALUES (?, ?, ?, ?, 'pending', ?, ?)",
            (
                HEAD,
                last["row_hash"],
                last["seq"],
                json.dumps([r["row_hash"] for r in segment[-MAX_CHAIN_RECORD:]]),
                iso(at),
                iso(at),
            ),
        )
        row = conn.execute(
            "SELECT * FROM stamps WHERE kind = ? AND digest = ?", (HEAD, last["row_hash"])
        ).fetchone()
    return _stamp(row)


class Gone(Exception):
    """What a stamp was for can no longer be time-stamped as recorded."""


def _data(conn: sqlite3.Connection, data_dir: Path, stamp: Stamp) -> bytes:
    """The bytes whose SHA-256 the stamp is for."""
    if stamp.kind == ORIGINAL:
        path = data_dir / (stamp.source or "")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise Gone(
                _("the archived original {file} cannot be read ({error})").format(
                    file=stamp.source, error=exc.strerror
                )
            ) from None
        if hashlib.sha256(data).hexdigest() != stamp.digest:
            raise Gone(_("the archived original {file} was changed").format(file=stamp.source))
        return data
    row = conn.execute("SELECT * FROM ledger WHERE seq = ?", (stamp.seq,)).fetchone()
    if row is None:
        raise Gone(_("ledger row {seq} was removed before it was time-stamped").format(seq=stamp.seq))
    data = ledger.preimage(row["prev_hash"], dict(row))
    if hashlib.sha256(data).hexdigest() != stamp.digest:
        raise Gone(_("ledger row {seq} was changed before it was time-stamped").format(seq=stamp.seq))
    return data


def backoff(attempts: int) -> timedelta:
    """1, 2, 4 … minutes, at most an hour."""
    return min(timedelta(minutes=2 ** min(max(0, attempts - 1), 10)), MAX_BACKOFF)


# -- one round of stamping ------------------------------------------------------------------------
@dataclass
class Round:
    """What one round did: stamps made (by TSA name), still waiting (with why), given up."""

    made: list[Stamp] = field(default_factory=list)
    waiting: list[tuple[Stamp, str]] = field(default_factory=list)
    failed: list[tuple[Stamp, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        if self.made:
            names = sorted({s.tsa_name or "?" for s in self.made})
            out.append(
                _("time-stamped {count} (by {tsa})").format(count=len(self.made), tsa=", ".join(names))
            )
        if self.waiting:
            stamp, why = self.waiting[-1]
            out.append(
                _("time-stamps waiting: {count} ({reason}); next try {when}").format(
                    count=len(self.waiting), reason=why, when=iso(stamp.next_try)
                )
            )
        for stamp, why in self.failed:
            out.append(_("time-stamp given up: {what}: {reason}").format(what=describe(stamp), reason=why))
        return out


def describe(stamp: Stamp) -> str:
    if stamp.kind == HEAD:
        return _("ledger head (row {seq})").format(seq=stamp.seq)
    return _("original {sha}…").format(sha=stamp.digest[:12])


class Stamper:
    """Time-stamps what is pending, for one process: `poster run --once` makes one, the
    daemon keeps one for its life, so a TSA that did not answer is skipped for a while
    (COOLDOWN) instead of costing a timeout on every round."""

    def __init__(self, config: Config, *, session: requests.Session | None = None) -> None:
        import requests

        self.config = config
        self.urls = config.proof.tsa_urls
        self.session = session or requests.Session()
        self._trust: list[x509.Certificate] | None = None
        self._skip_until: dict[str, datetime] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.urls)

    @property
    def trust(self) -> list[x509.Certificate]:
        if self._trust is None:
            self._trust = anchors(self.config)
        return self._trust

    def ensure_root(self, url: str, deadline: float) -> None:
        """Make sure the root that `url`'s tokens chain to is trusted: a pinned default root
        not yet in the data folder (nor in tsa_ca_file) is fetched now. Raises Unreachable."""
        tsa = pinned_default(url)
        if tsa is None or not isinstance(tsa.root, PinnedRoot):
            return
        if _pinned(self.trust, tsa.root.sha256) is not None:
            return
        fetch_root(tsa, self.config.data_dir, session=self.session, deadline=deadline)
        self._trust = None  # read again, with the new root

    def run(
        self, conn: sqlite3.Connection, *, at: datetime | None = None, deadline: float = RUN_DEADLINE
    ) -> Round:
        """Record what needs a stamp (new originals, a ledger head that moved), then try the
        due ones until `deadline` seconds have passed. Never raises: a failure is recorded and
        retried later."""
        done = Round()
        if not self.enabled:
            return done
        at = at or now()
        end = time.monotonic() + deadline
        try:
            record_originals(conn, at)
            record_head(conn, at)
            due = conn.execute(
                "SELECT * FROM stamps WHERE state = 'pending' AND next_try <= ?"
                " ORDER BY next_try, id LIMIT ?",
                (iso(at), MAX_PER_RUN),
            ).fetchall()
            for row in due:
                self._attempt(conn, _stamp(row), at, end, done)
        except Exception as exc:  # stamping must never stop intake or posting
            log.error(
                "%s", _("time-stamping failed: {kind}: {error}").format(kind=type(exc).__name__, error=exc)
            )
            log.debug("time-stamping failed", exc_info=True)
        return done

    def _attempt(self, conn: sqlite3.Connection, stamp: Stamp, at: datetime, end: float, done: Round) -> None:
        try:
            data = _data(conn, self.config.data_dir, stamp)
        except Gone as exc:
            with transaction(conn):
                conn.execute(
                    "UPDATE stamps SET state = 'failed', last_error = ? WHERE id = ?", (str(exc), stamp.id)
                )
            log.error(
                "%s", _("time-stamp of {what} given up: {error}").format(what=describe(stamp), error=exc)
            )
            done.failed.append((stamp, str(exc)))
            return
        reasons = []
        skipped = []
        for url in self.urls:
            if self._skip_until.get(url, at) > at:
                skipped.append(self._skip_until[url])
                continue
            try:
                self.ensure_root(url, min(end, time.monotonic() + REQUEST_DEADLINE))
                deadline = min(end, time.monotonic() + REQUEST_DEADLINE)
                token = request(url, data, self.trust, session=self.session, deadline=deadline)
            except Unreachable as exc:  # the TSA, or the root its tokens need, cannot be had now
                self._skip_until[url] = at + COOLDOWN
                reasons.append(str(exc))
                continue
            except TsaError as exc:
                reasons.append(str(exc))
                continue
            with transaction(conn):
                conn.execute(
                    "UPDATE stamps SET state = 'stamped', token = ?, tsa_url = ?, tsa_name = ?,"
                    " gen_time = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?",
                    (token.response, url, token.tsa_name, iso(token.gen_time), stamp.id),
                )
                stamped = _stamp(conn.execute("SELECT * FROM stamps WHERE id = ?", (stamp.id,)).fetchone())
            log.info("time-stamped %s by %s at %s", describe(stamp), token.tsa_name, iso(token.gen_time))
            done.made.append(stamped)
            return
        if not reasons:  # every TSA is resting after it did not answer: no new attempt made
            with transaction(conn):
                conn.execute("UPDATE stamps SET next_try = ? WHERE id = ?", (iso(min(skipped)), stamp.id))
            return
        why = "; ".join(reasons)
        when = at + backoff(stamp.attempts + 1)
        with transaction(conn):
            conn.execute(
                "UPDATE stamps SET attempts = attempts + 1, next_try = ?, last_error = ? WHERE id = ?",
                (iso(when), why, stamp.id),
            )
        log.warning(
            "%s",
            _("time-stamp of {what} not made yet: {why}; next try {when}").format(
                what=describe(stamp), why=why, when=iso(when)
            ),
        )
        done.waiting.append(
            (_stamp(conn.execute("SELECT * FROM stamps WHERE id = ?", (stamp.id,)).fetchone()), why)
        )


# -- status, doctor -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Summary:
    enabled: bool
    stamped: int
    pending: int
    failed: int
    oldest_pending: datetime | None = None
    next_try: datetime | None = None
    last_error: str | None = None
    failures: tuple[str, ...] = ()

    def problem_lines(self) -> list[str]:
        """One line each for waiting and given-up stamps (nothing when all is well)."""
        out = []
        if self.pending:
            out.append(
                _("time-stamps: {count} waiting since {since} (last try: {reason}); next try {when}").format(
                    count=self.pending,
                    since=iso(self.oldest_pending) if self.oldest_pending else "?",
                    reason=self.last_error or _("not tried yet"),
                    when=iso(self.next_try) if self.next_try else "?",
                )
            )
        if self.failed:
            out.append(
                _("time-stamps: {count} given up: {reasons}").format(
                    count=self.failed, reasons="; ".join(self.failures[:3])
                )
            )
        return out


def summary(conn: sqlite3.Connection, *, enabled: bool) -> Summary:
    counts = dict(conn.execute("SELECT state, count(*) FROM stamps GROUP BY state").fetchall())
    pending = conn.execute(
        "SELECT MIN(created_at), MIN(next_try) FROM stamps WHERE state = 'pending'"
    ).fetchone()
    last = conn.execute(
        "SELECT last_error FROM stamps WHERE state = 'pending' AND last_error IS NOT NULL"
        " ORDER BY next_try DESC LIMIT 1"
    ).fetchone()
    failures = tuple(
        f"{describe(_stamp(r))}: {r['last_error']}"
        for r in conn.execute("SELECT * FROM stamps WHERE state = 'failed' ORDER BY id")
    )
    return Summary(
        enabled=enabled,
        stamped=counts.get("stamped", 0),
        pending=counts.get("pending", 0),
        failed=counts.get("failed", 0),
        oldest_pending=parse_iso(pending[0]) if pending[0] else None,
        next_try=parse_iso(pending[1]) if pending[1] else None,
        last_error=last[0] if last else None,
        failures=failures,
    )


@dataclass(frozen=True)
class Health:
    ok: bool
    message: str


DOCTOR_DATA = b"poster doctor: is the time-stamping authority answering?"


def doctor(conn: sqlite3.Connection, config: Config, *, session: requests.Session | None = None) -> Health:
    """Ask each configured TSA for a token of a fixed test hash (nothing of the user's) and
    check it (fetching a pinned root first if it is not here yet), then add what is waiting
    or given up. OK when a TSA answered with a valid token and nothing was given up."""
    s = summary(conn, enabled=bool(config.proof.tsa_urls))
    if not s.enabled:
        return Health(True, _("time-stamping is off ([proof] tsa_urls = [])"))
    stamper = Stamper(config, session=session)
    results = []
    working = 0
    for url in config.proof.tsa_urls:
        try:
            stamper.ensure_root(url, time.monotonic() + REQUEST_DEADLINE)
            token = request(
                url,
                DOCTOR_DATA,
                stamper.trust,
                session=stamper.session,
                deadline=time.monotonic() + REQUEST_DEADLINE,
            )
        except TsaError as exc:
            results.append(str(exc))
            continue
        working += 1
        results.append(
            _("{host}: answered, token verified ({tsa})").format(host=host(url), tsa=token.tsa_name)
        )
    counts = _("{stamped} stamped, {pending} waiting, {failed} given up").format(
        stamped=s.stamped, pending=s.pending, failed=s.failed
    )
    return Health(working > 0 and not s.failed, f"{'; '.join(results)} ({counts})")


# -- checking what is stored ------------------------------------------------------------------------
@dataclass(frozen=True)
class BadToken:
    stamp: Stamp
    reason: str


@dataclass(frozen=True)
class LedgerCheck:
    chain: ledger.VerifyResult
    tokens: int  # tokens checked (signature and imprint)
    bad: tuple[BadToken, ...]
    last_head: Stamp | None  # the latest time-stamped head that matched
    unstamped_after: int | None  # rows after this seq are not pinned by a time-stamp yet

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.bad


def label(stamp: Stamp) -> str:
    """'time-stamped at 2026-… by www.freetsa.org', for messages and reports."""
    return _("time-stamped at {time} by {tsa}").format(
        time=iso(stamp.gen_time) if stamp.gen_time else "?", tsa=stamp.tsa_name or "?"
    )


def check_tokens(
    conn: sqlite3.Connection, trust: Sequence[x509.Certificate], data_dir: Path | None = None
) -> tuple[list[Stamp], list[BadToken]]:
    """Every stored token checked again: signature chain to `trust` and message imprint
    against the hash it is recorded for. Returns (good, bad). With `data_dir`, a token that
    fails because its TSA's pinned root is missing from it says so."""
    good, bad = [], []
    for stamp in stamps(conn, state="stamped"):
        try:
            verify(stamp.token or b"", bytes.fromhex(stamp.digest), trust)
        except (TsaError, ValueError) as exc:
            missing = missing_root(data_dir, stamp.tsa_url) if data_dir is not None else None
            bad.append(BadToken(stamp, f"{exc}; {missing}" if missing else str(exc)))
            continue
        good.append(stamp)
    return good, bad


def check_ledger(
    conn: sqlite3.Connection, trust: Sequence[x509.Certificate], data_dir: Path | None = None
) -> LedgerCheck:
    """`poster ledger verify`: every token, then the chain against every time-stamped head."""
    good, bad = check_tokens(conn, trust, data_dir)
    heads = [ledger.Head(s.seq or 0, s.digest, label(s), s.chain) for s in good if s.kind == HEAD and s.seq]
    result = ledger.verify(conn, heads)
    pinned = [s for s in good if s.kind == HEAD]
    last = max(pinned, key=lambda s: s.seq or 0) if pinned else None
    last_seq = last.seq or 0 if last else 0
    unstamped = last_seq if result.rows > last_seq else None
    return LedgerCheck(result, len(good) + len(bad), tuple(bad), last, unstamped)


def heads_for(conn: sqlite3.Connection, rows: Iterable[int]) -> dict[int, Stamp | None]:
    return {seq: covering_head(conn, seq) for seq in rows}
