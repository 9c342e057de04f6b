"""Rendering in a process pool: the same job states, posts in the same order, the ledger
written as a serial run writes it, and a worker's error failing only its own job with the
reason a serial render gives."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from poster import cli, config, fingerprint, imaging, jobs, mark, markkey, outbox, renderpool, store
from poster.dispatch import Dispatcher
from poster.errors import UserError
from poster.jobs import State
from poster.render import _Untraceable
from tests.conftest import artwork


def setup(tmp_path: Path, workers: int, artworks: int = 3) -> config.Config:
    path = cli.init_home(tmp_path / "home")
    head = path.read_text(encoding="utf-8").split("[targets.x]")[0]
    head = head.replace("workers = 0 ", f"workers = {workers} ")
    path.write_text(
        head
        + '[targets.a]\nadapter = "local"\npolicy = "light"\n'
        + '[targets.b]\nadapter = "local"\npolicy = "heavy"\n',
        encoding="utf-8",
    )
    c = config.load(path)
    assert c.render.workers == workers
    for i in range(artworks):
        buf = io.BytesIO()
        artwork((320, 288), seed=i).save(buf, "PNG")
        (c.outbox / f"art{i}.png").write_bytes(buf.getvalue())
        os.utime(c.outbox / f"art{i}.png", (time.time() - 3600,) * 2)
    return c


def run(c: config.Config) -> tuple[list[tuple[int, State]], dict[int, list[str]], int]:
    with store.connect(c.db_path) as conn:
        outbox.scan(conn, c, wait=True)
        order = [j.id for j in jobs.due(conn, store.now(), ignore_schedule=True)]
        outcomes = Dispatcher(c, conn).run_due(ignore_schedule=True)
        assert [o.job_id for o in outcomes] == order  # posted in the order they were due
        events = "SELECT state FROM events WHERE job_id = ? ORDER BY id"
        states = {job_id: [r[0] for r in conn.execute(events, (job_id,))] for job_id in order}
        key = markkey.load(c.data_dir)
        for v_row in conn.execute("SELECT path, mark_id FROM variants"):
            image = imaging.decode((c.data_dir / v_row[0]).read_bytes()).convert("RGB")
            assert mark.extract(image, key=key) == v_row[1]  # the hidden ID reads back
        ledger_rows = conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
        # each target's row carries its artwork's original print (decoded once per run)
        for job_id in order:
            (original,) = jobs.originals(conn, jobs.get(conn, job_id).artwork_id)
            expected = fingerprint.of_image(fingerprint.load_file(c.data_dir / original.archive_path))
            (row,) = conn.execute("SELECT original_fp FROM ledger WHERE job_id = ?", (job_id,))
            assert row[0] == expected
    return [(o.job_id, o.state) for o in outcomes], states, ledger_rows


def test_pool_posts_in_order_with_the_states_a_serial_run_goes_through(tmp_path: Path) -> None:
    pooled = run(setup(tmp_path / "pool", workers=2))
    serial = run(setup(tmp_path / "serial", workers=1))
    assert pooled == serial
    outcomes, states, ledger_rows = pooled
    assert all(state is State.POSTED for _job, state in outcomes) and len(outcomes) == 6
    assert ledger_rows == 6
    assert all(seq[-4:] == ["rendering", "ready", "posting", "posted"] for seq in states.values())


def test_a_worker_error_fails_its_own_job_with_the_serial_reason(tmp_path: Path) -> None:
    c = setup(tmp_path, workers=2)
    with store.connect(c.db_path) as conn:
        outbox.scan(conn, c, wait=True)
        first = jobs.originals(conn, 1)[0]
        (c.data_dir / first.archive_path).unlink()  # the archived original of artwork 1 is gone
        outcomes = Dispatcher(c, conn).run_due(ignore_schedule=True)
        by_artwork = {o.job_id: (jobs.get(conn, o.job_id).artwork_id, o) for o in outcomes}
    failed = [o for art, o in by_artwork.values() if art == 1]
    assert failed and all(o.state is State.FAILED for o in failed)
    assert all(o.reason and o.reason.startswith("cannot read or write files:") for o in failed)
    assert all(o.state is State.POSTED for art, o in by_artwork.values() if art != 1)


def test_failures_cross_the_process_boundary_as_the_kind_the_dispatcher_handles() -> None:
    untraceable = renderpool.Failure.of(_Untraceable(["as encoded"]))
    back = pickle.loads(pickle.dumps(untraceable)).exception()
    assert isinstance(back, UserError) and "as encoded" in str(back)
    missing = renderpool.Failure.of(FileNotFoundError(2, "No such file or directory", "/x/a.png"))
    back_os = pickle.loads(pickle.dumps(missing)).exception()
    assert isinstance(back_os, OSError) and back_os.errno == 2 and back_os.filename == "/x/a.png"
    bug = pickle.loads(pickle.dumps(renderpool.Failure.of(KeyError("k")))).exception()
    assert isinstance(bug, renderpool.WorkerBug) and bug.type_name == "KeyError"


def test_in_process_run_raises_instead_of_capturing(tmp_path: Path) -> None:
    task = renderpool.Task(
        sources=(renderpool.Source(0, "gone.png", tmp_path / "gone.png"),),
        jobs=(),
        key=b"k" * 32,
        artist="",
        background="#ffffff",
        max_pixels=10_000_000,
    )
    assert renderpool.run(task) == {}
    with pytest.raises(FileNotFoundError):
        renderpool.run(task, capture=False)


_OWNER = """
import os, sys, time
from poster import renderpool
pool = renderpool.pool(2)
pids = {f.result() for f in [pool.submit(os.getpid) for _ in range(8)]}
print(" ".join(map(str, sorted(pids))), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:  # a zombie has ended: it waits only to be reaped
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between it and the read
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_workers_end_when_the_daemon_is_killed() -> None:
    """A daemon killed with SIGKILL cannot shut its pool down; its workers must not wait
    forever (each holds its task queue's write end and the forkserver's keep-alive pipe)."""
    owner = subprocess.Popen([sys.executable, "-c", _OWNER], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert pids and all(_alive(p) for p in pids)
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)]
