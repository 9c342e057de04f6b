"""What the user does: retry, cancel, confirm, release one job (each returns a one-line
summary), and trace found images. The CLI and the web UI call the same functions."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from poster import jobs
from poster.config import Config
from poster.dispatch import Dispatcher
from poster.errors import UserError
from poster.i18n import _
from poster.jobs import State
from poster.platforms.base import PostResult
from poster.store import now, transaction

if TYPE_CHECKING:
    from poster.trace import Traced


def retry(conn: sqlite3.Connection, job_id: int) -> str:
    job = jobs.get(conn, job_id)
    has_variants = bool(jobs.variants(conn, job_id))
    new = State.READY if has_variants else State.PENDING
    at = now()
    # "try again" is not "post before the release date": that is `release`
    keep_date = jobs.waits_for_release(job, at)
    with transaction(conn):
        if not jobs.transition(
            conn,
            job_id,
            (State.FAILED, State.CANCELLED, State.RETRY_WAIT),
            new,
            reason="retry requested",
            scheduled_at=job.scheduled_at if keep_date else at,
        ):
            raise UserError(
                f"job {job_id} is {job.state.value}; only failed, cancelled or waiting jobs can be retried"
                + (" (an uncertain job needs `poster confirm`)" if job.state is State.UNCERTAIN else "")
            )
        conn.execute("UPDATE jobs SET attempts = 0 WHERE id = ?", (job_id,))
    if keep_date:
        return _(
            "job {job} ({name} → {target}) will be tried again on its release date {when} "
            "(`poster release {job}` posts it earlier)"
        ).format(job=job_id, name=job.name, target=job.target, when=job.meta.get("at"))
    return f"job {job_id} ({job.name} → {job.target}) will be tried again at the next run"


def release(config: Config, conn: sqlite3.Connection, job_id: int) -> str:
    """Post a job before its time: the release date its sidecar sets (`at`), which even
    `run --once --now` waits for, or its slot. It goes out at the next run (the daemon still
    paces it; `run --once --now` does not)."""
    from poster.schedule import zone

    job = jobs.get(conn, job_id)
    if job.state not in (State.PENDING, State.READY):
        raise UserError(
            _("job {job} is {state}; only a pending or ready job can be released early").format(
                job=job_id, state=job.state.value
            )
        )
    at = now()
    if job.scheduled_at <= at:
        raise UserError(_("job {job} is already due: it goes out at the next run").format(job=job_id))
    with transaction(conn):
        if not jobs.transition(
            conn, job_id, job.state, job.state, reason=_("released early by the user"), scheduled_at=at
        ):
            raise UserError(_("job {job} changed meanwhile; see `poster status`").format(job=job_id))
    when = job.scheduled_at.astimezone(zone(config)).strftime("%Y-%m-%d %H:%M")
    return _("job {job} ({name} → {target}) released: it goes out at the next run instead of {when}").format(
        job=job_id, name=job.name, target=job.target, when=when
    )


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


def trace_images(
    config: Config,
    conn: sqlite3.Connection,
    items: Sequence[Path | bytes | tuple[str, bytes]],
    *,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[Traced]:
    """Trace found images (paths, bytes, or (name, bytes) as uploaded) against this data
    folder's ledger and archive: one `poster.trace.Traced` per item, in order, each with its
    verdict (`result.verdict`), matches and evidence, or the reason it could not be read.
    `progress(done, total, name)` is called after each image. The JSON of one item is
    `Traced.to_json()` (the CONTRACT's `{"file", "matches"}` plus `verdict`, `artwork`)."""
    from poster import markkey
    from poster import trace as trace_mod

    tracer = trace_mod.Tracer(
        conn, markkey.load(config.data_dir), config.data_dir, cache=trace_mod.index_cache(config.data_dir)
    )
    return trace_mod.trace_many(tracer, items, progress=progress, keep_images=True)
