"""The SQLite database: the one place where queue and ledger state live.

Opened in WAL mode with synchronous=FULL: every committed state change survives a crash or
power loss, which the job state machine relies on ("commit before the side effect").
The file and every folder poster makes in the data folder are the user's only (0700/0600).

Commands that only read (status, ledger, trace, doctor, backup) open the database read-only
(`connect(..., readonly=True)`), so they work on a read-only disk or a folder the user may
only read, and on a full disk. Every SQLite or disk error is classified once, here
(`storage_error`): full, read-only, busy, damaged, I/O. Only real damage advises a backup.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from poster.errors import UserError
from poster.i18n import _

log = logging.getLogger(__name__)

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
-- RFC 3161 time-stamps (poster.timestamps): of each original's SHA-256, and of ledger heads.
-- A row is recorded `pending` first and tried until a TSA answers with a token that verifies;
-- the token (the TSA's whole DER answer, a .tsr) lives here so every backup carries it.
CREATE TABLE IF NOT EXISTS stamps (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,                    -- original | head
    digest TEXT NOT NULL,                  -- the SHA-256 (hex) in the token's message imprint
    seq INTEGER,                           -- head: the ledger row it pins
    source TEXT,                           -- original: archive path (relative to the data folder)
    chain TEXT,                            -- head: JSON list of the row hashes since the last head
    state TEXT NOT NULL,                   -- pending | stamped | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try TEXT NOT NULL,
    last_error TEXT,
    tsa_url TEXT,
    tsa_name TEXT,                         -- who signed, as named in the token or its certificate
    gen_time TEXT,                         -- the time in the token (UTC)
    token BLOB,
    created_at TEXT NOT NULL,
    UNIQUE (kind, digest)
);
CREATE INDEX IF NOT EXISTS stamps_due ON stamps (state, next_try);
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
COLUMNS: tuple[tuple[str, str, str], ...] = (
    # fixed at intake: every render of this original (preview and post) gets the same visible
    # layout per target (poster.protect.layout_seed / post_seed); NULL in older data folders
    ("originals", "layout_seed", "INTEGER"),
    # when the artist approved the rendered variants (config `approve`); cleared on re-render
    ("jobs", "approved_at", "TEXT"),
)

_TABLES = tuple(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA))


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    for table, column, declaration in COLUMNS:
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _schema_current(conn: sqlite3.Connection) -> bool:
    """True when every table and column this version uses exists (nothing to migrate)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not set(_TABLES) <= tables:
        return False
    for table, column, _declaration in COLUMNS:
        if column not in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}:
            return False
    return True


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- private folders and files -------------------------------------------------------------
def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks (the backup, the trace report and the
    proof bundle all name files by it)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def ensure_private_dir(path: Path) -> Path:
    """The one way poster makes a folder in the data folder: `path` and every missing parent
    are created for the user only (0700), and `path` is tightened if it already existed more
    open. The data folder holds the hidden-ID key, the ledger, the originals and the posting
    history. (`Path.mkdir(parents=True, mode=0o700)` gives the parents the umask's 0755.)"""
    missing: list[Path] = []
    p = path
    while not os.path.lexists(p):
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another process: tightened below if it is `path`
            continue
        os.chmod(d, 0o700)  # a umask can take bits away from 0700, never add them: make it exact
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        try:
            path.chmod(mode & 0o700)
            log.info("%s: made private to the user (mode %o)", path, mode & 0o700)
        except OSError:
            log.warning("%s", _("{path}: readable by other users, cannot change that").format(path=path))
    return path


@cache
def _syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2), or None where there is none."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def sync_files(paths: list[Path]) -> None:
    """Make the files and folders `paths` durable (their data, and for a folder its entries).
    Where the system has syncfs(2), one call per file system flushes them all at once: each
    fsync is a disk flush of its own (5-25 ms on an ordinary disk, however little it writes),
    so a thousand of them cost seconds. Elsewhere each is fsync'ed."""
    syncfs = _syncfs()
    if syncfs is None:
        for p in paths:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return
    import ctypes

    devices: dict[int, Path] = {}
    for p in paths:
        devices.setdefault(os.stat(p).st_dev, p)
    for p in devices.values():
        fd = os.open(p, os.O_RDONLY)
        try:
            if syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), str(p))
        finally:
            os.close(fd)


def write_private(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write `data` to `path` readable by the user only (0600), whatever the umask; with
    `durable`, fsync before returning."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fd, 0o600)
        fh.write(data)
        if durable:
            fh.flush()
            os.fsync(fd)


# -- what went wrong with the disk or the database -----------------------------------------
FULL, READ_ONLY, BUSY, DAMAGED, IO = "full", "read-only", "busy", "damaged", "io"

# SQLite primary result codes (https://sqlite.org/rescode.html) → what the user is told
_SQLITE_KIND = {
    13: FULL,  # SQLITE_FULL
    8: READ_ONLY,  # SQLITE_READONLY (and its extended codes)
    3: READ_ONLY,  # SQLITE_PERM
    5: BUSY,  # SQLITE_BUSY
    6: BUSY,  # SQLITE_LOCKED
    11: DAMAGED,  # SQLITE_CORRUPT
    26: DAMAGED,  # SQLITE_NOTADB
    10: IO,  # SQLITE_IOERR (an ENOSPC in fsync or the -shm file also lands here)
    14: IO,  # SQLITE_CANTOPEN (no permission, a missing folder, no -shm possible)
}
_ERRNO_KIND = {errno.ENOSPC: FULL, errno.EDQUOT: FULL, errno.EROFS: READ_ONLY}
_LOW_SPACE = 256 * 1024  # below this much free space an I/O error is a full disk


class StorageError(UserError):
    """The data folder's disk or database failed. `kind` is one of full, read-only, busy,
    damaged, io; `str()` is the one-line message (only `damaged` suggests a backup)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def free_bytes(folder: Path) -> int | None:
    """Bytes free for this user on the disk holding `folder` (or, before it is made, its
    parent); None when it cannot be asked."""
    if not folder.exists():
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _writable(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return True
    if st.f_flag & os.ST_RDONLY:
        return False
    try:  # os.access answers for the real uid; a probe answers for what this process may do
        fd, name = tempfile.mkstemp(prefix=".poster-probe-", dir=folder)
    except OSError as exc:
        return exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS)
    os.close(fd)
    os.unlink(name)
    return True


def _message(kind: str, folder: Path, file: Path, detail: str) -> str:
    if kind == FULL:
        return _(
            "the disk holding {folder} is full: free some space, then run poster again; nothing was lost"
        ).format(folder=folder)
    if kind == READ_ONLY:
        return _(
            "{folder} is read-only here (a read-only disk or no write permission): status, trace, ledger, "
            "doctor and backup work; run, retry, cancel and confirm need it writable"
        ).format(folder=folder)
    if kind == BUSY:
        return _(
            "{file} is locked by another program for too long ({detail}); try again, and stop any program "
            "other than poster that opens it"
        ).format(file=file, detail=detail)
    if kind == DAMAGED:
        return _(
            "{file}: cannot use the database: it is damaged ({detail}); restore the data folder from your "
            "backup (`poster restore`); `poster ledger export` may still read what is left"
        ).format(file=file, detail=detail)
    return _(
        "{file}: the disk reported an error ({detail}); check the disk and its connection, then try again"
    ).format(file=file, detail=detail)


def storage_error(exc: BaseException, data_dir: Path, file: Path | None = None) -> StorageError | None:
    """What `exc` means for the data folder, as a one-line StorageError; None when `exc` is
    not a disk or database problem (a bug, or an error about some other file)."""
    if isinstance(exc, StorageError):
        return exc
    file = file or data_dir / "poster.db"
    kind: str | None = None
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        kind = _SQLITE_KIND.get(code & 0xFF) if isinstance(code, int) else None
        detail = str(exc)
    elif isinstance(exc, OSError):
        kind = _ERRNO_KIND.get(exc.errno or 0)
        detail = exc.strerror or str(exc)
    if kind is None:
        return None
    if kind in (IO, READ_ONLY, BUSY):
        # SQLite reports a full disk as an I/O error in some places (fsync, the -shm file),
        # and a folder it may not write as "cannot open": ask the file system what is true
        free = free_bytes(data_dir)
        if kind != BUSY and free is not None and free < _LOW_SPACE:
            kind = FULL
        elif kind == IO and data_dir.exists() and not _writable(data_dir):
            kind = READ_ONLY
    return StorageError(kind, _message(kind, data_dir, file, detail))


def write_error(exc: BaseException, data_dir: Path) -> StorageError | None:
    """What an error while poster wrote its own files in the data folder means: as
    `storage_error`, and a write cut short without an errno (numpy's "65537 requested and 5616
    written") on a disk out of space is the full disk. Only for poster's own writes: an
    errno-less OSError elsewhere (an unreadable image) says nothing about the disk."""
    found = storage_error(exc, data_dir)
    if found is None and type(exc) is OSError and exc.errno is None:
        free = free_bytes(data_dir)
        if free is not None and free < _LOW_SPACE:
            found = StorageError(FULL, _message(FULL, data_dir, data_dir, str(exc)))
    return found


@contextmanager
def storage_errors(data_dir: Path, file: Path | None = None) -> Iterator[None]:
    """Turn disk and database errors raised in the block into their one-line StorageError."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        found = storage_error(exc, data_dir, file)
        if found is None or found is exc:
            raise
        raise found from exc


# -- connections -----------------------------------------------------------------------------
class _Snapshot(sqlite3.Connection):
    """A read-only view of a WAL database whose folder may not be written and whose -shm file
    is missing: SQLite cannot open that in place, so a private copy is read and removed on
    close."""

    snapshot_dir: str | None = None

    def close(self) -> None:
        super().close()
        if self.snapshot_dir:
            shutil.rmtree(self.snapshot_dir, ignore_errors=True)
            self.snapshot_dir = None

    def __del__(self) -> None:
        if self.snapshot_dir:
            shutil.rmtree(self.snapshot_dir, ignore_errors=True)


def _open_uri(uri: str) -> sqlite3.Connection:
    conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opening is lazy: read now
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def _connect_readonly(db_path: Path) -> sqlite3.Connection:
    """Open without ever writing, also where SQLite's WAL mode needs help: `mode=ro` reads a
    WAL database when its -shm file exists or can be created; without that, a database
    with no -wal content is the file alone (`immutable`: no other process can be writing a
    file in a folder nobody may write); with -wal content but no -shm, a private copy."""
    uri = db_path.resolve().as_uri()
    try:
        return _open_uri(f"{uri}?mode=ro")
    except sqlite3.OperationalError as exc:
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code not in (8, 14):  # only read-only folders and missing -shm are worked around
            raise
    wal = db_path.with_name(db_path.name + "-wal")
    try:
        wal_bytes = wal.stat().st_size
    except FileNotFoundError:
        wal_bytes = 0
    if wal_bytes == 0:
        return _open_uri(f"{uri}?mode=ro&immutable=1")
    tmp = tempfile.mkdtemp(prefix="poster-read-")
    try:
        copy = Path(tmp) / db_path.name
        shutil.copyfile(db_path, copy)
        shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        conn = sqlite3.connect(copy, timeout=30, isolation_level=None, factory=_Snapshot)
        conn.snapshot_dir = tmp
        conn.execute("PRAGMA query_only=ON")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return conn


def connect(db_path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """The database, created with the current schema if missing. `readonly`: never write
    (read commands); a database that still needs creating or migrating is opened for
    writing instead, which fails with a one-line reason on a read-only folder."""
    data_dir = db_path.parent
    if readonly and db_path.exists():
        with storage_errors(data_dir, db_path):
            conn = _connect_readonly(db_path)
            conn.row_factory = sqlite3.Row
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version == SCHEMA_VERSION and _schema_current(conn):
                    return conn
            except BaseException:
                conn.close()
                raise
            conn.close()
    with storage_errors(data_dir, db_path):
        ensure_private_dir(data_dir)
        if not db_path.exists():
            os.close(os.open(db_path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        with storage_errors(data_dir, db_path):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise UserError(
                    _(
                        "{file}: made by a different version of poster (database schema {found}, this "
                        "version uses {expected}); use the matching poster version"
                    ).format(file=db_path, found=version, expected=SCHEMA_VERSION)
                )
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            if version != SCHEMA_VERSION or not _schema_current(conn):  # no write when nothing changes
                conn.executescript(SCHEMA)
                _add_missing_columns(conn)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        conn.close()
        raise
    return conn


def integrity_problem(conn: sqlite3.Connection, *, quick: bool = True) -> str | None:
    """None if SQLite's own check finds the file sound, else what it found (one line).
    `quick` (PRAGMA quick_check) checks every page and record but not that indexes match
    their tables; the full check (PRAGMA integrity_check) does that too."""
    pragma = "quick_check" if quick else "integrity_check"
    try:
        found = [str(r[0]) for r in conn.execute(f"PRAGMA {pragma}(20)").fetchall()]
    except sqlite3.DatabaseError as exc:
        if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (11, 26):
            return str(exc)
        raise
    if found == ["ok"]:
        return None
    more = f" (+{len(found) - 1})" if len(found) > 1 else ""
    return f"{found[0]}{more}"


def database_file(conn: sqlite3.Connection) -> Path:
    """The file behind `conn` (for messages)."""
    for row in conn.execute("PRAGMA database_list"):
        if row[1] == "main":
            return Path(row[2])
    return Path("poster.db")


def damaged(file: Path, problem: str) -> StorageError:
    """The one-line error for a database file SQLite's integrity check found damaged."""
    detail = _("SQLite integrity check: {found}").format(found=problem)
    return StorageError(DAMAGED, _message(DAMAGED, file.parent, file, detail))


def check_integrity(conn: sqlite3.Connection, db_path: Path | None = None, *, quick: bool = True) -> None:
    """Raise the one-line StorageError (kind `damaged`) naming the file if SQLite finds damage."""
    problem = integrity_problem(conn, quick=quick)
    if problem is not None:
        raise damaged(db_path or database_file(conn), problem)


@contextmanager
def opened(
    db_path: Path, *, readonly: bool = False, check: str | None = None
) -> Iterator[sqlite3.Connection]:
    """`connect` for a block, closed after it; disk and database errors in the block come out
    as one-line StorageErrors. `check`: "quick" or "full" runs SQLite's integrity check first."""
    conn = connect(db_path, readonly=readonly)
    try:
        with storage_errors(db_path.parent, db_path):
            if check is not None:
                check_integrity(conn, db_path, quick=check == "quick")
            yield conn
    finally:
        conn.close()


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT: a writer lock from the start, so two processes (the daemon
    and a CLI command) never interleave a read-then-write."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        # a COMMIT that failed (a full disk) may leave the transaction open: end it, so the
        # connection is usable and no half of it can be committed later
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# -- one `poster run` per data folder ---------------------------------------------------------
@contextmanager
def run_lock(data_dir: Path) -> Iterator[None]:
    """Hold the data folder for one `poster run`: two would both post the same due jobs, and
    start-up recovery would take the other's live post for an interrupted one.

    The lock is flock(2) on the data folder itself (a descriptor of the directory), not on a
    lock file inside it: a file can be deleted while the daemon runs, and a second run would
    then lock a new file of the same name and start. The folder cannot be replaced while it
    holds the database. flock is independent of SQLite's own locks on poster.db, which are
    POSIX (fcntl) locks: on Linux and the BSDs the two kinds never interact, so neither can
    release the other. (Two fcntl locks on one file in one process would: closing any
    descriptor of the file drops all of the process's fcntl locks on it.) The kernel drops
    the lock when the process ends, however it ends: a crashed run leaves nothing stale."""
    ensure_private_dir(data_dir)
    fd = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                _("another `poster run` is already using {folder}; stop it first").format(folder=data_dir)
            ) from None
        except OSError as exc:
            raise UserError(
                _("{folder}: cannot lock the data folder ({reason}); keep it on a local disk").format(
                    folder=data_dir, reason=exc.strerror
                )
            ) from None
        # SQLite quietly opens a file it may not write read-only and fails only at the first
        # write: find out now, before a run starts work it could not record
        if not _writable(data_dir) or not _writable_file(data_dir / "poster.db"):
            raise StorageError(READ_ONLY, _message(READ_ONLY, data_dir, data_dir / "poster.db", ""))
        yield
    finally:
        os.close(fd)


def _writable_file(path: Path) -> bool:
    try:
        os.close(os.open(path, os.O_RDWR))
    except FileNotFoundError:
        return True
    except OSError as exc:
        return exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS)
    return True
