from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from poster import config, jobs, outbox, store
from tests.conftest import artwork, unprivileged


def scan(cfg: config.Config, **kw: object) -> list[outbox.IntakeResult]:
    conn = store.connect(cfg.db_path)
    try:
        return outbox.scan(conn, cfg, **kw)  # type: ignore[arg-type]
    finally:
        conn.close()


def all_jobs(cfg: config.Config) -> list[jobs.Job]:
    conn = store.connect(cfg.db_path)
    try:
        return jobs.all_jobs(conn)
    finally:
        conn.close()


def test_stable_file_is_archived_and_gets_one_job_per_target(
    home: config.Config, drop: Callable[..., Path]
) -> None:
    path = drop("cat.png", artwork())
    original = path.read_bytes()
    [result] = scan(home)
    assert result.outcome == "queued"
    assert not path.exists()
    digest = hashlib.sha256(original).hexdigest()
    archived = home.archive / digest[:2] / f"{digest}.png"
    assert archived.read_bytes() == original
    assert archived.stat().st_mode & 0o222 == 0  # read-only
    assert sorted(j.target for j in all_jobs(home)) == ["pixiv", "x", "xfolio"]
    assert {j.state for j in all_jobs(home)} == {jobs.State.PENDING}


def test_file_still_changing_is_not_taken(home: config.Config, drop: Callable[..., Path]) -> None:
    path = drop("fresh.png", artwork(), age=0)
    [result] = scan(home)
    assert result.outcome == "waiting"
    assert path.exists() and all_jobs(home) == []


def test_once_mode_waits_for_a_fresh_file_to_settle(tmp_path: Path) -> None:
    from poster import cli

    cfg_path = cli.init_home(tmp_path / "h")
    text = cfg_path.read_text().replace("stable_seconds = 5.0", "stable_seconds = 0.5")
    cfg_path.write_text(text)
    cfg = config.load(cfg_path)
    artwork().save(cfg.outbox / "now.png")
    t = time.time()
    [result] = scan(cfg, wait=True)
    assert result.outcome == "queued"
    assert time.time() - t >= 0.4


def test_sidecar_is_read_and_removed(home: config.Config, drop: Callable[..., Path]) -> None:
    drop("bird.png", artwork())
    side = drop(
        "bird.toml", b'title = "Bird"\ncaption = "hi #bird"\ntags = ["#bird", "sky"]\ntargets = ["pixiv"]\n'
    )
    [result] = scan(home)
    assert result.outcome == "queued"
    assert not side.exists()
    [job] = all_jobs(home)
    assert job.target == "pixiv"
    assert job.meta["title"] == "Bird" and job.meta["tags"] == ["bird", "sky"]


def test_sidecar_at_sets_the_schedule(home: config.Config, drop: Callable[..., Path]) -> None:
    drop("late.png", artwork())
    drop("late.toml", b"at = 2030-01-02T03:04:05+09:00\n")
    scan(home)
    assert {store.iso(j.scheduled_at) for j in all_jobs(home)} == {"2030-01-01T18:04:05+00:00"}


def test_invalid_sidecar_fails_the_artwork_with_the_reason(
    home: config.Config, drop: Callable[..., Path]
) -> None:
    img = drop("bad.png", artwork())
    drop("bad.toml", b'rating = "spicy"\n')
    [result] = scan(home)
    assert result.outcome == "failed" and "bad.toml: rating" in (result.reason or "")
    assert not img.exists()  # the original is kept in the archive, not lost
    assert {j.state for j in all_jobs(home)} == {jobs.State.FAILED}
    assert all("rating" in (j.reason or "") for j in all_jobs(home))


def test_unknown_sidecar_keys_warn_by_name(home: config.Config, drop: Callable[..., Path]) -> None:
    drop("w.png", artwork())
    drop("w.toml", b'title = "W"\ncolour = "red"\n')
    [result] = scan(home)
    assert result.outcome == "queued" and "colour" in result.warnings[0]


def test_folder_is_one_multi_image_post(home: config.Config, drop: Callable[..., Path]) -> None:
    drop("set/2.png", artwork(seed=2))
    drop("set/1.png", artwork(seed=1))
    drop("set/post.toml", b'title = "Set"\nalt = ["first", "second"]\n')
    [result] = scan(home)
    assert result.outcome == "queued" and not (home.outbox / "set").exists()
    conn = store.connect(home.db_path)
    names = [o.name for o in jobs.originals(conn, result.artwork_id or 0)]
    conn.close()
    assert names == ["1.png", "2.png"]


def test_same_file_again_is_not_queued_twice(home: config.Config, drop: Callable[..., Path]) -> None:
    img = artwork()
    drop("a.png", img)
    scan(home)
    drop("a-again.png", img)
    [result] = scan(home)
    assert result.outcome == "duplicate"
    assert len(all_jobs(home)) == 3


def test_non_image_is_left_in_place_and_reported(home: config.Config, drop: Callable[..., Path]) -> None:
    doc = drop("notes.txt", b"hello")
    [result] = scan(home)
    assert result.outcome == "skipped" and doc.exists()


def test_symlink_is_never_followed(home: config.Config, tmp_path: Path) -> None:
    secret = tmp_path / "outside.png"
    artwork().save(secret)
    os.symlink(secret, home.outbox / "link.png")
    [result] = scan(home)
    assert result.outcome == "skipped" and "symbolic link" in (result.reason or "")
    assert all_jobs(home) == []


def test_broken_image_fails_with_reason_and_keeps_original(
    home: config.Config, drop: Callable[..., Path]
) -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"garbage" * 10
    drop("broken.png", data)
    [result] = scan(home)
    assert result.outcome == "failed" and "broken.png" in (result.reason or "")
    digest = hashlib.sha256(data).hexdigest()
    assert (home.archive / digest[:2] / f"{digest}.png").read_bytes() == data


def test_palette_and_grayscale_are_accepted(home: config.Config, drop: Callable[..., Path]) -> None:
    drop("p.png", artwork().convert("P"))
    drop("g.png", artwork().convert("L"))
    assert [r.outcome for r in scan(home)] == ["queued", "queued"]


class Records(logging.Handler):
    """The log records of one logger, whatever the rest of the logging setup (poster's own
    setup stops propagation to the root logger, where pytest's caplog listens)."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.DEBUG)
        self.logger = logging.getLogger(name)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> Records:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)


def test_a_file_left_in_the_outbox_is_reported_once_until_it_changes(home: config.Config) -> None:
    """The daemon scans every few seconds: a file it cannot take is kept and shows in every
    scan's results, but is logged once per (path, size, mtime), and again once it changes."""
    text = home.path.read_text().replace("max_file_bytes = 200000000", "max_file_bytes = 1000000")
    home.path.write_text(text)
    cfg = config.load(home.path)
    big = cfg.outbox / "big.png"
    big.write_bytes(b"\x89PNG" + b"\0" * 1_000_000)
    os.utime(big, (1_000_000_000, 1_000_000_000))
    reported = outbox.Reported()
    with Records("poster.outbox") as log:
        for _ in range(3):
            [result] = scan(cfg, reported=reported)
            assert result.outcome == "skipped" and "over the limit" in (result.reason or "")
        assert len(log.messages) == 1 and "big.png" in log.messages[0]
        with big.open("ab") as fh:  # the file changed (size and mtime): a new report
            fh.write(b"\0")
        os.utime(big, (1_000_000_100, 1_000_000_100))
        scan(cfg, reported=reported)
        scan(cfg, reported=reported)
        assert len(log.messages) == 2
        scan(cfg)  # without the daemon's memory (`run --once`): reported as before
        assert len(log.messages) == 3
    assert big.exists() and all_jobs(cfg) == []


def test_daemon_reports_an_unreadable_file_once_per_version(home: config.Config, tmp_path: Path) -> None:
    """A real `poster run` scanning every second, with a file it may not read: the warning
    comes once, not once per scan, and once more after the file changed. Each marker file
    is taken by a later scan, which proves the daemon went on scanning meanwhile."""
    text = home.path.read_text()
    text = text.replace("stable_seconds = 5.0", "stable_seconds = 0.0")
    home.path.write_text(text.replace("scan_interval = 30.0", "scan_interval = 1.0"))
    locked = home.outbox / "locked.png"
    artwork().save(locked)
    locked.chmod(0)
    log = tmp_path / "daemon.log"
    message = "locked.png: cannot read or archive: Permission denied"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*unprivileged(), sys.executable, "-m", "poster", "--config", str(home.path), "run"],
            stdout=out,
            stderr=out,
        )

    def wait_for(done: Callable[[], object]) -> None:
        deadline = time.monotonic() + 60
        while not done():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"the daemon did not get there in 60 s:\n{log.read_text()}"
            time.sleep(0.05)

    def marker(i: int) -> None:
        # planned for 2099, so the markers are taken in but never posted
        (home.outbox / f"m{i}.toml").write_text('at = "2099-01-01T00:00:00+00:00"\n', encoding="utf-8")
        artwork((256, 256), seed=10 + i).save(home.outbox / f".m{i}.part", "PNG")
        os.replace(home.outbox / f".m{i}.part", home.outbox / f"m{i}.png")
        wait_for(lambda: not (home.outbox / f"m{i}.png").exists())

    try:
        wait_for(lambda: message in log.read_text())
        marker(0)
        marker(1)
        with locked.open("ab") as fh:  # still unreadable, but another version of the file
            fh.write(b"\0")
        marker(2)
        marker(3)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert log.read_text().count(message) == 2, log.read_text()
    assert locked.exists()  # kept in the outbox, taken once readable
