"""The ledger: one append-only, hash-chained row per posted image.

Each row's `row_hash` is SHA-256 over the previous row's hash and this row's canonical
content (its sequence number included), so changing, removing or reordering any row outside
poster breaks the chain from that row on; `verify` names the first bad row.

The perceptual fingerprints (`variant_fp`, `original_fp`, `variant_thumb`; see
poster.fingerprint) are stored as BLOBs so that trace can load 100,000 rows of them in one
query, and enter the row hash as hex: a forged fingerprint (to point a trace elsewhere) breaks
the chain like any other change.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from poster import store
from poster.i18n import _

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq",
    "mark_id",
    "job_id",
    "idx",
    "target",
    "adapter",
    "url",
    "media_url",
    "remote_id",
    "posted_at",
    "original_sha256",
    "variant_sha256",
    "render",
    "variant_fp",
    "original_fp",
    "variant_thumb",
)
BLOB_FIELDS = ("variant_fp", "original_fp", "variant_thumb")
EXPORT_FIELDS = (
    "id",
    "target",
    "url",
    "posted_at",
    "original_sha256",
    "variant_sha256",
    "adapter",
    "media_url",
    "remote_id",
    "job_id",
    "seq",
    "render",
    "seeds",
    "variant_fp",
    "original_fp",
    "variant_thumb",
    "prev_hash",
    "row_hash",
)


def format_id(mark_id: int) -> str:
    """The hidden ID as users see it: 12 hex digits (48 bits)."""
    return f"{mark_id:012x}"


def parse_id(text: str) -> int:
    return int(text, 16)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _hashable(key: str, value: Any) -> Any:
    if key in BLOB_FIELDS:
        return bytes(value or b"").hex()
    return value


def preimage(prev_hash: str, fields: dict[str, Any]) -> bytes:
    """Exactly the bytes whose SHA-256 is the row's hash: the previous row's hash, a newline,
    and the row's canonical JSON. Written out as a file, `sha256sum` prints the row hash and
    `openssl ts -verify -data` checks a time-stamp of it (poster.proof)."""
    body = canonical({k: _hashable(k, fields[k]) for k in HASHED_FIELDS})
    return f"{prev_hash}\n{body}".encode()


def _row_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(preimage(prev_hash, fields)).hexdigest()


@dataclass(frozen=True)
class Entry:
    mark_id: int
    job_id: int
    idx: int
    target: str
    adapter: str
    url: str | None
    media_url: str | None
    remote_id: str | None
    posted_at: str
    original_sha256: str
    variant_sha256: str
    render: str  # canonical JSON
    # perceptual fingerprints (poster.fingerprint.for_files); empty when a file was unreadable
    variant_fp: bytes = b""
    original_fp: bytes = b""
    variant_thumb: bytes = b""


def append(conn: sqlite3.Connection, entry: Entry) -> int:
    """Add one row at the end of the chain. Call inside the transaction that marks the job
    posted, so a post is never recorded without its ledger row or the other way round."""
    last = conn.execute("SELECT seq, row_hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    seq = (last["seq"] + 1) if last else 1
    prev = last["row_hash"] if last else GENESIS
    fields = {"seq": seq, **entry.__dict__}
    conn.execute(
        f"INSERT INTO ledger ({', '.join(HASHED_FIELDS)}, prev_hash, row_hash) "
        f"VALUES ({', '.join('?' * (len(HASHED_FIELDS) + 2))})",
        [fields[k] for k in HASHED_FIELDS] + [prev, _row_hash(prev, fields)],
    )
    return seq


@dataclass(frozen=True)
class Head:
    """A chain head pinned by a verified RFC 3161 time-stamp (poster.timestamps): row `seq` had
    the hash `row_hash` at the time the token names. `rows` are the row hashes recorded with
    it for the rows since the previous pinned head (ending with `row_hash`): only the last is
    vouched for by the token, the others let verify name the first row that changed."""

    seq: int
    row_hash: str
    label: str  # "time-stamped at … by …", for messages
    rows: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows: int
    first_bad: int | None = None  # seq of the first bad row (or where one is missing)
    problem: str | None = None
    heads: int = 0  # time-stamped heads the chain was checked against (all matched when ok)


def verify(conn: sqlite3.Connection, heads: Sequence[Head] = ()) -> VerifyResult:
    """The database file first (SQLite's full integrity check: damage the chain cannot see,
    such as a destroyed page of another table), then the hash chain row by row; with
    `heads`, also the chain against each time-stamped head.

    The chain alone catches a row changed or removed in place, but not a rewrite that also
    recomputes every later hash, a reordering with recomputed hashes, or a deleted tail:
    those leave a consistent chain that no longer ends in a time-stamped hash. Of all
    problems found, the one at the earliest row is reported."""
    damage = store.integrity_problem(conn, quick=False)
    if damage is not None:
        return VerifyResult(
            False,
            0,
            None,
            _(
                "{file} is damaged (SQLite integrity check: {found}); restore the data folder from your "
                "backup (`poster restore`)"
            ).format(file=store.database_file(conn), found=damage),
        )
    prev = GENESIS
    expected_seq = 1
    count = 0
    current: dict[int, str] = {}  # seq -> row hash as stored now
    chain_problem: tuple[int, str] | None = None
    for row in conn.execute("SELECT * FROM ledger ORDER BY seq"):
        fields = dict(row)
        count += 1
        current[fields["seq"]] = fields["row_hash"]
        if chain_problem is not None:
            continue
        if fields["seq"] != expected_seq:
            chain_problem = (expected_seq, f"row {expected_seq} is missing")
        elif fields["prev_hash"] != prev:
            chain_problem = (fields["seq"], f"row {fields['seq']} does not follow row {expected_seq - 1}")
        elif _row_hash(prev, fields) != fields["row_hash"]:
            chain_problem = (fields["seq"], f"row {fields['seq']} was changed after it was written")
        prev = fields["row_hash"]
        expected_seq += 1
    head_problem = _check_heads(current, heads)
    found = sorted(p for p in (chain_problem, head_problem) if p is not None)
    if found:
        seq, problem = found[0]
        return VerifyResult(False, count, seq, problem, heads=len(heads))
    return VerifyResult(True, count, heads=len(heads))


def _check_heads(current: dict[int, str], heads: Sequence[Head]) -> tuple[int, str] | None:
    """The first row that differs from what a time-stamped head pinned, if any."""
    for head in sorted(heads, key=lambda h: h.seq):
        if current.get(head.seq) == head.row_hash:
            continue
        # the recorded hashes name the row; only the last one is vouched for by the token,
        # so a record that does not end in it (altered too) names the head's row itself
        recorded = head.rows if head.rows and head.rows[-1] == head.row_hash else (head.row_hash,)
        start = head.seq - len(recorded) + 1
        first = next(start + i for i, was in enumerate(recorded) if current.get(start + i) != was)
        if first not in current:
            return first, _("row {seq} is missing: the ledger had it when it was {label}").format(
                seq=first, label=head.label
            )
        return first, _(
            "row {first} differs from the ledger as {label} (row {seq} no longer has the "
            "time-stamped hash: rows were changed, reordered or removed and the chain recomputed)"
        ).format(first=first, label=head.label, seq=head.seq)
    return None


def seeds(render: dict[str, Any]) -> dict[str, int]:
    """The random seeds of the visible layers, by step (`2:watermark`): the same seed redraws
    the same watermark layout, so the layout seen in a copy identifies the post."""
    out = {}
    for i, step in enumerate(render.get("steps", [])):
        if isinstance(step, dict) and "seed" in step:
            out[f"{i}:{step.get('use', 'step')}"] = step["seed"]
    return out


def _public(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["id"] = format_id(d.pop("mark_id"))
    d["render"] = json.loads(d["render"])
    d["seeds"] = seeds(d["render"])
    for k in BLOB_FIELDS:
        d[k] = bytes(d[k] or b"").hex()
    return d


def iter_rows(conn: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    """Every row as exported, oldest first, read as it is consumed: an export of a million
    rows holds one at a time, not all of them."""
    for row in conn.execute("SELECT * FROM ledger ORDER BY seq"):
        d = _public(row)
        yield {k: d[k] for k in EXPORT_FIELDS}


def rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return list(iter_rows(conn))


def find(conn: sqlite3.Connection, mark_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM ledger WHERE mark_id = ?", (mark_id,)).fetchone()
    return None if row is None else _public(row)


def get(conn: sqlite3.Connection, seq: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM ledger WHERE seq = ?", (seq,)).fetchone()
    return None if row is None else _public(row)


def fingerprints(conn: sqlite3.Connection, after: int = 0) -> tuple[list[int], list[bytes], list[bytes]]:
    """seq, variant and original fingerprints of every row after seq `after`, in one query
    (trace's index)."""
    q = "SELECT seq, variant_fp, original_fp FROM ledger WHERE seq > ? ORDER BY seq"
    found = conn.execute(q, (after,)).fetchall()
    if not found:
        return [], [], []
    seqs, variant, original = zip(*found, strict=True)
    return list(seqs), list(variant), list(original)


def thumbnails(conn: sqlite3.Connection, seqs: list[int]) -> dict[int, bytes]:
    marks = ",".join("?" * len(seqs))
    q = f"SELECT seq, variant_thumb FROM ledger WHERE seq IN ({marks})"
    return {seq: bytes(t or b"") for seq, t in conn.execute(q, seqs)}


def head(conn: sqlite3.Connection) -> dict[str, Any]:
    """The chain head. Every row hash covers all rows before it, so publishing or timestamping
    this one hash (a post, an e-mail, OpenTimestamps) later proves that every row up to it
    existed then, unchanged."""
    from datetime import UTC, datetime

    last = conn.execute("SELECT seq, row_hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    count = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
    return {
        "rows": count,
        "seq": last["seq"] if last else 0,
        "row_hash": last["row_hash"] if last else GENESIS,
        "at": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }


def write_csv(items: Iterable[dict[str, Any]], out: TextIO) -> None:
    """The rows as CSV (a header, then a line per row), written to `out` as they come."""
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for item in items:
        writer.writerow(
            {
                **item,
                "render": json.dumps(item["render"], sort_keys=True),
                "seeds": json.dumps(item["seeds"], sort_keys=True),
            }
        )


def to_csv(items: Iterable[dict[str, Any]]) -> str:
    buf = io.StringIO()
    write_csv(items, buf)
    return buf.getvalue()


def variant_path(conn: sqlite3.Connection, data_dir: Path | None, row: dict[str, Any]) -> Path | None:
    """The posted variant's file in the data folder, if it is still there."""
    if data_dir is None:
        return None
    found = conn.execute("SELECT path FROM variants WHERE mark_id = ?", (parse_id(row["id"]),)).fetchone()
    if found is None:
        return None
    path = data_dir / found[0]
    return path if path.is_file() else None
