"""The job state machine: guarded transitions with an event per change, recovery after a
crash, one daemon per data folder, and what `confirm --not-posted` may and may not do."""

from __future__ import annotations

import fcntl
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from poster import actions, cli, config, jobs, ledger, outbox, store
from poster.dispatch import Dispatcher
from poster.jobs import State
from tests.conftest import artwork, run_cli


@pytest.fixture
def cfg(tmp_path: Path) -> config.Config:
    c = config.load(cli.init_home(tmp_path / "home"))
    artwork((256, 256)).save(c.outbox / "a.png", "PNG")
    os.utime(c.outbox / "a.png", (time.time() - 3600,) * 2)
    return c


def first(conn: object, target: str = "x") -> jobs.Job:
    return next(j for j in jobs.all_jobs(conn) if j.target == target)  # type: ignore[arg-type]


def events(conn: object, job_id: int) -> list[str]:
    rows = conn.execute("SELECT state FROM events WHERE job_id = ? ORDER BY id", (job_id,))  # type: ignore[attr-defined]
    return [r[0] for r in rows]


def test_guarded_transition_refuses_wrong_state_and_logs_each_change(cfg: config.Config) -> None:
    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        job = first(conn)
        with store.transaction(conn):
            assert not jobs.transition(conn, job.id, State.READY, State.POSTING)
            assert jobs.transition(conn, job.id, State.PENDING, State.RENDERING)
            assert not jobs.transition(conn, job.id, State.PENDING, State.RENDERING)
        assert events(conn, job.id) == ["pending", "rendering"]


def test_recover_after_a_crash(cfg: config.Config) -> None:
    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        x, pixiv = first(conn, "x"), first(conn, "pixiv")
        d = Dispatcher(cfg, conn)
        assert d.render_job(x) is None
        with store.transaction(conn):
            jobs.transition(conn, x.id, State.READY, State.POSTING)
            jobs.transition(conn, pixiv.id, State.PENDING, State.RENDERING)
        uncertain = jobs.recover(conn)
        assert [j.id for j in uncertain] == [x.id]
        assert first(conn, "x").state is State.UNCERTAIN
        assert first(conn, "pixiv").state is State.PENDING  # nothing left the machine
        assert jobs.variants(conn, pixiv.id) == []


def test_run_refuses_while_another_run_holds_the_data_folder(cfg: config.Config) -> None:
    """recover() turns `posting` into `uncertain`: it must never run beside a live daemon."""
    fd = os.open(cfg.data_dir / "run.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = run_cli("run", "--once", "--now", cfg=cfg)
        assert code != 0 and "already" in err
    finally:
        os.close(fd)
    with store.connect(cfg.db_path) as conn:
        assert jobs.all_jobs(conn) == []  # nothing was taken in either


def test_not_posted_reuses_the_key_so_a_wrong_answer_cannot_duplicate(cfg: config.Config) -> None:
    """The user says `--not-posted`, but the post did go out: the job posts again with the
    same key, which the local adapter (like Mastodon's Idempotency-Key) recognises."""
    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        job = first(conn)
        d = Dispatcher(cfg, conn)
        d.render_job(job)
        d.post_job(job)  # published ...
        with store.transaction(conn):  # ... but the process "died" before recording it
            conn.execute("DELETE FROM ledger")
            conn.execute("UPDATE jobs SET state = 'uncertain' WHERE id = ?", (job.id,))
    code, _, err = run_cli("confirm", str(job.id), "--not-posted", cfg=cfg)
    assert code == 0, err
    with store.connect(cfg.db_path) as conn:
        assert first(conn).state is State.READY
        Dispatcher(cfg, conn).run_due(ignore_schedule=True)
        assert first(conn).state is State.POSTED
        assert len([r for r in ledger.rows(conn) if r["target"] == "x"]) == 1
    assert len(list((cfg.data_dir / "posted" / "x").iterdir())) == 1


def test_job_commands_refuse_what_would_lose_or_duplicate(cfg: config.Config) -> None:
    code, _, err = run_cli("run", "--once", "--now", cfg=cfg)
    assert code == 0, err
    with store.connect(cfg.db_path) as conn:
        job = first(conn)
    assert job.state is State.POSTED
    for args in (["retry"], ["cancel"], ["confirm", "--not-posted"]):
        code, _, err = run_cli(*args[:1], str(job.id), *args[1:], cfg=cfg)
        assert code != 0 and err.startswith("poster: error:"), args
    code, _, err = run_cli("confirm", "999", "--not-posted", cfg=cfg)
    assert code != 0 and "no job 999" in err


def test_due_under_now_leaves_a_release_date_alone_until_released(cfg: config.Config) -> None:
    """`ignore_schedule` (run --now) makes pending jobs due at once, except a job waiting for
    the time the artist wrote in its sidecar; `release` ends that wait."""
    (cfg.outbox / "a.toml").write_text('at = "2099-01-01T00:00:00+00:00"\n', encoding="utf-8")
    os.utime(cfg.outbox / "a.toml", (time.time() - 3600,) * 2)
    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        at = datetime.now(UTC)
        assert jobs.due(conn, at, ignore_schedule=True) == []
        assert jobs.due(conn, at) == []
        assert len(jobs.due(conn, datetime(2099, 1, 1, tzinfo=UTC), ignore_schedule=True)) == 3
        x = first(conn, "x")
        assert "released" in actions.release(cfg, conn, x.id)
        assert [j.id for j in jobs.due(conn, at + timedelta(seconds=1), ignore_schedule=True)] == [x.id]
        assert [j.id for j in jobs.due(conn, at + timedelta(seconds=1))] == [x.id]
        assert events(conn, x.id) == ["pending", "pending"]  # the release is in the job's history
