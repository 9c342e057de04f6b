from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from poster import config, jobs, outbox, store
from tests.conftest import artwork, run_cli, unprivileged


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


def held(cfg: config.Config) -> Path:
    return cfg.data_dir / "needs-attention"


def age(*paths: Path, seconds: float = 3600) -> None:
    """Make files (or links, or pipes) old enough to count as stable."""
    old = time.time() - seconds
    for p in paths:
        os.utime(p, (old, old), follow_symlinks=False)


def png_bytes(size: tuple[int, int] = (640, 480), seed: int = 0) -> bytes:
    buf = io.BytesIO()
    image = artwork(size, seed=seed) if min(size) >= 64 else Image.new("RGB", size, (200, 30, 30))
    image.save(buf, "PNG")
    return buf.getvalue()


def with_intake(cfg: config.Config, **settings: object) -> config.Config:
    """The same home with other [intake] settings."""
    text = cfg.path.read_text(encoding="utf-8")
    for key, value in settings.items():
        lines = [ln for ln in text.splitlines() if ln.startswith(f"{key} = ")]
        text = text.replace(lines[0], f"{key} = {value}")
    cfg.path.write_text(text, encoding="utf-8")
    return config.load(cfg.path)


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


def test_invalid_sidecar_holds_the_artwork_with_the_reason(
    home: config.Config, drop: Callable[..., Path]
) -> None:
    img = drop("bad.png", artwork())
    side = drop("bad.toml", b'rating = "spicy"\n')
    image, text = img.read_bytes(), side.read_bytes()
    [result] = scan(home)
    assert result.outcome == "held" and "bad.toml: rating" in (result.reason or "")
    assert all_jobs(home) == []  # never posted without the age rating the artist meant
    assert not img.exists() and not side.exists()
    assert (held(home) / "bad.png").read_bytes() == image  # kept, byte for byte
    assert (held(home) / "bad.toml").read_bytes() == text
    note = (held(home) / "bad.png.reason.txt").read_text(encoding="utf-8")
    assert result.reason in note and "理由" in note and "What to do" in note


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


def test_broken_image_is_held_with_reason_and_kept(home: config.Config, drop: Callable[..., Path]) -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"garbage" * 10
    drop("broken.png", data)
    [result] = scan(home)
    assert result.outcome == "held" and "broken.png" in (result.reason or "")
    assert result.moved_to == held(home) / "broken.png"
    assert (held(home) / "broken.png").read_bytes() == data
    assert all_jobs(home) == []


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
        self.level_before = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level_before)


def test_an_entry_left_in_the_outbox_is_reported_once_until_it_changes(home: config.Config) -> None:
    """The daemon scans every few seconds: an entry it leaves alone (here a named pipe, which
    is never opened) shows in every scan's results, but is logged once per (path, size,
    mtime), and again once it changes."""
    pipe = home.outbox / "pipe.png"
    os.mkfifo(pipe)
    os.utime(pipe, (1_000_000_000, 1_000_000_000))
    reported = outbox.Reported()
    with Records("poster.outbox") as log:
        for _ in range(3):
            [result] = scan(home, reported=reported)
            assert result.outcome == "skipped" and "named pipe" in (result.reason or "")
        assert len(log.messages) == 1 and "pipe.png" in log.messages[0]
        os.utime(pipe, (1_000_000_100, 1_000_000_100))  # it changed: a new report
        scan(home, reported=reported)
        scan(home, reported=reported)
        assert len(log.messages) == 2
        scan(home)  # without the daemon's memory (`run --once`): reported as before
        assert len(log.messages) == 3
    assert stat.S_ISFIFO(pipe.lstat().st_mode) and all_jobs(home) == []


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


# -- only regular files, never through a link (issue 13, items 4 and 5) ----------------------
def test_a_named_pipe_never_blocks_run_once(home: config.Config) -> None:
    """`mkfifo ff.toml` beside ff.png: opening the pipe for reading would block for ever. A
    real `poster run --once --now` finishes: ff.png is held (its sidecar is not a file), a
    lone pipe is reported and left alone, and the other artwork is posted."""
    artwork(seed=1).save(home.outbox / "ff.png")
    os.mkfifo(home.outbox / "ff.toml")
    os.mkfifo(home.outbox / "pipe.png")
    artwork(seed=2).save(home.outbox / "ok.png")
    age(*home.outbox.iterdir())
    proc = subprocess.run(
        [sys.executable, "-m", "poster", "--config", str(home.path), "run", "--once", "--now"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out  # something was held: a script can tell
    assert "ff.toml: is a named pipe (FIFO), not a regular file" in out, out
    assert "pipe.png: a named pipe (FIFO), not a file: not read; left in place" in out, out
    assert (held(home) / "ff.png").is_file()
    assert stat.S_ISFIFO((held(home) / "ff.toml").lstat().st_mode)
    assert stat.S_ISFIFO((home.outbox / "pipe.png").lstat().st_mode)
    assert {(j.name, j.state) for j in all_jobs(home)} == {("ok.png", jobs.State.POSTED)}


def test_a_symlinked_sidecar_is_never_read_and_holds_its_image(
    home: config.Config, drop: Callable[..., Path], tmp_path: Path
) -> None:
    """Reported as "not followed", it used to be read all the same, and the image then waited
    for ever as "still changing". Now the link is not read and the image is held at once,
    with a reason that says what to do (posting without the caption or rating the artist
    meant would be worse)."""
    outside = tmp_path / "elsewhere.toml"
    outside.write_text('rating = "r18"\ncaption = "from elsewhere"\n', encoding="utf-8")
    drop("b.png", artwork())
    os.symlink(outside, home.outbox / "b.toml")
    age(home.outbox / "b.toml")
    [result] = scan(home, wait=True)
    assert result.outcome == "held"
    assert (
        result.reason == "b.toml: is a symbolic link, which poster never follows: put the file itself there"
    )
    assert all_jobs(home) == []
    assert (held(home) / "b.png").is_file()
    assert (held(home) / "b.toml").is_symlink() and os.readlink(held(home) / "b.toml") == str(outside)
    assert outside.read_text(encoding="utf-8").startswith('rating = "r18"')


@pytest.mark.parametrize("linked", ["2.png", "post.toml"])
def test_a_link_inside_an_artwork_folder_holds_the_whole_folder(
    home: config.Config, drop: Callable[..., Path], tmp_path: Path, linked: str
) -> None:
    """A linked image used to be dropped from the post without a word, a linked post.toml
    was read through the link. Links are never followed anywhere in the outbox."""
    drop("set/1.png", artwork(seed=1))
    outside = tmp_path / "outside"
    if linked == "2.png":
        artwork(seed=2).save(outside, "PNG")
    else:
        outside.write_text('title = "elsewhere"\n', encoding="utf-8")
    os.symlink(outside, home.outbox / "set" / linked)
    age(home.outbox / "set" / linked)
    [result] = scan(home)
    assert result.outcome == "held"
    assert (result.reason or "").startswith(f"set/{linked}: is a symbolic link")
    assert all_jobs(home) == []
    assert (held(home) / "set" / "1.png").is_file() and (held(home) / "set" / linked).is_symlink()
    assert (held(home) / "set.reason.txt").is_file() and not (home.outbox / "set").exists()


def test_a_file_dated_in_the_future_is_taken_once_it_has_settled(home: config.Config) -> None:
    """A modification time ahead of our clock (another machine, a camera's card) cannot say
    when the file was last written: it is watched instead, not waited for until that date."""
    cfg = with_intake(home, stable_seconds=0.5)
    path = cfg.outbox / "future.png"
    artwork().save(path)
    ahead = time.time() + 86400
    os.utime(path, (ahead, ahead))
    [result] = scan(cfg, wait=True)
    assert result.outcome == "queued"


# -- nothing the user wrote is lost; a fixed re-drop is taken (issue 13, item 6) ----------------
def test_what_cannot_be_taken_is_kept_with_its_reason_and_taken_once_fixed(home: config.Config) -> None:
    """Held artworks go, whole and byte for byte, to needs-attention/ with NAME.reason.txt;
    `status` lists them; once fixed and moved back (the same image with a corrected sidecar,
    the same file after the limit was raised) they are taken like a new drop."""
    cfg = with_intake(home, max_image_pixels=1000000)
    box = cfg.outbox
    files = {
        "cap.png": png_bytes(seed=1),
        "cap.toml": ('caption = "' + "x" * 100_000 + '"\n').encode(),
        "broken.png": png_bytes(seed=2),
        "broken.toml": b'title = "unclosed\n',
        "doc.png": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",  # a renamed PDF
        "dot.png": png_bytes((1, 1)),  # 1×1
        "big.png": png_bytes((1200, 1000), seed=3),  # 1.2 megapixels, over the 1 MP limit
    }
    for name, data in files.items():
        (box / name).write_bytes(data)
    age(*box.iterdir())
    code, out, err = run_cli("run", "--once", "--now", cfg=cfg)
    assert code == 1, out + err
    assert sorted(os.listdir(box)) == []
    for name, data in files.items():
        assert (held(cfg) / name).read_bytes() == data, name
    reasons = {
        "cap.png": "cap.toml: sidecar is over the 65536-byte limit (intake.max_sidecar_bytes)",
        "broken.png": "broken.toml: invalid TOML",
        "doc.png": "doc.png: not an image",
        "dot.png": "dot.png: 1x1 is too small",
        "big.png": "big.png: 1200x1000 is 1 megapixels, over the limit of 1 (intake.max_image_pixels)",
    }
    for name, reason in reasons.items():
        assert reason in (held(cfg) / f"{name}.reason.txt").read_text(encoding="utf-8"), name
        assert f"held     {name}: {reason}" in err, err
    assert json.loads(run_cli("status", "--json", cfg=cfg)[1]) == []  # no job: nothing recorded
    code, out, _err = run_cli("status", cfg=cfg)
    assert code == 0 and "5 artwork(s) not taken in" in out
    for name, reason in reasons.items():
        assert f"  {name}: {reason}" in out

    # the illustrator fixes three of them and moves them back
    os.replace(held(cfg) / "broken.png", box / "broken.png")
    (box / "broken.toml").write_text('title = "closed"\n', encoding="utf-8")
    os.replace(held(cfg) / "cap.png", box / "cap.png")
    (box / "cap.toml").write_text('caption = "short"\n', encoding="utf-8")
    cfg = with_intake(cfg, max_image_pixels=2000000)
    os.replace(held(cfg) / "big.png", box / "big.png")
    age(*box.iterdir())
    code, out, err = run_cli("run", "--once", "--now", cfg=cfg)
    assert code == 0, out + err
    for name in ("big.png", "broken.png", "cap.png"):
        assert f"queued   {name}" in out
        assert not (held(cfg) / f"{name}.reason.txt").exists()  # poster's stale note is gone
    states = {(j.name, j.state) for j in all_jobs(cfg)}
    assert states == {(n, jobs.State.POSTED) for n in ("big.png", "broken.png", "cap.png")}
    [job] = [j for j in all_jobs(cfg) if j.name == "broken.png" and j.target == "x"]
    assert job.meta["title"] == "closed"
    out = run_cli("status", cfg=cfg)[1]
    assert "2 artwork(s) not taken in" in out and "doc.png" in out and "dot.png" in out


def test_a_second_held_artwork_of_the_same_name_is_kept_beside_the_first(
    home: config.Config, drop: Callable[..., Path]
) -> None:
    drop("a.png", b"not an image")
    scan(home)
    drop("a.png", b"still not an image")
    drop("a.toml", b'title = "A"\n')
    [result] = scan(home)
    assert result.outcome == "held" and result.moved_to == held(home) / "a (2).png"
    assert (held(home) / "a.png").read_bytes() == b"not an image"
    assert (held(home) / "a (2).png").read_bytes() == b"still not an image"
    assert (held(home) / "a (2).toml").read_bytes() == b'title = "A"\n'
    note = (held(home) / "a (2).png.reason.txt").read_text(encoding="utf-8")
    assert "Renamed a.png to a (2).png" in note and "Renamed a.toml to a (2).toml" in note


def test_two_images_sharing_one_sidecar_are_held_together(
    home: config.Config, drop: Callable[..., Path]
) -> None:
    """Taking one would remove the sidecar, and the other would then be posted without the
    rating meant for it."""
    drop("a.png", artwork(seed=1))
    drop("a.jpg", artwork(seed=2), fmt="JPEG")
    drop("a.toml", b'rating = "r18"\n')
    [result] = scan(home)
    assert result.outcome == "held" and "a.jpg, a.png share the sidecar a.toml" in (result.reason or "")
    assert scan(home) == []
    assert all_jobs(home) == []
    assert sorted(os.listdir(held(home))) == ["a.jpg", "a.jpg.reason.txt", "a.png", "a.toml"]


def test_a_sidecar_without_its_image_is_reported_and_left(
    home: config.Config, drop: Callable[..., Path]
) -> None:
    side = drop("lonely.toml", b'title = "Lonely"\n')
    [result] = scan(home)
    assert result.outcome == "skipped" and "sidecar without an image" in (result.reason or "")
    assert side.exists()


def test_a_file_name_that_is_not_utf8_is_held_not_stuck(home: config.Config) -> None:
    """It used to wait for ever ("internal error") and broke the log line reporting it."""
    name = os.path.join(os.fsencode(home.outbox), b"caf\xe9.png")
    with open(name, "wb") as fh:
        fh.write(png_bytes())
    os.utime(name, (1_000_000_000, 1_000_000_000))
    [result] = scan(home)
    assert result.outcome == "held" and "not valid UTF-8" in (result.reason or "")
    assert os.path.exists(os.path.join(os.fsencode(held(home)), b"caf\xe9.png"))
    code, out, err = run_cli("status", cfg=home)
    assert code == 0 and "caf\\udce9.png: caf\\udce9.png: the file name is not valid UTF-8" in out, err


def test_an_earlier_drop_that_never_went_out_does_not_block_the_same_files(
    home: config.Config, drop: Callable[..., Path]
) -> None:
    """Data folders of earlier versions hold artworks whose every job failed at intake (and
    a user may cancel every job of one): nothing of it was ever sent, so dropping the same
    files again takes them afresh. An artwork still queued, or with a job that was sent,
    keeps the same files from being posted twice."""
    img = artwork()
    drop("a.png", img)
    [first] = scan(home)
    conn = store.connect(home.db_path)
    with store.transaction(conn):  # as an earlier version recorded an intake failure
        conn.execute("UPDATE jobs SET state = 'failed', reason = 'a.png: over the limit'")
    conn.close()
    drop("a.png", img)
    [again] = scan(home)
    assert again.outcome == "queued" and again.artwork_id != first.artwork_id
    drop("a.png", img)
    [third] = scan(home)
    assert third.outcome == "duplicate" and third.artwork_id == again.artwork_id  # still queued
    conn = store.connect(home.db_path)
    with store.transaction(conn):  # sent once, then cancelled: it may exist on the platform
        [job, *_rest] = [j for j in jobs.all_jobs(conn) if j.artwork_id == again.artwork_id]
        conn.execute("UPDATE jobs SET state = 'cancelled' WHERE artwork_id = ?", (again.artwork_id,))
        jobs._event(conn, job.id, jobs.State.POSTING, None)
    conn.close()
    drop("a.png", img)
    [fourth] = scan(home)
    assert fourth.outcome == "duplicate" and fourth.artwork_id == again.artwork_id


# -- sidecar values that could overflow later (issue 13, item 8) --------------------------------
def test_a_date_out_of_range_is_held_with_one_line_naming_the_key(home: config.Config) -> None:
    artwork().save(home.outbox / "a.png")
    (home.outbox / "a.toml").write_text("at = 9999-12-31T23:59:59-12:00\n", encoding="utf-8")
    age(*home.outbox.iterdir())
    code, out, err = run_cli("run", "--once", "--now", cfg=home)
    assert code == 1 and "internal error" not in out + err
    [line] = [ln for ln in err.splitlines() if ln.startswith("held")]
    assert line.startswith("held     a.png: a.toml: at: 9999-12-31T23:59:59-12:00 is out of range"), line
    assert not (home.outbox / "a.png").exists() and (held(home) / "a.toml").exists()
    assert json.loads(run_cli("status", "--json", cfg=home)[1]) == []


def test_an_artwork_for_disabled_targets_waits_in_the_outbox(
    home: config.Config, drop: Callable[..., Path]
) -> None:
    """It used to be taken with no job at all: gone from the outbox, nothing in `status`."""
    text = home.path.read_text(encoding="utf-8")
    home.path.write_text(
        text.replace("[targets.pixiv]\n", "[targets.pixiv]\nenabled = false\n"), encoding="utf-8"
    )
    cfg = config.load(home.path)
    img = drop("p.png", artwork())
    drop("p.toml", b'targets = ["pixiv"]\n')
    [result] = scan(cfg)
    assert result.outcome == "waiting" and "no enabled target" in (result.reason or "")
    assert img.exists() and all_jobs(cfg) == []
    home.path.write_text(text, encoding="utf-8")  # enabled again: taken
    [result] = scan(config.load(home.path))
    assert result.outcome == "queued" and [j.target for j in all_jobs(cfg)] == ["pixiv"]


# -- batches: one transaction for many artworks -------------------------------------------------
def _small_png(seed: int) -> bytes:
    buf = io.BytesIO()
    artwork((300, 260), seed=seed).save(buf, "PNG")
    return buf.getvalue()


def test_a_scan_records_many_artworks_in_one_transaction(
    home: config.Config, drop: Callable[..., Path]
) -> None:
    for i in range(12):
        drop(f"a{i:02d}.png", _small_png(i))
    commits: list[str] = []
    with store.opened(home.db_path) as conn:
        conn.set_trace_callback(lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None)
        results = outbox.scan(conn, home)
        conn.set_trace_callback(None)
        jobs_per_artwork = conn.execute("SELECT count(*) FROM jobs GROUP BY artwork_id").fetchall()
    assert [r.outcome for r in results] == ["queued"] * 12
    assert len(commits) == 1  # was one per artwork
    assert [n for (n,) in jobs_per_artwork] == [len(list(home.enabled_targets()))] * 12
    assert list(home.outbox.iterdir()) == []
    assert len(list(home.archive.rglob("*.png"))) == 12
    assert not list(home.archive.rglob("*.tmp"))  # every staged copy was published


def test_one_artwork_failing_in_a_batch_leaves_the_others_taken(
    home: config.Config, drop: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from poster import schedule

    for i in range(5):
        drop(f"a{i}.png", _small_png(i))
    real = schedule.Planner.initial_time
    calls = {"n": 0}

    def flaky(self: schedule.Planner, target: str, *args: object) -> object:
        calls["n"] += 1
        if calls["n"] == 8:  # the third artwork's second job: its first job is rolled back too
            raise RuntimeError("boom")
        return real(self, target, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(schedule.Planner, "initial_time", flaky)
    with store.opened(home.db_path) as conn:
        results = outbox.scan(conn, home)
        names = [r[0] for r in conn.execute("SELECT name FROM artworks ORDER BY id")]
        orphans = conn.execute(
            "SELECT count(*) FROM jobs WHERE artwork_id NOT IN (SELECT id FROM artworks)"
        ).fetchone()[0]
        per_artwork = {r[0] for r in conn.execute("SELECT count(*) FROM jobs GROUP BY artwork_id")}
    assert [r.outcome for r in results] == ["queued", "queued", "waiting", "queued", "queued"]
    assert "RuntimeError: boom" in (results[2].reason or "")
    assert names == ["a0.png", "a1.png", "a3.png", "a4.png"] and orphans == 0
    assert per_artwork == {len(list(home.enabled_targets()))}
    assert [p.name for p in home.outbox.iterdir()] == ["a2.png"]  # taken by the next scan
    monkeypatch.setattr(schedule.Planner, "initial_time", real)
    with store.opened(home.db_path) as conn:
        assert [r.outcome for r in outbox.scan(conn, home)] == ["queued"]


def test_reasons_found_while_preparing_ahead_are_in_the_users_language(
    home: config.Config, drop: Callable[..., Path]
) -> None:
    """The artworks are checked in threads ahead of the one being recorded: their reasons
    must still be in the language of the command (a context variable), not English."""
    from poster import i18n

    drop("bad.png", b"not an image at all\n" * 20)
    drop("good.png", _small_png(1))
    with i18n.using("ja"):
        expected = i18n._("{name}: not an image Pillow can read (wrong extension or damaged file)")
        results = {r.name: r for r in scan(home)}
    assert expected != "{name}: not an image Pillow can read (wrong extension or damaged file)"
    assert results["bad.png"].outcome == "held"
    assert results["bad.png"].reason == expected.format(name="bad.png")
    assert results["good.png"].outcome == "queued"


def test_copies_a_killed_scan_left_staged_are_swept_and_fresh_ones_kept(
    home: config.Config, drop: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan killed between staging and its commit leaves NAME.<random>.tmp in the archive
    (its artwork stays in the outbox and is staged again): the next process's first scan
    removes the old ones and nothing else."""
    monkeypatch.setattr(outbox, "_swept", set())
    shard = home.archive / "ab"
    shard.mkdir(parents=True)
    old = shard / f"{'ab' * 32}.png.0123456789ab.tmp"
    fresh = shard / f"{'ab' * 32}.png.ba9876543210.tmp"
    kept = shard / f"{'ab' * 32}.png"  # a published original: never touched
    for p in (old, fresh, kept):
        p.write_bytes(b"x")
    hour_ago = time.time() - outbox.STALE_STAGED_SECONDS - 60
    for p in (old, kept):
        os.utime(p, (hour_ago, hour_ago))
    drop("a.png", _small_png(1))
    with store.opened(home.db_path) as conn:
        assert [r.outcome for r in outbox.scan(conn, home)] == ["queued"]
    assert not old.exists() and fresh.exists() and kept.exists()
    old.write_bytes(b"x")
    os.utime(old, (hour_ago, hour_ago))
    with store.opened(home.db_path) as conn:
        outbox.scan(conn, home)
    assert old.exists()  # once per process: scans every 30 s do not walk the archive again
