from __future__ import annotations

import errno
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from poster import config, store
from tests.conftest import run_cli, unprivileged
from tests.datafolder import assert_complete, daemon, drop, make_home, poster, small_png


def test_damaged_database_is_a_one_line_error(home: config.Config) -> None:
    home.db_path.write_bytes(b"this is not a database " * 100)
    code, out, err = run_cli("status", cfg=home)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "poster.db: cannot use the database" in err and "backup" in err


def test_database_of_another_version_is_refused(home: config.Config) -> None:
    conn = sqlite3.connect(home.db_path)
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    code, _, err = run_cli("status", cfg=home)
    assert code == 2 and "different version of poster (database schema 99" in err


def test_database_and_folder_are_private(home: config.Config) -> None:
    run_cli("status", cfg=home)
    assert home.db_path.stat().st_mode & 0o077 == 0
    assert home.data_dir.stat().st_mode & 0o077 == 0


# -- shared pieces ---------------------------------------------------------------------------
TWO_LOCAL = (
    '[targets.x]\nadapter = "local"\npolicy = "light"\n\n'
    '[targets.pixiv]\nadapter = "local"\npolicy = "light"\n'
)
FULL_LINE = "is full: free some space, then run poster again; nothing was lost"


@contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A real file system of `size` at `folder` (root only; the test is skipped otherwise)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root")
    folder.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"mount is not permitted here: {r.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def leave_wal(db: Path, reason: str) -> None:
    """What a daemon killed mid-work (or a disk remounted read-only under it) leaves: the
    database with committed content only in its -wal file, and the -shm index beside it."""
    code = (
        "import os, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA wal_autocheckpoint=0')\n"
        "c.execute('UPDATE jobs SET reason = ? WHERE id = 1', (sys.argv[2],))\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(db), reason], check=True)
    assert db.with_name(db.name + "-wal").stat().st_size > 0
    assert db.with_name(db.name + "-shm").exists()


def checkpoint(db: Path) -> None:
    """Close the last connection cleanly: the WAL goes into the file, -wal and -shm go away."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert not db.with_name(db.name + "-wal").exists()


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@contextmanager
def read_only_tree(folder: Path) -> Iterator[None]:
    """chmod the folder 0500 and its files 0400 (what a user may only read), then back."""
    paths = [folder, *folder.rglob("*")]
    before = {p: p.stat().st_mode & 0o777 for p in paths}
    for p in sorted(paths, key=lambda p: len(p.parts), reverse=True):
        p.chmod(0o500 if p.is_dir() else 0o400)
    try:
        yield
    finally:
        for p, mode in before.items():
            p.chmod(mode)


def damage_table_page(db: Path, table: str, seed: int = 13) -> None:
    """Random bytes over the (single) page of one table, as a failing disk would leave it."""
    checkpoint(db)
    conn = sqlite3.connect(db)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    conn.close()
    with db.open("r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(random.Random(seed).randbytes(page_size))


def originals_of(cfg: config.Config, n: int, seed: int = 0) -> dict[str, bytes]:
    out = {}
    for i in range(n):
        data = small_png(seed * 100 + i)
        drop(cfg, f"art{i}.png", data)
        out[f"art{i}.png"] = data
    return out


# -- item 10: a run lock that cannot be removed from under a live daemon ----------------------
def test_deleting_the_lock_file_does_not_let_a_second_run_start(tmp_path: Path) -> None:
    cfg_path = make_home(tmp_path / "home")
    cfg = config.load(cfg_path)
    with daemon(cfg_path, tmp_path / "daemon.log") as proc:
        (cfg.data_dir / "run.lock").unlink(missing_ok=True)  # how the old lock was lost
        second = poster(cfg_path, "run", "--once")
        assert second.returncode != 0
        assert second.stderr.count("\n") == 1, second.stderr
        assert "another `poster run` is already using" in second.stderr and str(cfg.data_dir) in second.stderr
        assert proc.poll() is None  # the daemon was not disturbed
    # the kernel dropped the lock with the daemon: the next run starts
    assert poster(cfg_path, "run", "--once").returncode == 0


# -- item 11: every disk or database error named by its cause ----------------------------------
def test_storage_errors_are_named_by_their_cause(tmp_path: Path) -> None:
    data_dir = tmp_path / "queue"
    db = data_dir / "poster.db"
    store.connect(db).close()

    def caught(action: Callable[[], object]) -> store.StorageError | None:
        try:
            action()
        except (sqlite3.Error, OSError) as exc:
            return store.storage_error(exc, data_dir)
        raise AssertionError("no error")

    def full() -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
        conn.execute("INSERT INTO events (job_id, at, state) VALUES (1, 'now', ?)", ("x" * 20000,))

    def read_only() -> None:
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        conn.execute("INSERT INTO events (job_id, at, state) VALUES (1, 'now', 'x')")

    def busy() -> None:
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            sqlite3.connect(db, timeout=0, isolation_level=None).execute("BEGIN IMMEDIATE")
        finally:
            holder.execute("ROLLBACK")
            holder.close()

    not_a_db = data_dir / "other.db"
    not_a_db.write_bytes(b"not a database at all " * 400)

    def damaged() -> None:
        sqlite3.connect(not_a_db).execute("SELECT * FROM sqlite_master").fetchall()

    found = {
        "full": caught(full),
        "read-only": caught(read_only),
        "busy": caught(busy),
        "damaged": caught(damaged),
        "enospc": store.storage_error(OSError(errno.ENOSPC, "No space left on device"), data_dir),
        "erofs": store.storage_error(OSError(errno.EROFS, "Read-only file system"), data_dir),
    }
    kinds = {name: e.kind if e else None for name, e in found.items()}
    assert kinds == {
        "full": "full",
        "read-only": "read-only",
        "busy": "busy",
        "damaged": "damaged",
        "enospc": "full",
        "erofs": "read-only",
    }
    for name, e in found.items():
        assert e is not None and "\n" not in str(e)
        assert ("restore" in str(e)) == (name == "damaged"), (name, str(e))  # only damage advises a restore
    assert FULL_LINE in str(found["full"]) and str(data_dir) in str(found["full"])
    # not a storage problem: left alone (a bug stays a bug, another file's error stays its own)
    assert store.storage_error(OSError(errno.ENOENT, "No such file"), data_dir) is None
    assert store.storage_error(sqlite3.ProgrammingError("closed"), data_dir) is None
    assert store.storage_error(ValueError("x"), data_dir) is None


def _limit_database(monkeypatch: pytest.MonkeyPatch, growth: int) -> None:
    """SQLite's own SQLITE_FULL on every machine: writing connections may grow the database
    by `growth` pages only."""
    real = store.connect

    def limited(db_path: Path, **kw: bool) -> sqlite3.Connection:
        conn = real(db_path, **kw)
        if not kw.get("readonly"):
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages + growth}")
        return conn

    monkeypatch.setattr(store, "connect", limited)


@pytest.mark.parametrize("growth", [0, 3, 6])  # stops at a ledger row, a render, the last post
def test_a_full_database_stops_the_run_in_one_line_and_the_next_run_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, growth: int
) -> None:
    cfg = config.load(make_home(tmp_path / "home", targets=TWO_LOCAL))
    originals = originals_of(cfg, 3, seed=growth)
    _limit_database(monkeypatch, growth)
    code, _, err = run_cli("run", "--once", "--now", cfg=cfg)
    assert code != 0
    assert err.splitlines()[-1].endswith(FULL_LINE), err
    assert "internal error" not in err and "backup" not in err
    # read commands work on the full disk and give no advice that could cost data
    for args in (("status",), ("ledger", "verify"), ("ledger", "export")):
        code, out2, err2 = run_cli(*args, cfg=cfg)
        assert code == 0 and "backup" not in out2 + err2, (args, out2, err2)
    monkeypatch.undo()  # space freed
    code, _, err = run_cli("run", "--once", "--now", cfg=cfg)
    assert code == 0, err
    assert_complete(cfg, originals, ["x", "pixiv"])


@pytest.mark.slow  # one of the longest scenarios (10-25 s): CI=true and --slow run it
def test_a_full_disk_stops_the_run_in_one_line_and_the_next_run_loses_nothing(tmp_path: Path) -> None:
    """A real file system filled up: the run stops at whatever step hit ENOSPC (archive,
    variant, published copy, SQLite's WAL), says so in one line, and after space is freed
    the next run finishes with nothing lost and nothing posted twice."""
    partial = 0
    with tmpfs(tmp_path / "disk", "12m") as disk:
        for n, free_kb in enumerate((40, 700, 1800)):
            home = disk / f"home{n}"
            cfg_path = make_home(home, targets=TWO_LOCAL)
            cfg = config.load(cfg_path)
            originals = originals_of(cfg, 4, seed=n)
            filler = disk / "filler"
            st = os.statvfs(disk)
            filler.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - free_kb * 1024))
            first = poster(cfg_path, "run", "--once", "--now")
            assert first.returncode != 0, (free_kb, first.stdout)
            lines = first.stderr.strip().splitlines()
            assert lines[-1] == f"poster: error: the disk holding {cfg.data_dir} {FULL_LINE}", first.stderr
            assert "internal error" not in first.stderr and "Traceback" not in first.stderr
            partial += "posted " in first.stdout
            for args in (("status",), ("ledger", "verify")):
                r = poster(cfg_path, *args)
                assert r.returncode == 0 and "backup" not in r.stdout + r.stderr, (args, r.stderr)
            filler.unlink()
            second = poster(cfg_path, "run", "--once", "--now")
            assert second.returncode == 0, second.stderr
            assert_complete(cfg, originals, ["x", "pixiv"])
            shutil.rmtree(home)
    assert partial  # at least one run was cut off half-way through posting


# -- item 11: read commands on a read-only data folder -----------------------------------------
READ_COMMANDS: tuple[tuple[str, ...], ...] = (  # and status, trace, backup below
    ("ledger", "export", "--json"),
    ("ledger", "verify"),
    ("ledger", "head", "--json"),
    ("doctor",),
)


def _posted_home(tmp_path: Path) -> tuple[Path, config.Config, Path]:
    cfg_path = make_home(tmp_path / "home", targets=TWO_LOCAL)
    cfg = config.load(cfg_path)
    originals_of(cfg, 1)
    r = poster(cfg_path, "run", "--once", "--now")
    assert r.returncode == 0, r.stderr
    conn = sqlite3.connect(cfg.db_path)
    (url,) = conn.execute("SELECT url FROM ledger ORDER BY seq LIMIT 1").fetchone()
    conn.close()
    published = tmp_path / "found.png"
    shutil.copyfile(url.removeprefix("file://"), published)
    return cfg_path, cfg, published


def _check_reads(cfg_path: Path, published: Path, backup_dir: Path, prefix: list[str], reason: str) -> None:
    for args in READ_COMMANDS:
        r = poster(cfg_path, *args, prefix=prefix)
        assert r.returncode == 0, (args, r.stderr)
    jobs_json = json.loads(poster(cfg_path, "status", "--json", prefix=prefix).stdout)
    assert {j["id"]: j["reason"] for j in jobs_json}[1] == reason  # what only the WAL holds is read
    found = poster(cfg_path, "trace", str(published), "--json", prefix=prefix)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["matches"][0]["method"] == "hidden-id"
    made = poster(cfg_path, "backup", str(backup_dir), prefix=prefix)
    assert made.returncode == 0, made.stderr
    assert (backup_dir / "poster.db").exists()
    run = poster(cfg_path, "run", "--once", prefix=prefix)
    assert run.returncode != 0 and run.stderr.count("\n") == 1, run.stderr
    assert "read-only" in run.stderr, run.stderr


@pytest.mark.slow  # one of the longest scenarios (10-25 s): CI=true and --slow run it
@pytest.mark.parametrize("wal", ["none", "wal-and-shm", "wal-without-shm"])
def test_read_commands_work_on_a_folder_the_user_may_only_read(tmp_path: Path, wal: str) -> None:
    prefix = unprivileged()
    cfg_path, cfg, published = _posted_home(tmp_path)
    reason = "a reason only in the WAL"
    if wal == "none":
        with sqlite3.connect(cfg.db_path) as conn:
            conn.execute("UPDATE jobs SET reason = ? WHERE id = 1", (reason,))
        conn.close()
        checkpoint(cfg.db_path)
    else:
        leave_wal(cfg.db_path, reason)
        if wal == "wal-without-shm":
            cfg.db_path.with_name("poster.db-shm").unlink()
    before = listing(cfg.data_dir)
    with read_only_tree(cfg.data_dir):
        _check_reads(cfg_path, published, tmp_path / f"backup-{wal}", prefix, reason)
        assert listing(cfg.data_dir) == before  # nothing was written, not even a -shm file


def test_read_commands_work_on_a_read_only_file_system(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "40m") as disk:
        cfg_path, cfg, published = _posted_home(disk)
        leave_wal(cfg.db_path, "a reason only in the WAL")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        _check_reads(cfg_path, published, tmp_path / "backup", [], "a reason only in the WAL")


# -- item 12: damage SQLite can see is reported, naming the file -------------------------------
def test_a_damaged_table_page_is_reported_by_status_verify_doctor_and_run(home: config.Config) -> None:
    drop(home, "a.png", small_png(1))
    assert run_cli("run", "--once", "--now", cfg=home)[0] == 0
    damage_table_page(home.db_path, "events")  # a table neither status nor the ledger reads
    for args in (("status",), ("ledger", "verify"), ("ledger", "head"), ("run", "--once")):
        code, out, err = run_cli(*args, cfg=home)
        assert code != 0, args
        assert err.count("\n") == 1 and str(home.db_path) in err, (args, err)
        assert "damaged" in err and "poster restore" in err, (args, err)
    code, out, err = run_cli("doctor", cfg=home)
    assert code != 0 and "data folder: PROBLEM" in out and str(home.db_path) in err
    # salvage: the ledger rows that can still be read are exported, with the damage named
    code, out, err = run_cli("ledger", "export", "--json", cfg=home)
    assert code != 0 and len(json.loads(out)) == 3 and "damaged" in err


def test_doctor_says_the_data_folder_is_sound(home: config.Config) -> None:
    code, out, err = run_cli("doctor", cfg=home)
    assert code == 0, err
    assert out.splitlines()[0] == f"data folder: ok: {home.db_path}: SQLite integrity check passed"


# -- item 14: nothing in the data folder is open to other users --------------------------------
def test_every_folder_and_file_poster_makes_in_the_data_folder_is_private(tmp_path: Path) -> None:
    targets = TWO_LOCAL + '\n[targets.folio]\nadapter = "xfolio"\npolicy = "light"\nopen_browser = false\n'
    cfg_path = make_home(tmp_path / "home", targets=targets)
    cfg = config.load(cfg_path)
    drop(cfg, "a.png", small_png(2))
    (cfg.outbox / "set").mkdir()
    drop(cfg, "set/1.png", small_png(3))
    old_umask = os.umask(0o022)  # the usual umask: what made the folders 0755
    try:
        r = poster(cfg_path, "run", "--once", "--now")
        assert r.returncode == 0, r.stderr
        found = poster(cfg_path, "trace", str(next((cfg.data_dir / "posted" / "x").rglob("*.png"))))
        assert found.returncode == 0, found.stderr
        from poster.platforms import adapter_class

        masto = adapter_class("mastodon")(
            "masto", {"instance": "https://masto.invalid"}, {}, data_dir=cfg.data_dir
        )
        masto.write_state("limits", {"remaining": 1})  # the adapters' state folder
    finally:
        os.umask(old_umask)
    made = {p.relative_to(cfg.data_dir).parts[0] for p in cfg.data_dir.rglob("*")}
    assert {"outbox", "archive", "variants", "posted", "handoff", "state", "poster.db", "mark.key"} <= made
    assert (cfg.data_dir / "posted" / "x").is_dir() and (cfg.data_dir / "handoff" / "folio").is_dir()
    open_to_others = [
        f"{p} {p.stat().st_mode & 0o777:o}"
        for p in [cfg.data_dir, *cfg.data_dir.rglob("*")]
        if p.stat().st_mode & 0o077
    ]
    assert open_to_others == []


def test_private_dir_makes_every_missing_parent_private(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        store.ensure_private_dir(tmp_path / "a" / "b" / "c")
    finally:
        os.umask(old_umask)
    for p in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert p.stat().st_mode & 0o777 == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    store.ensure_private_dir(loose)
    assert loose.stat().st_mode & 0o777 == 0o700


def test_sync_files_with_and_without_syncfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").write_bytes(b"x")
    store.sync_files([tmp_path / "a", tmp_path])  # syncfs(2) where there is one
    with pytest.raises(FileNotFoundError):
        store.sync_files([tmp_path / "missing"])
    monkeypatch.setattr(store, "_syncfs", lambda: None)  # elsewhere: an fsync each
    store.sync_files([tmp_path / "a", tmp_path])
    with pytest.raises(FileNotFoundError):
        store.sync_files([tmp_path / "missing"])


def test_a_short_write_on_a_full_disk_is_a_full_disk_and_elsewhere_no_disk_problem(tmp_path: Path) -> None:
    """numpy reports a write cut short by a full disk without an errno ("65537 requested and
    5616 written"): while poster writes its own files on a disk out of space that is the full
    disk; with space left it is not a disk problem, nor is an unreadable image on a full disk."""
    from PIL import UnidentifiedImageError

    short = OSError("65537 requested and 5616 written")
    unreadable = UnidentifiedImageError("cannot identify image file 'x.png'")
    assert store.write_error(short, tmp_path) is None
    with tmpfs(tmp_path / "disk", "2m") as disk:
        data = disk / "queue"
        data.mkdir()
        with pytest.raises(OSError):
            np.save(data / "big.npy", np.zeros(1 << 20))  # 8 MB onto 2 MB: cut short
        found = store.write_error(short, data)
        assert found is not None and found.kind == store.FULL and FULL_LINE in str(found)
        assert store.write_error(unreadable, data) is None
        assert store.storage_error(short, data) is None  # elsewhere: an image's own error
