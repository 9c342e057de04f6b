"""What the user does to one job: retry, cancel, confirm. Each returns a one-line summary."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from poster import jobs
from poster.config import Config
from poster.dispatch import Dispatcher
from poster.errors import UserError
from poster.i18n import _
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
        # (an uncertain job without variants was held by `poster restore`: the post may exist,
        # made from a render the restored folder never saw)
        if not jobs.variants(conn, job_id) and job.state is not State.UNCERTAIN:
            raise UserError(f"job {job_id} was never rendered, so it cannot have been posted")
        result = PostResult.posted(remote_id=posted_url, url=posted_url)
        outcome = Dispatcher(config, conn).record_posted(job, result, job.state)
        if outcome.state is not State.POSTED:  # the daemon moved it meanwhile: nothing written
            raise UserError(f"job {job_id} changed to {outcome.state.value} meanwhile; see `poster status`")
        return f"job {job_id} recorded as posted at {posted_url}"
    if job.state is not State.UNCERTAIN:
        raise UserError(f"job {job_id} is {job.state.value}; --not-posted is for uncertain jobs")
    again = State.READY if jobs.variants(conn, job_id) else State.PENDING  # never rendered: render first
    with transaction(conn):
        jobs.transition(
            conn,
            job_id,
            State.UNCERTAIN,
            again,
            reason="confirmed not posted; will post again",
            scheduled_at=now(),
        )
    return f"job {job_id} will be posted again at the next run"


def backup(config: Config, dest: Path) -> str:
    """`poster backup DEST` (and the UI's backup button): a consistent copy of the data
    folder's database, key, originals and variants. Raises UserError (after writing the
    backup) if some file's bytes no longer match what the database recorded."""
    from poster import backup as backup_mod

    r = backup_mod.backup(config.data_dir, config.db_path, dest)
    if r.damaged:
        raise UserError(
            _(
                "backed up into {dest}, but {count} file(s) do not match what the database recorded "
                "(first: {file}); restore them from an older backup"
            ).format(dest=r.dest, count=len(r.damaged), file=r.damaged[0])
        )
    verb = _("refreshed") if r.refreshed else _("created")
    return _(
        "backup {verb} in {dest}: {rows} ledger rows, {jobs} jobs, {files} files copied, "
        "{kept} already there ({size} MB in all)"
    ).format(
        verb=verb,
        dest=r.dest,
        rows=r.ledger_rows,
        jobs=r.tables.get("jobs", 0),
        files=r.copied,
        kept=r.kept,
        size=f"{r.bytes / 1e6:.1f}",
    )


def restore(backup_dir: Path, data_dir: Path) -> list[str]:
    """`poster restore BACKUP DIR`: the backup into a new (or fresh, unused) data folder.
    Returns the lines to show."""
    from poster import backup as backup_mod

    r = backup_mod.restore(backup_dir, data_dir)
    lines = [
        _(
            "restored the backup of {when} into {folder}: {rows} ledger rows (hash chain intact), "
            "{jobs} jobs, {files} files"
        ).format(
            when=r.taken_at,
            folder=r.data_dir,
            rows=r.ledger_rows,
            jobs=r.tables.get("jobs", 0),
            files=r.files,
        )
    ]
    if r.held:
        lines.append(
            _(
                "{count} unfinished job(s) may have been posted after the backup was taken: they are "
                "`uncertain`; `poster run` looks them up where the platform allows, otherwise settle "
                "each with `poster confirm` (see `poster status`)"
            ).format(count=r.held)
        )
    return lines
