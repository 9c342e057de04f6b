"""The daemon's tick with a real `poster run`: config edits while it runs, failures reported once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from poster import config
from tests.datafolder import daemon, drop, make_home, small_png, wait_for

ONE = '[targets.x]\nadapter = "local"\npolicy = "light"\nmin_interval_minutes = 0\n'
TWO = ONE + '\n[targets.y]\nadapter = "local"\npolicy = "light"\nmin_interval_minutes = 0\n'


def published(cfg: config.Config, target: str) -> int:
    folder = cfg.data_dir / "posted" / target
    return len([p for p in folder.iterdir() if not p.name.startswith(".")]) if folder.exists() else 0


@pytest.mark.slow  # one of the longest scenarios (10-25 s): CI=true and --slow run it
def test_config_edits_are_picked_up_and_a_broken_edit_is_reported_once(tmp_path: Path) -> None:
    cfg_path = make_home(tmp_path / "home", targets=ONE)
    cfg = config.load(cfg_path)
    good_one = cfg_path.read_text(encoding="utf-8")
    log = tmp_path / "daemon.log"
    with daemon(cfg_path, log) as proc:
        drop(cfg, "a.png", small_png(70))
        wait_for(lambda: published(cfg, "x") == 1, proc, what="a.png posted to x")

        # a new target while it runs: the next drop goes to it too
        cfg_path.write_text(good_one.replace(ONE, TWO), encoding="utf-8")
        file_log = cfg.data_dir / "poster.log"
        wait_for(
            lambda: "configuration reloaded (targets: x, y)" in file_log.read_text(), proc, what="reload"
        )
        drop(cfg, "b.png", small_png(71))
        wait_for(
            lambda: published(cfg, "y") == 1 and published(cfg, "x") == 2,
            proc,
            what="b.png posted to x and y",
        )

        # a broken edit: one error line, the configuration before it stays in use
        cfg_path.write_text(good_one.replace(ONE, TWO) + "\n[targets.z\n", encoding="utf-8")
        wait_for(lambda: "config not reloaded" in log.read_text(), proc, what="the error line")
        time.sleep(4)  # several more ticks
        drop(cfg, "c.png", small_png(72))
        wait_for(lambda: published(cfg, "y") == 2 and published(cfg, "x") == 3, proc, what="c.png posted")

        # a changed data_dir is not switched to while running
        moved = good_one.replace(ONE, TWO).replace('data_dir = "queue"', 'data_dir = "elsewhere"')
        cfg_path.write_text(moved, encoding="utf-8")
        wait_for(lambda: "data_dir changed" in log.read_text(), proc, what="the restart line")
        time.sleep(3)
        drop(cfg, "d.png", small_png(73))
        wait_for(lambda: published(cfg, "y") == 3, proc, what="d.png posted to the old folder")
        assert not (tmp_path / "home" / "elsewhere").exists()
    text = log.read_text()
    broken = [line for line in text.splitlines() if "config not reloaded" in line]
    assert len(broken) == 1, text
    assert broken[0].startswith(f"poster: ERROR: config not reloaded: {cfg_path}: not valid TOML")
    assert broken[0].endswith("posting goes on with the configuration loaded before")
    restart = [line for line in text.splitlines() if "data_dir changed" in line]
    assert len(restart) == 1 and "restart `poster run` to use it" in restart[0]
    assert "Traceback" not in text


def test_a_full_disk_under_the_daemon_is_reported_once_and_it_carries_on_when_space_is_freed(
    tmp_path: Path,
) -> None:
    import os

    from tests.datafolder import assert_complete
    from tests.test_store import FULL_LINE, tmpfs

    with tmpfs(tmp_path / "disk", "12m") as disk:
        cfg_path = make_home(disk / "home", targets=TWO.replace("targets.y", "targets.pixiv"))
        cfg = config.load(cfg_path)
        log = tmp_path / "daemon.log"
        originals = {}
        staging = disk / "staging"  # on the same disk: moving into the outbox needs no space
        staging.mkdir()
        for i in range(4):
            originals[f"art{i}.png"] = small_png(80 + i)
            (staging / f"art{i}.png").write_bytes(originals[f"art{i}.png"])
        with daemon(cfg_path, log) as proc:
            st = os.statvfs(disk)
            filler = disk / "filler"
            filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 700 * 1024))
            for name in originals:
                os.replace(staging / name, cfg.outbox / name)
            wait_for(lambda: FULL_LINE in log.read_text(), proc, what="the disk-full line")
            time.sleep(5)  # several ticks on the full disk
            assert proc.poll() is None
            filler.unlink()
            wait_for(lambda: "the data folder works again" in log.read_text(), proc, what="recovery")
            wait_for(
                lambda: published(cfg, "x") == 4 and published(cfg, "pixiv") == 4, proc, what="all posted"
            )
        text = log.read_text()
        assert sum(FULL_LINE in line for line in text.splitlines()) == 1, text
        assert "Traceback" not in text and "tick failed" not in text
        assert_complete(cfg, originals, ["x", "pixiv"])
