"""`poster backup` and `poster restore`, the way a user runs them: while a real daemon is
posting, into real folders, checked by the ledger, trace and the stand-in platform."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from poster import backup as backup_mod
from poster import config, store
from tests.conftest import run_cli
from tests.datafolder import daemon, drop, make_home, small_png, states, wait_for
from tests.servers.slow import SlowServer, register


def slow_targets(url: str) -> str:
    return "".join(
        f'[targets.{t}]\nadapter = "slow"\npolicy = "light"\napi_base = "{url}"\ntimeout = 3\n'
        "min_interval_minutes = 0\n\n"
        for t in ("a", "b")
    )


def private(folder: Path) -> list[str]:
    return [
        f"{p} {p.stat().st_mode & 0o777:o}" for p in [folder, *folder.rglob("*")] if p.stat().st_mode & 0o077
    ]


@pytest.mark.slow  # one of the longest scenarios (10-25 s): CI=true and --slow run it
def test_backup_while_the_daemon_posts_restores_into_a_folder_that_duplicates_nothing(tmp_path: Path) -> None:
    register()
    with SlowServer(delay=(0.6, 1.2), seed=5) as server:
        cfg_path = make_home(tmp_path / "home", targets=slow_targets(server.url))
        cfg = config.load(cfg_path)
        for i in range(5):
            (cfg.outbox / f"art{i}.toml").write_text(f'caption = "backup test {i}"\n', encoding="utf-8")
            drop(cfg, f"art{i}.png", small_png(40 + i))
        with daemon(cfg_path, tmp_path / "daemon.log", module="tests.servers.slow poster") as proc:
            wait_for(lambda: len(server.posts) >= 3, proc, what="three posts")
            code, out, err = run_cli("backup", str(tmp_path / "bk"), cfg=cfg)  # while it posts
            assert code == 0, err
            assert out.startswith(f"backup created in {tmp_path / 'bk'}:")
            wait_for(lambda: states(cfg) == Counter(posted=10), proc, what="every job posted")
        posted_by_the_old_folder = len(server.posts)
        assert posted_by_the_old_folder == 10

        manifest = json.loads((tmp_path / "bk" / "poster-backup.json").read_text(encoding="utf-8"))
        in_backup = manifest["database"]["ledger_rows"]
        assert 0 < in_backup < 10  # taken half-way through, from one consistent snapshot
        assert private(tmp_path / "bk") == []

        # a new machine: `poster init`, then the backup restored into its (unused) data folder
        cfg2_path = make_home(tmp_path / "home2", targets=slow_targets(server.url))
        cfg2 = config.load(cfg2_path)
        code, out, err = run_cli("restore", str(tmp_path / "bk"), str(cfg2.data_dir), cfg=cfg2)
        assert code == 0, err
        assert f"{in_backup} ledger rows (hash chain intact)" in out
        assert "may have been posted after the backup was taken" in out  # the unfinished jobs
        code, out, err = run_cli("ledger", "verify", cfg=cfg2)
        assert code == 0 and f"ledger OK: {in_backup} rows" in out, err

        # a copy posted before the backup traces to its row from the restored folder
        with store.opened(cfg2.db_path, readonly=True) as conn:
            row = conn.execute(
                "SELECT ledger.mark_id, variants.path FROM ledger JOIN variants USING (mark_id)"
            ).fetchone()
        code, out, err = run_cli("trace", str(cfg.data_dir / row["path"]), "--json", cfg=cfg2)
        assert code == 0, err
        assert json.loads(out)["matches"][0]["id"] == f"{row['mark_id']:012x}"

        # the restored folder runs: what the old one posted after the backup is found, not re-posted
        for _ in range(3):
            code, out, err = run_cli("run", "--once", cfg=cfg2)
            if states(cfg2) == Counter(posted=10):
                break
            time.sleep(4)  # an interrupted post is only "absent" once its request cannot land
        assert states(cfg2) == Counter(posted=10), (states(cfg2), out, err)
        assert len(server.posts) == posted_by_the_old_folder  # nothing posted twice
        assert max(Counter((p["target"], p["caption"]) for p in server.posts).values()) == 1
        assert run_cli("ledger", "verify", cfg=cfg2)[0] == 0


@pytest.fixture
def posted(home: config.Config) -> config.Config:
    for i in range(2):
        drop(home, f"p{i}.png", small_png(60 + i))
    code, _, err = run_cli("run", "--once", "--now", cfg=home)
    assert code == 0, err
    return home


def test_backup_is_complete_private_and_checked_by_its_manifest(
    posted: config.Config, tmp_path: Path
) -> None:
    dest = tmp_path / "bk"
    code, out, err = run_cli("backup", str(dest), cfg=posted)
    assert code == 0, err
    manifest = json.loads((dest / "poster-backup.json").read_text(encoding="utf-8"))
    listed = {e["path"]: e for e in [manifest["database"], manifest["key"], *manifest["files"]]}
    originals = {str(p.relative_to(posted.data_dir)) for p in posted.archive.rglob("*") if p.is_file()}
    variants = {
        str(p.relative_to(posted.data_dir)) for p in (posted.data_dir / "variants").rglob("*") if p.is_file()
    }
    assert len(originals) == 2 and len(variants) == 6
    assert set(listed) == {"poster.db", "mark.key"} | originals | variants
    for rel, e in listed.items():
        data = (dest / rel).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e["sha256"] and len(data) == e["bytes"]
    assert (dest / "mark.key").read_bytes() == (posted.data_dir / "mark.key").read_bytes()
    assert manifest["database"]["tables"]["ledger"] == 6 == manifest["database"]["ledger_rows"]
    assert private(dest) == []
    assert not (dest / "poster.db-wal").exists()  # one self-contained file
    assert not (dest / "posted").exists() and not (dest / "state").exists()  # no platform copies, no tokens

    # again into the same folder: a refresh that copies only what is new
    drop(posted, "p2.png", small_png(62))
    assert run_cli("run", "--once", "--now", cfg=posted)[0] == 0
    code, out, err = run_cli("backup", str(dest), cfg=posted)
    assert code == 0, err
    assert out.startswith(
        f"backup refreshed in {dest}: 9 ledger rows, 9 jobs, 4 files copied, 8 already there"
    )


def test_backup_refuses_what_would_mix_or_lose_data(posted: config.Config, tmp_path: Path) -> None:
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"mine")
    for dest, why in (
        (other, "not empty and not a poster backup"),
        (posted.data_dir / "bk", "inside the data folder"),
    ):
        code, _, err = run_cli("backup", str(dest), cfg=posted)
        assert code != 0 and why in err and err.count("\n") == 1, err
    assert [p.name for p in other.iterdir()] == ["holiday.jpg"]
    # a backup of another data folder (another key) is not refreshed with this one
    stranger = config.load(make_home(tmp_path / "stranger"))
    assert run_cli("backup", str(tmp_path / "bk"), cfg=stranger)[0] == 0
    code, _, err = run_cli("backup", str(tmp_path / "bk"), cfg=posted)
    assert code != 0 and "holds a backup of another data folder" in err


def test_a_damaged_database_is_not_backed_up_over_a_good_backup(
    posted: config.Config, tmp_path: Path
) -> None:
    from tests.test_store import damage_table_page

    dest = tmp_path / "bk"
    assert run_cli("backup", str(dest), cfg=posted)[0] == 0
    good = (dest / "poster.db").read_bytes()
    damage_table_page(posted.db_path, "events")
    code, _, err = run_cli("backup", str(dest), cfg=posted)
    assert code != 0 and err.count("\n") == 1
    assert "damaged" in err and "not backed up" in err and str(posted.db_path) in err
    assert (dest / "poster.db").read_bytes() == good
    assert not list(dest.glob(".*.tmp"))


def test_backup_and_restore_carry_tables_a_later_version_adds(posted: config.Config, tmp_path: Path) -> None:
    """Table-agnostic: a database-level copy (e.g. the RFC 3161 time-stamp tokens to come)."""
    with store.opened(posted.db_path) as conn, store.transaction(conn):
        conn.execute("CREATE TABLE later_tokens (id INTEGER PRIMARY KEY, token BLOB NOT NULL)")
        conn.executemany("INSERT INTO later_tokens (token) VALUES (?)", [(b"\x30\x82" * 50,)] * 3)
    assert run_cli("backup", str(tmp_path / "bk"), cfg=posted)[0] == 0
    target = tmp_path / "restored"
    result = backup_mod.restore(tmp_path / "bk", target)
    assert result.tables["later_tokens"] == 3
    conn = sqlite3.connect(target / "poster.db")
    assert conn.execute("SELECT count(*) FROM later_tokens").fetchone()[0] == 3
    conn.close()


def test_restore_checks_every_file_and_refuses_a_folder_in_use(posted: config.Config, tmp_path: Path) -> None:
    dest = tmp_path / "bk"
    assert run_cli("backup", str(dest), cfg=posted)[0] == 0
    # into the data folder it came from (which has posts): refused, nothing touched
    before = (posted.db_path.read_bytes(), (posted.data_dir / "mark.key").read_bytes())
    code, _, err = run_cli("restore", str(dest), cfg=posted)
    assert code != 0 and "already holds a data folder with artworks or posts" in err
    assert (posted.db_path.read_bytes(), (posted.data_dir / "mark.key").read_bytes()) == before
    # a changed file in the backup: refused before anything is copied
    original = next((dest / "archive").rglob("*.png"))
    original.chmod(0o600)
    original.write_bytes(original.read_bytes()[:-1] + b"\0")
    code, _, err = run_cli("restore", str(dest), str(tmp_path / "new"), cfg=posted)
    assert code != 0 and str(original) in err and "nothing was restored" in err
    assert not (tmp_path / "new").exists()
    # not a backup at all
    code, _, err = run_cli("restore", str(tmp_path), str(tmp_path / "new"), cfg=posted)
    assert code != 0 and "not a poster backup" in err


def test_restore_into_a_new_folder_is_private_and_traceable(posted: config.Config, tmp_path: Path) -> None:
    assert run_cli("backup", str(tmp_path / "bk"), cfg=posted)[0] == 0
    target = tmp_path / "new" / "queue"
    code, out, err = run_cli("restore", str(tmp_path / "bk"), str(target), cfg=posted)
    assert code == 0, err
    assert "6 ledger rows (hash chain intact), 6 jobs" in out and "uncertain" not in out  # all posted
    assert private(target) == [] and private(tmp_path / "new") == []
    for sub in ("outbox", "archive", "variants", "posted"):
        assert (target / sub).is_dir()
    with store.opened(target / "poster.db", readonly=True, check="full") as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE state = 'posted'").fetchone()[0] == 6


def test_restored_jobs_that_were_due_are_held_then_looked_up_rendered_and_posted_once(
    home: config.Config, tmp_path: Path
) -> None:
    """Jobs taken in but not yet rendered when the backup was made (the old folder may have
    posted them since): `uncertain` after the restore; a look-up that finds nothing sends
    them back to be rendered, `confirm --not-posted` too, and `confirm --posted` records one."""
    from poster import outbox

    drop(home, "late.png", small_png(90))
    with store.opened(home.db_path) as conn:
        assert [r.outcome for r in outbox.scan(conn, home)] == ["queued"]  # taken in, not rendered
    assert run_cli("backup", str(tmp_path / "bk"), cfg=home)[0] == 0
    cfg2 = config.load(make_home(tmp_path / "home2"))
    code, out, err = run_cli("restore", str(tmp_path / "bk"), cfg=cfg2)
    assert code == 0 and "3 unfinished job(s) may have been posted" in out, err
    with store.opened(cfg2.db_path, readonly=True) as conn:
        held = {r["target"]: r["id"] for r in conn.execute("SELECT id, target, state FROM jobs")}
        assert {r[0] for r in conn.execute("SELECT state FROM jobs")} == {"uncertain"}
    assert run_cli("confirm", str(held["xfolio"]), "--posted", "https://xfolio.example/w/1", cfg=cfg2)[0] == 0
    assert run_cli("confirm", str(held["pixiv"]), "--not-posted", cfg=cfg2)[0] == 0
    code, out, err = run_cli("run", "--once", "--now", cfg=cfg2)  # x: looked up, absent, rendered
    assert code == 0, err
    assert states(cfg2) == Counter(posted=3)
    with store.opened(cfg2.db_path, readonly=True) as conn:
        rows = conn.execute("SELECT target FROM ledger").fetchall()
    assert sorted(r[0] for r in rows) == ["pixiv", "x"]  # the confirmed one was rendered elsewhere
    for target in ("x", "pixiv"):
        assert len(list((cfg2.data_dir / "posted" / target).iterdir())) == 1
