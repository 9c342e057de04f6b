"""The SQLite database: the one place where queue and ledger state live.

Opened in WAL mode with synchronous=FULL: every committed state change survives a crash or
power loss, which the job state machine relies on ("commit before the side effect").
The file and the data folder are created readable by the user only.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from poster.errors import UserError

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS artworks (
    id INTEGER PRIMARY KEY,
    content_key TEXT NOT NULL UNIQUE,      -- sha256 over originals + sidecar: re-scans are no-ops
    name TEXT NOT NULL,                    -- the outbox name (file or folder)
    meta TEXT NOT NULL,                    -- the validated sidecar, JSON
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS originals (
    artwork_id INTEGER NOT NULL REFERENCES artworks(id),
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    archive_path TEXT NOT NULL,            -- relative to the data folder
    PRIMARY KEY (artwork_id, idx)
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    artwork_id INTEGER NOT NULL REFERENCES artworks(id),
    target TEXT NOT NULL,
    state TEXT NOT NULL,
    scheduled_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    post_key TEXT NOT NULL UNIQUE,         -- stable per job: idempotency key / lookup marker
    remote_id TEXT,
    url TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (artwork_id, target)
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, scheduled_at);
CREATE TABLE IF NOT EXISTS marks (
    mark_id INTEGER PRIMARY KEY,           -- every hidden ID ever handed out; never reused
    job_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS variants (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    idx INTEGER NOT NULL,
    mark_id INTEGER NOT NULL UNIQUE REFERENCES marks(mark_id),
    path TEXT NOT NULL,                    -- relative to the data folder
    sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    render TEXT NOT NULL,                  -- JSON: policy, step parameters and seeds, strength
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY,
    mark_id INTEGER NOT NULL UNIQUE,
    job_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    target TEXT NOT NULL,
    adapter TEXT NOT NULL,
    url TEXT,
    media_url TEXT,
    remote_id TEXT,
    posted_at TEXT NOT NULL,
    original_sha256 TEXT NOT NULL,
    variant_sha256 TEXT NOT NULL,
    render TEXT NOT NULL,
    variant_fp BLOB NOT NULL DEFAULT x'',   -- perceptual fingerprints (poster.fingerprint), in the chain
    original_fp BLOB NOT NULL DEFAULT x'',
    variant_thumb BLOB NOT NULL DEFAULT x'',
    prev_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_original ON ledger (original_sha256);  -- trace: an artwork's posts
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    at TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT
);
"""


# Columns added to existing tables after their first release: (table, column, declaration).
# Applied idempotently at connect (ALTER TABLE ... ADD COLUMN when missing), so a data folder
# made by an earlier version gains them without losing a row. New tables go into SCHEMA.
COLUMNS: tuple[tuple[str, str, str], ...] = ()


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    for table, column, declaration in COLUMNS:
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def ensure_private_dir(path: Path) -> None:
    """Create the folder for the user only, and tighten it if it already existed more open:
    it holds the hidden-ID key, the ledger and the posting history."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        try:
            path.chmod(mode & 0o700)
            logging.getLogger(__name__).info("%s: made private to the user (mode %o)", path, mode & 0o700)
        except OSError:
            logging.getLogger(__name__).warning("%s: readable by other users, cannot change that", path)


def connect(db_path: Path) -> sqlite3.Connection:
    ensure_private_dir(db_path.parent)
    if not db_path.exists():
        os.close(os.open(db_path, os.O_CREAT | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            conn.close()
            raise UserError(
                f"{db_path}: made by a different version of poster (database schema {version}, "
                f"this version uses {SCHEMA_VERSION}); use the matching poster version"
            )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(SCHEMA)
        _add_missing_columns(conn)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise UserError(
            f"{db_path}: cannot use the database ({exc}); if it is damaged, restore it from your "
            "backup of the data folder (it holds the jobs and the ledger)"
        ) from None
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT: a writer lock from the start, so two processes (the daemon
    and a CLI command) never interleave a read-then-write."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
