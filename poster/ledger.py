"""The ledger: one append-only, hash-chained row per posted image.

Each row's `row_hash` is SHA-256 over the previous row's hash and this row's canonical
content (its sequence number included), so changing, removing or reordering any row outside
poster breaks the chain from that row on; `verify` names the first bad row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

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
)
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


def _row_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    body = canonical({k: fields[k] for k in HASHED_FIELDS})
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


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
class VerifyResult:
    ok: bool
    rows: int
    first_bad: int | None = None  # seq of the first bad row (or where one is missing)
    problem: str | None = None


def verify(conn: sqlite3.Connection) -> VerifyResult:
    prev = GENESIS
    expected_seq = 1
    count = 0
    for row in conn.execute("SELECT * FROM ledger ORDER BY seq"):
        fields = dict(row)
        count += 1
        if fields["seq"] != expected_seq:
            return VerifyResult(False, count, expected_seq, f"row {expected_seq} is missing")
        if fields["prev_hash"] != prev:
            return VerifyResult(
                False, count, fields["seq"], f"row {fields['seq']} does not follow row {expected_seq - 1}"
            )
        if _row_hash(prev, fields) != fields["row_hash"]:
            return VerifyResult(
                False, count, fields["seq"], f"row {fields['seq']} was changed after it was written"
            )
        prev = fields["row_hash"]
        expected_seq += 1
    return VerifyResult(True, count)


def rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    out = []
    for row in conn.execute("SELECT * FROM ledger ORDER BY seq"):
        d = dict(row)
        d["id"] = format_id(d.pop("mark_id"))
        d["render"] = json.loads(d["render"])
        out.append({k: d[k] for k in EXPORT_FIELDS})
    return out


def find(conn: sqlite3.Connection, mark_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM ledger WHERE mark_id = ?", (mark_id,)).fetchone()
    if row is None:
        return None
    d = dict(row)
    d["id"] = format_id(d.pop("mark_id"))
    d["render"] = json.loads(d["render"])
    return d


def to_csv(items: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for item in items:
        writer.writerow({**item, "render": json.dumps(item["render"], sort_keys=True)})
    return buf.getvalue()
