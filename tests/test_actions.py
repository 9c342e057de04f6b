# ruff: noqa: F811
"""What the user does to a job (`poster retry / cancel / confirm`): no action posts a job
that may already be posted without asking the platform first (issue 13, item 2)."""

from __future__ import annotations

from poster import config, jobs, outbox, store
from poster.dispatch import Dispatcher
from poster.jobs import State
from poster.platforms.base import Existence, PostResult
from tests.conftest import run_cli

# `cfg` is test_dispatch's fixture (a home with one scripted target), shared, not redefined
from tests.test_dispatch import ScriptedAdapter, cfg, one_job  # noqa: F401


def uncertain_job(cfg: config.Config) -> jobs.Job:
    ScriptedAdapter.script.append(PostResult.uncertain("the answer did not say"))
    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        Dispatcher(cfg, conn).run_due(ignore_schedule=True)
        job = one_job(conn)
    assert job.state is State.UNCERTAIN
    return job


def state(cfg: config.Config, job_id: int) -> State:
    with store.connect(cfg.db_path) as conn:
        return jobs.get(conn, job_id).state


def test_retry_refuses_an_uncertain_job(cfg: config.Config) -> None:
    job = uncertain_job(cfg)
    code, _, err = run_cli("retry", str(job.id), cfg=cfg)
    assert code != 0 and "confirm" in err
    assert state(cfg, job.id) is State.UNCERTAIN


def test_cancel_then_retry_does_not_turn_uncertain_into_ready(cfg: config.Config) -> None:
    """Cancelling an uncertain job and retrying it was a way around the look-up: it now goes
    back to `uncertain`, and the next run asks the platform before anything is posted."""
    job = uncertain_job(cfg)
    assert run_cli("cancel", str(job.id), cfg=cfg)[0] == 0
    code, out, err = run_cli("retry", str(job.id), cfg=cfg)
    assert code == 0, err
    assert "uncertain again" in out
    assert state(cfg, job.id) is State.UNCERTAIN
    ScriptedAdapter.existence = Existence.EXISTS
    code, out, err = run_cli("run", "--once", "--now", cfg=cfg)
    assert code == 0, err
    assert state(cfg, job.id) is State.POSTED
    assert ScriptedAdapter.posted == []  # found, never posted a second time
    assert len(ScriptedAdapter.lookups) >= 1


def test_retry_of_a_cancelled_job_that_was_never_posted_is_a_plain_retry(
    cfg: config.Config,
) -> None:
    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        job = one_job(conn)
    assert run_cli("cancel", str(job.id), cfg=cfg)[0] == 0
    assert run_cli("retry", str(job.id), cfg=cfg)[0] == 0
    assert state(cfg, job.id) is State.PENDING


def test_confirm_not_posted_looks_the_post_up_first(cfg: config.Config) -> None:
    job = uncertain_job(cfg)
    ScriptedAdapter.existence = Existence.EXISTS
    code, _, err = run_cli("confirm", str(job.id), "--not-posted", cfg=cfg)
    assert code != 0
    assert "https://example/found" in err and "--posted" in err
    assert state(cfg, job.id) is State.UNCERTAIN
    ScriptedAdapter.existence = Existence.UNKNOWN  # the platform cannot tell: the user decides
    code, _, err = run_cli("confirm", str(job.id), "--not-posted", cfg=cfg)
    assert code == 0, err
    assert state(cfg, job.id) is State.READY
