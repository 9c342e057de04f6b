"""What the user does: retry, cancel, confirm one job (each returns a one-line summary), and
write an evidence bundle (`proof`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from poster import jobs
from poster import proof as proof_mod
from poster.config import Config
from poster.dispatch import Dispatcher
from poster.errors import UserError
from poster.jobs import State
from poster.platforms.base import PostResult
from poster.store import now, transaction


def retry(conn: sqlite3.Connection, job_id: int) -> str:
    job = jobs.get(conn, job_id)
    has_variants = bool(jobs.variants(conn, job_id))
    new = State.READY if has_variants else State.PENDING
    with transaction(conn):
        if not jobs.transition(
            conn,
            job_id,
            (State.FAILED, State.CANCELLED, State.RETRY_WAIT),
            new,
            reason="retry requested",
            scheduled_at=now(),
        ):
            raise UserError(
                f"job {job_id} is {job.state.value}; only failed, cancelled or waiting jobs can be retried"
                + (" (an uncertain job needs `poster confirm`)" if job.state is State.UNCERTAIN else "")
            )
        conn.execute("UPDATE jobs SET attempts = 0 WHERE id = ?", (job_id,))
    return f"job {job_id} ({job.name} → {job.target}) will be tried again at the next run"


def cancel(conn: sqlite3.Connection, job_id: int) -> str:
    job = jobs.get(conn, job_id)
    with transaction(conn):
        ok = jobs.transition(
            conn,
            job_id,
            (State.PENDING, State.READY, State.RETRY_WAIT, State.FAILED, State.UNCERTAIN),
            State.CANCELLED,
            reason="cancelled by the user",
        )
    if not ok:
        raise UserError(f"job {job_id} is {job.state.value} and cannot be cancelled")
    return f"job {job_id} ({job.name} → {job.target}) cancelled"


def confirm(config: Config, conn: sqlite3.Connection, job_id: int, posted_url: str | None) -> str:
    job = jobs.get(conn, job_id)
    if job.state not in (State.UNCERTAIN, State.READY, State.RETRY_WAIT, State.FAILED):
        raise UserError(f"job {job_id} is {job.state.value}; nothing to confirm")
    if posted_url is not None:
        if not jobs.variants(conn, job_id):
            raise UserError(f"job {job_id} was never rendered, so it cannot have been posted")
        result = PostResult.posted(remote_id=posted_url, url=posted_url)
        outcome = Dispatcher(config, conn).record_posted(job, result, job.state)
        if outcome.state is not State.POSTED:  # the daemon moved it meanwhile: nothing written
            raise UserError(f"job {job_id} changed to {outcome.state.value} meanwhile; see `poster status`")
        return f"job {job_id} recorded as posted at {posted_url}"
    if job.state is not State.UNCERTAIN:
        raise UserError(f"job {job_id} is {job.state.value}; --not-posted is for uncertain jobs")
    with transaction(conn):
        jobs.transition(
            conn,
            job_id,
            State.UNCERTAIN,
            State.READY,
            reason="confirmed not posted; will post again",
            scheduled_at=now(),
        )
    return f"job {job_id} will be posted again at the next run"


def proof(config: Config, conn: sqlite3.Connection, ref: str, out: Path) -> proof_mod.Bundle:
    """`poster proof ARTWORK|POST-ID --out DIR` (poster.proof says what ARTWORK and POST-ID
    are): the evidence bundle, checked against the configured trust anchors."""
    from poster import timestamps

    subject = proof_mod.resolve(conn, ref)
    return proof_mod.write(conn, subject, out, timestamps.anchors(config), config.data_dir)
