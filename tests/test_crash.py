"""Crash safety, proven the hard way: a real `poster run` subprocess posting to a slow
stand-in server on 127.0.0.1 is killed with SIGKILL at random moments and restarted; at the
end every promise is checked (the long version is benchmarks/crash.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from poster import config, jobs, ledger, store
from tests.conftest import run_cli
from tests.servers.slow import SlowServer, _daemon, _png, campaign, home_with_slow_target

# a real daemon killed and restarted again and again: a minute or more (CI runs it)
pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("POSTER_CRASH_KILLS", "15"))


def test_sigkill_at_random_moments_loses_nothing_and_posts_nothing_twice(tmp_path: Path) -> None:
    fig = campaign(tmp_path, kills=KILLS, files=8, seed=int(os.environ.get("POSTER_CRASH_SEED", "7")))
    print(fig.row())
    assert fig.problems == []
    assert fig.kills == KILLS
    assert fig.duplicates == 0  # no caption posted twice
    assert fig.unaccounted == 0  # every accepted post is in the ledger or its job is uncertain
    assert fig.lost == 0  # every file posted or reported
    assert fig.originals_bad == 0  # every original still exists unchanged
    assert fig.jobs == 2 * fig.files  # re-scans after crashes never made a second set of jobs
    assert fig.ledger_ok and fig.clean_exit
    # the server holds every ledgered post, plus at most one per job left uncertain
    assert fig.posted <= fig.accepted <= fig.posted + fig.uncertain


def test_without_lookup_interrupted_posts_wait_for_the_user(tmp_path: Path) -> None:
    """A platform that cannot look posts up: an interrupted post is never re-posted; it
    stays `uncertain` and `poster status` asks the user to confirm it."""
    fig = campaign(tmp_path, kills=8, files=4, seed=3, lookup=False)
    print(fig.row())
    assert fig.problems == [] and fig.duplicates == 0 and fig.lost == 0 and fig.resolved == 0
    assert fig.posted <= fig.accepted <= fig.posted + fig.uncertain
    if fig.uncertain:
        code, out, _ = run_cli("status", cfg=config.load(tmp_path / "home" / "config.toml"))
        assert code == 0 and "poster confirm JOB" in out


# -- signals: the first finishes the request in flight, the second exits at once -------------
def _wait_for_post_request(server: SlowServer, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not server.calls("POST", "/posts"):
        assert proc.poll() is None, "the daemon died"
        assert time.monotonic() < deadline, "the daemon never posted"
        time.sleep(0.05)


def test_sigterm_finishes_the_request_in_flight_then_exits(tmp_path: Path) -> None:
    with SlowServer(delay=(3.0, 3.0)) as server:
        cfg_path = home_with_slow_target(tmp_path / "home", server.url)
        proc = _daemon(cfg_path, tmp_path / "log")
        _wait_for_post_request(server, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert len(server.posts) == 1
    with store.connect(config.load(cfg_path).db_path) as conn:
        (job,) = jobs.all_jobs(conn)
        assert job.state is jobs.State.POSTED  # the answer was waited for and recorded
        assert len(ledger.rows(conn)) == 1


def test_second_signal_exits_at_once_and_the_post_becomes_uncertain(tmp_path: Path) -> None:
    with SlowServer(delay=(4.0, 4.0)) as server:
        cfg_path = home_with_slow_target(tmp_path / "home", server.url)
        proc = _daemon(cfg_path, tmp_path / "log")
        _wait_for_post_request(server, proc)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM
        assert time.monotonic() - t < 2  # did not wait for the 4 s answer
        cfg = config.load(cfg_path)
        with store.connect(cfg.db_path) as conn:
            assert jobs.recover(conn)[0].state is jobs.State.UNCERTAIN


def test_ctrl_c_in_run_once_records_the_post_in_flight(tmp_path: Path) -> None:
    with SlowServer(delay=(3.0, 3.0)) as server:
        cfg_path = home_with_slow_target(tmp_path / "home", server.url)
        (config.load(cfg_path).outbox / "b.png").write_bytes(_png(2))
        proc = _daemon(cfg_path, tmp_path / "log", "run", "--once", "--now")
        _wait_for_post_request(server, proc)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert len(server.posts) == 1  # the second job was not started
    with store.connect(config.load(cfg_path).db_path) as conn:
        states = sorted(j.state.value for j in jobs.all_jobs(conn))
    assert states == ["posted", "ready"] or states == ["pending", "posted"]
