"""`poster proof`: an evidence bundle a third party can check with `openssl ts -verify` and
`sha256sum` alone, without poster and without trusting the artist's computer.

What it proves, and how:

* the original existed at time T: its SHA-256 and an RFC 3161 token over that hash
  (`originals/<sha256>.tsr`);
* the post existed, with that posted copy, at time T': the post's ledger row and every row
  after it up to the next time-stamped chain head, each written out as exactly the bytes
  whose SHA-256 is that row's hash (`ledger/rows/<seq>.txt`: the previous row's hash on the
  first line, the row's canonical JSON on the second), and the head's token
  (`ledger/head-<seq>.tsr`), whose message imprint is the last row's hash;
* the posted copy's hash is in the row (`variant_sha256`), and the copy itself is included
  when it is still in the data folder;
* the TSA certificates needed: the trust anchor(s) (`certs/root-*.pem`) and the
  intermediate CA certificates the tokens carry (`certs/untrusted.pem`, when there are any).

The rows are complete, since a third party must be able to recompute their hashes: they
include the random seeds of those posts' visible watermarks, which the trace report
withholds. README.txt (Japanese and English) lists the commands, with this bundle's values
filled in.

What ARTWORK and POST-ID mean (`resolve`):
* POST-ID: the hidden ID of one posted copy, 12 hex digits (as `poster trace` and
  `poster ledger export` print it);
* ARTWORK: an original image file (its SHA-256 is looked up), the SHA-256 of an original
  (64 hex digits), or the name the artwork had in the outbox (`rabbit.png`, `set/`): all of
  its originals and all of its posts.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from poster import ledger, store, timestamps
from poster.errors import InputError, UserError
from poster.i18n import _
from poster.store import iso

_ID = re.compile(r"^[0-9a-fA-F]{12}$")
_SHA = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Original:
    sha256: str
    name: str
    archive_path: str | None


@dataclass
class Subject:
    """What a bundle is about: originals and posted copies (ledger rows)."""

    label: str
    originals: list[Original]
    rows: list[dict[str, Any]]  # ledger rows as ledger.get returns them


def _originals_by_sha(conn: sqlite3.Connection, sha: str) -> list[Original]:
    row = conn.execute(
        "SELECT sha256, name, archive_path FROM originals WHERE sha256 = ? ORDER BY artwork_id LIMIT 1",
        (sha,),
    ).fetchone()
    return [Original(row[0], row[1], row[2])] if row else []


def _rows_where(conn: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    seqs = [r[0] for r in conn.execute(f"SELECT seq FROM ledger WHERE {where} ORDER BY seq", args)]
    return [row for row in (ledger.get(conn, s) for s in seqs) if row is not None]


def resolve(conn: sqlite3.Connection, ref: str) -> Subject:
    """ARTWORK or POST-ID (see the module docstring) → what goes into the bundle."""
    if _ID.match(ref):
        row = ledger.find(conn, ledger.parse_id(ref))
        if row is None:
            raise InputError(
                _("{ref}: no posted copy has this hidden ID (see `poster ledger export`)").format(ref=ref)
            )
        originals = _originals_by_sha(conn, row["original_sha256"]) or [
            Original(row["original_sha256"], row["original_sha256"][:12], None)
        ]
        return Subject(_("post {id}").format(id=row["id"]), originals, [row])
    path = Path(ref).expanduser()
    if _SHA.match(ref) or path.is_file():
        sha = ref.lower() if _SHA.match(ref) else store.sha256_file(path)
        originals = _originals_by_sha(conn, sha)
        if not originals:
            raise InputError(
                _("{ref}: no original with SHA-256 {sha} was taken in from the outbox").format(
                    ref=ref, sha=sha
                )
            )
        rows = _rows_where(conn, "original_sha256 = ?", (sha,))
        return Subject(originals[0].name, originals, rows)
    found = conn.execute(
        "SELECT DISTINCT a.id FROM artworks a LEFT JOIN originals o ON o.artwork_id = a.id"
        " WHERE a.name = ? OR o.name = ? ORDER BY a.id",
        (ref, ref),
    ).fetchall()
    if not found:
        raise InputError(
            _(
                "{ref}: not a hidden ID (12 hex digits), an original's file or SHA-256, or the name "
                "of an artwork taken in from the outbox"
            ).format(ref=ref)
        )
    if len(found) > 1:
        shas = [
            r[0][:16]
            for r in conn.execute(
                f"SELECT sha256 FROM originals WHERE artwork_id IN ({','.join('?' * len(found))})",
                [f[0] for f in found],
            )
        ]
        raise InputError(
            _("{ref}: {count} artworks have this name; give the original's SHA-256 instead: {shas}").format(
                ref=ref, count=len(found), shas=", ".join(f"{s}…" for s in shas)
            )
        )
    artwork = found[0][0]
    originals = [
        Original(r[0], r[1], r[2])
        for r in conn.execute(
            "SELECT sha256, name, archive_path FROM originals WHERE artwork_id = ? ORDER BY idx", (artwork,)
        )
    ]
    rows = _rows_where(conn, "job_id IN (SELECT id FROM jobs WHERE artwork_id = ?)", (artwork,))
    return Subject(ref, originals, rows)


# -- writing ------------------------------------------------------------------------------------
@dataclass
class Bundle:
    dir: Path
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # what README.txt tells a third party to run


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-")[:40] or "root"


def _cn(cert: x509.Certificate) -> str:
    found = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(found[0].value) if found else cert.subject.rfc4514_string()


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _intermediates(token: timestamps.Token) -> list[x509.Certificate]:
    """The CA certificates a token carries between its signer and its trust anchor."""
    out = []
    for cert in token.certificates:
        try:
            ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            ca = False
        if ca and cert != token.anchor:
            out.append(cert)
    return out


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


class _Writer:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.files: list[Path] = []

    def write(self, rel: str, data: bytes) -> Path:
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files.append(path)
        return path


def write(
    conn: sqlite3.Connection,
    subject: Subject,
    out: Path,
    trust: list[x509.Certificate],
    data_dir: Path | None,
) -> Bundle:
    """Write the bundle for `subject` into `out` (created; must be empty if it exists)."""
    if out.exists() and any(out.iterdir()):
        raise UserError(_("{dir}: not empty; give a new folder for the bundle").format(dir=out))
    bundle = Bundle(out)
    w = _Writer(out)
    anchors: dict[str, x509.Certificate] = {}
    carried: dict[str, x509.Certificate] = {}
    checks: list[tuple[str, str]] = []  # (what it shows, command)

    def verified(stamp: timestamps.Stamp) -> timestamps.Token | None:
        try:
            token = timestamps.verify(stamp.token or b"", bytes.fromhex(stamp.digest), trust)
        except timestamps.TsaError as exc:
            missing = timestamps.missing_root(data_dir, stamp.tsa_url) if data_dir is not None else None
            bundle.warnings.append(
                _("{what}: its time-stamp does not verify ({reason}); left out").format(
                    what=timestamps.describe(stamp), reason=f"{exc}; {missing}" if missing else exc
                )
            )
            return None
        anchors[_fingerprint(token.anchor)] = token.anchor
        for cert in _intermediates(token):
            carried.setdefault(_fingerprint(cert), cert)
        return token

    def root_file(token: timestamps.Token) -> str:
        return f"certs/root-{_slug(_cn(token.anchor))}-{_fingerprint(token.anchor)[:8]}.pem"

    def verify_cmd(tsr: str, what: str, token: timestamps.Token) -> str:
        # the TSA's own certificate is in the token; intermediates it carries are given too
        untrusted = "-untrusted certs/untrusted.pem " if _intermediates(token) else ""
        return (
            f"openssl ts -verify -in {tsr} {what} -CAfile {root_file(token)} "
            f"{untrusted}-attime {_epoch(token.gen_time)}"
        )

    # 1. originals and their tokens
    stamped_originals = []
    for orig in subject.originals:
        w.write(f"originals/{orig.sha256}.sha256", f"{orig.sha256}  {orig.name}\n".encode())
        stamp = timestamps.for_original(conn, orig.sha256)
        token = verified(stamp) if stamp is not None and stamp.state == "stamped" else None
        if token is None:
            if stamp is None or stamp.state != "stamped":
                bundle.warnings.append(
                    _("original {name}: not time-stamped yet ({state})").format(
                        name=orig.name, state=stamp.state if stamp else _("never requested")
                    )
                )
            continue
        tsr = f"originals/{orig.sha256}.tsr"
        w.write(tsr, token.response)
        stamped_originals.append((orig, token))
        checks.append(
            (
                f"original {orig.name}: {iso(token.gen_time)} ({token.tsa_name})",
                verify_cmd(tsr, f"-digest {orig.sha256}", token),
            )
        )

    # 2. the posts' rows, the chain up to the next time-stamped head, the heads' tokens
    heads: dict[int, tuple[timestamps.Stamp, timestamps.Token]] = {}
    unpinned = []
    for row in subject.rows:
        head = timestamps.covering_head(conn, row["seq"])
        token = verified(head) if head is not None else None
        if head is None or token is None:
            unpinned.append(row)
            continue
        heads[head.seq or 0] = (head, token)
    if subject.rows:
        first = min(r["seq"] for r in subject.rows)
        last = max([*heads, *(r["seq"] for r in unpinned)])
        chain_lines = []
        for seq in range(first, last + 1):
            raw = conn.execute("SELECT * FROM ledger WHERE seq = ?", (seq,)).fetchone()
            if raw is None:
                raise UserError(_("ledger row {seq} is missing; run `poster ledger verify`").format(seq=seq))
            fields = dict(raw)
            data = ledger.preimage(fields["prev_hash"], fields)
            rel = f"ledger/rows/{seq:06d}.txt"
            w.write(rel, data)
            chain_lines.append(f"{hashlib.sha256(data).hexdigest()}  {rel}\n")
        w.write("ledger/chain.sha256", "".join(chain_lines).encode())
        checks.append(
            ("ledger rows: each file's SHA-256 is that row's hash", "sha256sum -c ledger/chain.sha256")
        )
        checks.append(
            ("ledger links: each file's first line is the previous row's hash", "head -qn1 ledger/rows/*.txt")
        )
        for seq, (_head, token) in sorted(heads.items()):
            tsr = f"ledger/head-{seq:06d}.tsr"
            w.write(tsr, token.response)
            checks.append(
                (
                    f"ledger up to row {seq}: {iso(token.gen_time)} ({token.tsa_name})",
                    verify_cmd(tsr, f"-data ledger/rows/{seq:06d}.txt", token),
                )
            )
        for row in unpinned:
            bundle.warnings.append(
                _("post {id} (ledger row {seq}): no time-stamped ledger head covers it yet").format(
                    id=row["id"], seq=row["seq"]
                )
            )
    for row in subject.rows:
        summary = {
            k: row[k]
            for k in ("id", "seq", "target", "url", "posted_at", "original_sha256", "variant_sha256")
        }
        w.write(
            f"posts/{row['id']}.json", (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode()
        )
        copy = _variant(conn, data_dir, row)
        if copy is not None:
            rel = f"posts/{row['id']}{copy.suffix.lower()}"
            w.write(rel, copy.read_bytes())
            checks.append(
                (f"posted copy {row['id']}: SHA-256 = variant_sha256 of row {row['seq']}", f"sha256sum {rel}")
            )

    if not stamped_originals and not heads:
        shutil.rmtree(out, ignore_errors=True)
        raise UserError(
            _("{what}: nothing is time-stamped yet; see `poster status` for waiting time-stamps").format(
                what=subject.label
            )
        )

    # 3. certificates
    for cert in anchors.values():
        w.write(
            f"certs/root-{_slug(_cn(cert))}-{_fingerprint(cert)[:8]}.pem", cert.public_bytes(Encoding.PEM)
        )
    untrusted = [c for fp, c in carried.items() if fp not in anchors]
    if untrusted:
        w.write("certs/untrusted.pem", b"".join(c.public_bytes(Encoding.PEM) for c in untrusted))

    # 4. README and SHA256SUMS
    bundle.commands = [cmd for _what, cmd in checks]
    readme = _readme(subject, stamped_originals, sorted(heads.items()), checks, list(anchors.values()))
    w.write("README.txt", readme.encode())
    sums = "".join(f"{store.sha256_file(p)}  {p.relative_to(out).as_posix()}\n" for p in sorted(w.files))
    w.write("SHA256SUMS", sums.encode())
    bundle.commands.insert(0, "sha256sum -c SHA256SUMS")
    bundle.files = w.files
    return bundle


def _variant(conn: sqlite3.Connection, data_dir: Path | None, row: dict[str, Any]) -> Path | None:
    """The posted copy, only while its bytes are still the ones the ledger row hashed."""
    path = ledger.variant_path(conn, data_dir, row)
    return path if path is not None and store.sha256_file(path) == row["variant_sha256"] else None


def _readme(
    subject: Subject,
    originals: list[tuple[Original, timestamps.Token]],
    heads: list[tuple[int, tuple[timestamps.Stamp, timestamps.Token]]],
    checks: list[tuple[str, str]],
    roots: list[x509.Certificate],
) -> str:
    ja_orig = (
        "\n".join(
            f"  - {o.name}: SHA-256 {o.sha256}\n    {iso(t.gen_time)} に存在（時刻認証局: {t.tsa_name}）"
            for o, t in originals
        )
        or "  （この束には原画のタイムスタンプがありません）"
    )
    en_orig = (
        "\n".join(
            f"  - {o.name}: SHA-256 {o.sha256}\n    existed at {iso(t.gen_time)} according to {t.tsa_name}"
            for o, t in originals
        )
        or "  (no time-stamp of an original in this bundle)"
    )
    posts = (
        "\n".join(
            f"  - {r['id']}: {r['target']} {r['url'] or ''} ({r['posted_at']}), row {r['seq']}, "
            f"variant_sha256 {r['variant_sha256']}"
            for r in subject.rows
        )
        or "  -"
    )
    head_lines = (
        "\n".join(f"  - row {seq}: {iso(t.gen_time)} ({t.tsa_name})" for seq, (_s, t) in heads) or "  -"
    )
    root_lines = "\n".join(
        f"  - certs/root-{_slug(_cn(c))}-{_fingerprint(c)[:8]}.pem: {c.subject.rfc4514_string()}\n"
        f"    SHA-256 fingerprint {_fingerprint(c)}"
        for c in roots
    )
    commands = "\n".join(
        f"# {what}\n$ {cmd}\n"
        for what, cmd in [("bundle intact / 束が壊れていない", "sha256sum -c SHA256SUMS"), *checks]
    )
    return f"""poster evidence bundle / 証拠一式: {subject.label}
================================================================

日本語
------
この束は、原画と投稿がいつ存在したかを、第三者が openssl と sha256sum だけで確かめられるようにした
ものです。作者のコンピューターや poster を信用する必要はありません。時刻は作者ではなく、RFC 3161
の時刻認証局（TSA）が自分の鍵と時計で署名したものです。TSA に送られたのはハッシュ値だけです。

原画（SHA-256 とタイムスタンプ）:
{ja_orig}

投稿（台帳の行）:
{posts}

台帳のタイムスタンプ（その行までの全行を固定します）:
{head_lines}

確かめ方（この束のフォルダで、下の「コマンド」の $ の行を順に実行します）:
1. sha256sum -c SHA256SUMS: 束のファイルが壊れていないこと（これ自体は証明ではありません）。
2. originals/*.tsr: 「Verification: OK」なら、その SHA-256 の原画がトークンの時刻に存在したことを
   TSA が証明しています。原画ファイルを受け取った場合は sha256sum でその値と一致するか確かめます。
   時刻は openssl ts -reply -in ファイル.tsr -text の「Time stamp」でも見られます。
3. ledger/rows/*.txt: 各ファイルは台帳の1行で、1行目が前の行のハッシュ、2行目がその行の内容
   （JSON）です。sha256sum -c ledger/chain.sha256 で各ファイルのハッシュを、head -qn1 で各ファイル
   の1行目が直前のファイルのハッシュと同じであることを確かめます。
4. ledger/head-*.tsr: 最後の行のファイルそのものに対する TSA の署名です。「Verification: OK」なら、
   投稿の行（variant_sha256 が投稿された画像の SHA-256）がその時刻までに台帳にあったことになります。
5. posts/: 投稿された画像（残っていれば）と行の要約。sha256sum の値が行の variant_sha256 と同じです。

信頼の根拠: -CAfile に渡す certs/root-*.pem は TSA のルート証明書です。この束の中のコピーを
そのまま信用せず、指紋（下記）を TSA が公開している値や OS の証明書ストアと照合してください。
-attime はトークンの時刻で証明書を確かめる指定です（RFC 3161 の考え方。期限切れの TSA 証明書でも、
署名した時点で有効だったかを確かめられます）。

English
-------
This bundle lets anyone check, with openssl and sha256sum alone, when an original and its posts
existed, without trusting the artist's computer or poster: the times are signed by an RFC 3161
time-stamping authority (TSA) with its own key and clock. Only hashes were sent to the TSA.

Originals (SHA-256 and time-stamp):
{en_orig}

Posts (ledger rows):
{posts}

Ledger time-stamps (each pins every row up to it):
{head_lines}

How to check (in this folder, run the lines starting with $ under "Commands", in order):
1. sha256sum -c SHA256SUMS: nothing in the bundle was damaged (not a proof by itself).
2. originals/*.tsr: "Verification: OK" means the TSA vouches that the original with that SHA-256
   existed at the token's time. If you were given the original file, check that sha256sum prints
   the same value. openssl ts -reply -in FILE.tsr -text shows the "Time stamp".
3. ledger/rows/*.txt: each file is one ledger row: line 1 is the previous row's hash, line 2 the
   row's content (JSON). sha256sum -c ledger/chain.sha256 checks each file's hash; head -qn1 shows
   that each file's first line is the hash of the file before it.
4. ledger/head-*.tsr: the TSA's signature over the last row file itself. "Verification: OK" means
   the post's row (variant_sha256 is the SHA-256 of the posted image) was in the ledger by then.
5. posts/: the posted image (if it was still kept) and a summary of its row; its sha256sum equals
   the row's variant_sha256.

Where trust comes from: certs/root-*.pem (given to -CAfile) are the TSAs' root certificates. Do not
trust the copies in this bundle blindly: compare their fingerprints (below) with what the TSA
publishes or with your system's certificate store. -attime checks the certificates as of the
token's time (as RFC 3161 intends: a TSA certificate that has expired since still proves what it
signed while it was valid).

Roots / ルート証明書:
{root_lines}

Commands / コマンド
-------------------
{commands}"""
