"""`poster backup DEST` and `poster restore BACKUP DIR`.

A backup is a folder that mirrors the data folder's irreplaceable part, plus a manifest:

    DEST/poster.db              the database (jobs, ledger, and any table a later version adds)
    DEST/mark.key               the hidden-ID key (without it no posted copy can be traced)
    DEST/archive/ab/abcd….png   the originals, content-addressed as in the data folder
    DEST/variants/JOB/…         the rendered copies that were (or will be) posted
    DEST/poster-backup.json     SHA-256 and size of every file above, the ledger head, row counts

It is consistent while `poster run` is posting: the database is copied with SQLite's online
backup API in one step, which reads one snapshot (a WAL reader blocks no writer and sees no
half-done transaction), and the files are listed after that snapshot. Originals and variants
are written once and never changed, and each is on disk before the row that names it is
committed, so every file the copied database refers to is there to be copied. The copy is
table-agnostic: whatever tables the database holds come along.

DEST must be new, empty, or an earlier backup of the same data folder (same key), which is
then refreshed: new files are copied, files already there (same size) are kept, and the
database and manifest are replaced last, each by an atomic rename. Anything else is refused,
so a typo cannot mix a backup into unrelated files. A database SQLite finds damaged is not
backed up (an earlier good backup is never overwritten with a damaged one).

Left out on purpose: `posted/` and `handoff/` (what platforms got; the ledger records it),
`state/` (tokens: credentials never go into a backup), the trace index cache and the log.

`restore` checks every file against the manifest first, copies into a new or empty data
folder (or one just made by `poster init` that has posted nothing), and then holds back every
job that was due but not finished when the backup was taken: the old data folder may have
posted it since. Such a job becomes `uncertain`; `poster run` looks it up where the platform
allows (and posts it only if it is not there), otherwise the user settles it with `poster
confirm`. Jobs due later keep their time.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from poster import __version__, jobs, ledger, markkey, store
from poster.errors import UserError
from poster.i18n import _

MANIFEST = "poster-backup.json"
FORMAT = "poster-backup"
VERSION = 1
DB_NAME = "poster.db"
FOLDERS = ("archive", "variants")  # written once, never changed: copied file by file
_CHUNK = 1 << 20
# what a data folder fresh from `poster init` may hold (restore may replace it)
_FRESH = {"poster.db", "poster.db-wal", "poster.db-shm", "mark.key", "poster.log", "outbox", "archive"}
_FRESH |= {"variants", "posted", "run.lock"}


@dataclass(frozen=True)
class BackupResult:
    dest: Path
    refreshed: bool  # DEST held an earlier backup
    copied: int  # files copied this time
    kept: int  # files already in DEST
    bytes: int  # size of everything in the backup
    tables: dict[str, int]  # rows per table in the copied database
    ledger_rows: int
    ledger_head: str
    damaged: list[str] = field(default_factory=list)  # files whose bytes do not match the database


@dataclass(frozen=True)
class RestoreResult:
    data_dir: Path
    taken_at: str  # when the backup was made
    files: int
    tables: dict[str, int]
    ledger_rows: int
    held: int  # jobs made `uncertain`: they may have been posted after the backup


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(src: Path, dest: Path, *, mode: int) -> str:
    """Copy `src` to `dest` through a temporary name, durably, readable by the user only;
    returns the SHA-256 of the bytes written."""
    store.ensure_private_dir(dest.parent)
    tmp = dest.with_name(f".{dest.name}.tmp")
    h = hashlib.sha256()
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out, src.open("rb") as fh:
            os.fchmod(fd, 0o600)
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(fd)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return h.hexdigest()


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    store.write_private(tmp, json.dumps(value, indent=2, ensure_ascii=False).encode(), durable=True)
    os.replace(tmp, path)


def _files(root: Path) -> Iterator[Path]:
    """The write-once files of the data folder (regular files only; no temporaries)."""
    for folder in FOLDERS:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.is_symlink() and not path.name.endswith(".tmp"):
                yield path


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a backup folder; None if `folder` holds none (or an unreadable one)."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return data


def _key_id(key: bytes) -> str:
    """Names the key without revealing it: which data folder a backup belongs to."""
    return hashlib.sha256(b"poster backup key id\n" + key).hexdigest()


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _tables(conn: sqlite3.Connection) -> dict[str, int]:
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def _expected_digests(conn: sqlite3.Connection) -> dict[str, str]:
    """Relative path → SHA-256, as the database records them (originals and variants)."""
    out = {r[0]: r[1] for r in conn.execute("SELECT archive_path, sha256 FROM originals")}
    out.update({r[0]: r[1] for r in conn.execute("SELECT path, sha256 FROM variants")})
    return out


def _check_dest(data_dir: Path, dest: Path, key: bytes) -> dict[str, Any] | None:
    """Refuse a DEST that is not new, empty, or an earlier backup of this data folder; returns
    the earlier backup's manifest, if any."""
    if _inside(dest, data_dir):
        raise UserError(
            _(
                "{dest}: a backup inside the data folder {folder} would be lost with it; choose another place"
            ).format(dest=dest, folder=data_dir)
        )
    if dest.exists() and not dest.is_dir():
        raise UserError(_("{dest}: exists and is not a folder").format(dest=dest))
    if not dest.exists() or not any(dest.iterdir()):
        return None
    previous = read_manifest(dest)
    if previous is None:
        raise UserError(
            _(
                "{dest}: not empty and not a poster backup; choose a new or empty folder (or an earlier "
                "backup to refresh)"
            ).format(dest=dest)
        )
    if previous.get("key_id") != _key_id(key):
        raise UserError(
            _(
                "{dest}: holds a backup of another data folder (another hidden-ID key); choose another folder"
            ).format(dest=dest)
        )
    return previous


def backup(data_dir: Path, db_path: Path, dest: Path) -> BackupResult:
    """Copy the database, key, originals and variants of `data_dir` into `dest` (see the
    module docstring). Safe while `poster run` is running; works on a read-only data folder."""
    data_dir, dest = data_dir.resolve(), dest.expanduser().resolve()
    key = markkey.load(data_dir)
    previous = _check_dest(data_dir, dest, key)
    known = {f["path"]: f for f in (previous or {}).get("files", []) if isinstance(f, dict)}
    store.ensure_private_dir(dest)

    # 1. the database: one snapshot, checked before it can replace anything
    tables: dict[str, int] = {}
    head: dict[str, Any] = {}
    expected: dict[str, str] = {}
    tmp_db = dest / f".{DB_NAME}.tmp"
    tmp_db.unlink(missing_ok=True)
    store.write_private(tmp_db, b"")
    with store.storage_errors(data_dir, db_path):
        src = store.connect(db_path, readonly=True)
        try:
            dst = sqlite3.connect(tmp_db, isolation_level=None)
            dst.row_factory = sqlite3.Row
            try:
                src.backup(dst)  # all pages in one step: one consistent snapshot
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
                problem = store.integrity_problem(dst, quick=False)
                if problem is None:
                    tables = _tables(dst)
                    head = ledger.head(dst)
                    expected = _expected_digests(dst)
            finally:
                dst.close()
        finally:
            src.close()
    if problem is not None:
        tmp_db.unlink(missing_ok=True)
        raise UserError(
            _("{error} — not backed up; what {dest} held before is unchanged").format(
                error=store.damaged(db_path, problem), dest=dest
            )
        )
    with tmp_db.open("rb") as fh:
        os.fsync(fh.fileno())

    # 2. the write-once files, listed after the snapshot: a superset of what it names
    entries: list[dict[str, Any]] = []
    copied = kept = 0
    damaged: list[str] = []
    for path in _files(data_dir):
        rel = path.relative_to(data_dir).as_posix()
        target = dest / rel
        size = path.stat().st_size
        mode = stat.S_IRUSR if rel.startswith("archive/") else 0o600
        old = known.get(rel)
        if target.is_file() and target.stat().st_size == size:
            digest = old["sha256"] if old and old.get("bytes") == size else store.sha256_file(target)
            kept += 1
        else:
            digest = _copy(path, target, mode=mode)
            copied += 1
        if expected.get(rel, digest) != digest:
            damaged.append(rel)
        entries.append({"path": rel, "sha256": digest, "bytes": size})

    # 3. the key, then the database and the manifest by atomic renames
    key_file = dest / markkey.KEY_NAME
    if not key_file.is_file() or key_file.read_bytes() != key:
        store.write_private(key_file, key, durable=True)
    db_file = dest / DB_NAME
    os.replace(tmp_db, db_file)
    _fsync_dir(dest)
    database = {"path": DB_NAME, "sha256": store.sha256_file(db_file), "bytes": db_file.stat().st_size}
    key_entry = {"path": markkey.KEY_NAME, "sha256": hashlib.sha256(key).hexdigest(), "bytes": len(key)}
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": store.iso(store.now()),
        "poster_version": __version__,
        "source": str(data_dir),
        "key_id": _key_id(key),
        "database": {
            **database,
            "tables": tables,
            "ledger_rows": head["rows"],
            "ledger_head": head["row_hash"],
        },
        "key": key_entry,
        "files": entries,
    }
    _write_json(dest / MANIFEST, manifest)
    _fsync_dir(dest)
    total = database["bytes"] + len(key) + sum(e["bytes"] for e in entries)
    return BackupResult(
        dest, previous is not None, copied, kept, total, tables, head["rows"], head["row_hash"], damaged
    )


# -- restore ---------------------------------------------------------------------------------
def _verify_backup(folder: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every file the manifest lists, checked (size, SHA-256); returns the entries."""
    try:
        entries = [manifest["database"], manifest["key"], *manifest["files"]]
        for e in entries:
            str(e["path"]), str(e["sha256"]), int(e["bytes"])
    except (KeyError, TypeError, ValueError):
        raise UserError(
            _("{file}: not a manifest this version of poster understands").format(file=folder / MANIFEST)
        ) from None
    for e in entries:
        rel = Path(e["path"])
        if rel.is_absolute() or ".." in rel.parts:
            raise UserError(
                _("{file}: names a file outside the backup: {path}").format(
                    file=folder / MANIFEST, path=e["path"]
                )
            )
        path = folder / rel
        if not path.is_file() or path.stat().st_size != e["bytes"] or store.sha256_file(path) != e["sha256"]:
            raise UserError(
                _(
                    "{file}: missing, or not what the backup's manifest says (changed or damaged); "
                    "nothing was restored"
                ).format(file=path)
            )
    return entries


def _fresh(data_dir: Path) -> bool:
    """True if `data_dir` is missing, empty, or as `poster init` left it (nothing taken in,
    nothing posted): restoring there loses nothing."""
    if not data_dir.exists():
        return True
    for entry in data_dir.iterdir():
        if entry.name not in _FRESH:
            return False
        if entry.is_dir() and any(entry.iterdir()):
            return False
    db = data_dir / DB_NAME
    if not db.exists():
        return True
    with store.opened(db, readonly=True) as conn:
        tables = _tables(conn)
    return not any(tables.get(t) for t in ("artworks", "jobs", "marks", "ledger"))


def hold_unfinished(conn: sqlite3.Connection, taken_at: str, at: datetime) -> int:
    """Jobs the backup shows unfinished and due by `at` may have been posted by the old data
    folder after the backup was taken: make them `uncertain` (looked up, never blindly
    re-posted). Returns how many."""
    unfinished = (jobs.State.PENDING, jobs.State.RENDERING, jobs.State.READY, jobs.State.POSTING)
    unfinished += (jobs.State.RETRY_WAIT,)
    reason = _(
        "restored from the backup of {when}: it may have been posted after that; poster looks it up where "
        "the platform allows, or settle it with `poster confirm`"
    ).format(when=taken_at)
    held = 0
    with store.transaction(conn):
        for job in jobs.all_jobs(conn):
            if job.state in unfinished and job.scheduled_at <= at:
                held += jobs.transition(conn, job.id, job.state, jobs.State.UNCERTAIN, reason=reason)
    return held


def restore(backup_dir: Path, data_dir: Path, *, at: datetime | None = None) -> RestoreResult:
    """Restore the backup in `backup_dir` into `data_dir` (see the module docstring)."""
    backup_dir, data_dir = backup_dir.expanduser().resolve(), data_dir.expanduser().resolve()
    manifest = read_manifest(backup_dir)
    if manifest is None:
        raise UserError(
            _("{folder}: not a poster backup (no {manifest})").format(folder=backup_dir, manifest=MANIFEST)
        )
    if manifest.get("version") != VERSION:
        raise UserError(
            _("{folder}: a backup format this version of poster does not know ({version})").format(
                folder=backup_dir, version=manifest.get("version")
            )
        )
    entries = _verify_backup(backup_dir, manifest)
    if not _fresh(data_dir):
        raise UserError(
            _(
                "{folder}: already holds a data folder with artworks or posts; restore into a new folder "
                "(or move this one away first)"
            ).format(folder=data_dir)
        )
    with store.run_lock(data_dir):
        for stale in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):  # of an unused, fresh folder
            (data_dir / stale).unlink(missing_ok=True)
        for e in entries:
            rel = e["path"]
            mode = stat.S_IRUSR if rel.startswith("archive/") else 0o600
            _copy(backup_dir / rel, data_dir / rel, mode=mode)
        for sub in ("outbox", "archive", "variants", "posted"):
            store.ensure_private_dir(data_dir / sub)
        _fsync_dir(data_dir)
        with store.opened(data_dir / DB_NAME, check="full") as conn:
            result = ledger.verify(conn)
            if not result.ok:
                raise UserError(
                    _("restored, but the ledger check failed: {problem}").format(problem=result.problem)
                )
            held = hold_unfinished(conn, str(manifest.get("created_at")), at or store.now())
            tables = _tables(conn)
    return RestoreResult(data_dir, str(manifest.get("created_at")), len(entries), tables, result.rows, held)
