"""Job states and transitions: the queue.

    pending → rendering → ready → posting → posted
                                   ↘ retry_wait → posting
    any unfinished → failed | cancelled;   posting at a crash → uncertain

Every transition is a guarded UPDATE (`WHERE state = <expected>`) committed before the side
effect it guards, so a crash or a concurrent CLI command can never make a job skip a state.
"""

from __future__ import annotations

import enum
import json
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from poster.errors import UserError
from poster.i18n import _
from poster.store import iso, now, parse_iso, transaction


class State(enum.StrEnum):
    PENDING = "pending"
    RENDERING = "rendering"
    READY = "ready"
    POSTING = "posting"
    POSTED = "posted"
    RETRY_WAIT = "retry_wait"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    CANCELLED = "cancelled"


DUE_STATES = (State.PENDING, State.READY, State.RETRY_WAIT)


@dataclass(frozen=True)
class Job:
    id: int
    artwork_id: int
    target: str
    state: State
    scheduled_at: datetime
    attempts: int
    reason: str | None
    post_key: str
    url: str | None
    remote_id: str | None
    name: str
    meta: dict[str, Any]
    approved_at: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(
            id=row["id"],
            artwork_id=row["artwork_id"],
            target=row["target"],
            state=State(row["state"]),
            scheduled_at=parse_iso(row["scheduled_at"]),
            attempts=row["attempts"],
            reason=row["reason"],
            post_key=row["post_key"],
            url=row["url"],
            remote_id=row["remote_id"],
            name=row["name"],
            meta=json.loads(row["meta"]),
            approved_at=row["approved_at"],
        )


@dataclass(frozen=True)
class Original:
    idx: int
    name: str
    sha256: str
    archive_path: str


@dataclass(frozen=True)
class Variant:
    idx: int
    mark_id: int
    path: str
    sha256: str
    format: str
    width: int
    height: int
    bytes: int
    render: dict[str, Any]


_SELECT = (
    "SELECT jobs.*, artworks.name, artworks.meta FROM jobs JOIN artworks ON artworks.id = jobs.artwork_id"
)


def new_post_key() -> str:
    return secrets.token_hex(12)


def _event(conn: sqlite3.Connection, job_id: int, state: State, reason: str | None) -> None:
    conn.execute(
        "INSERT INTO events (job_id, at, state, reason) VALUES (?, ?, ?, ?)",
        (job_id, iso(now()), state.value, reason),
    )


def transition(
    conn: sqlite3.Connection,
    job_id: int,
    expected: State | tuple[State, ...],
    new: State,
    *,
    reason: str | None = None,
    scheduled_at: datetime | None = None,
    count_attempt: bool = False,
) -> bool:
    """Move a job from one of `expected` to `new`. False if it was not in `expected`.
    Must run inside a transaction."""
    states = (expected,) if isinstance(expected, State) else expected
    marks = ",".join("?" * len(states))
    sets = ["state = ?", "reason = ?", "updated_at = ?"]
    args: list[Any] = [new.value, reason, iso(now())]
    if scheduled_at is not None:
        sets.append("scheduled_at = ?")
        args.append(iso(scheduled_at))
    if count_attempt:
        sets.append("attempts = attempts + 1")
    cur = conn.execute(
        f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND state IN ({marks})",
        [*args, job_id, *[s.value for s in states]],
    )
    if cur.rowcount:
        _event(conn, job_id, new, reason)
    return bool(cur.rowcount)


def get(conn: sqlite3.Connection, job_id: int) -> Job:
    row = conn.execute(f"{_SELECT} WHERE jobs.id = ?", (job_id,)).fetchone()
    if row is None:
        raise UserError(_("no job {job_id} (see `poster status`)").format(job_id=job_id))
    return Job.from_row(row)


def in_state(conn: sqlite3.Connection, state: State) -> list[Job]:
    """The jobs in one state (the jobs_state index: a tick does not read the whole history)."""
    return [
        Job.from_row(r)
        for r in conn.execute(
            f"{_SELECT} WHERE jobs.state = ? ORDER BY jobs.scheduled_at, jobs.id", (state.value,)
        )
    ]


def all_jobs(conn: sqlite3.Connection) -> list[Job]:
    return list(iter_jobs(conn))


def iter_jobs(conn: sqlite3.Connection) -> Iterator[Job]:
    """Every job by scheduled time, read as it is consumed (flat memory for a long history)."""
    for r in conn.execute(f"{_SELECT} ORDER BY jobs.scheduled_at, jobs.id"):
        yield Job.from_row(r)


def latest(conn: sqlite3.Connection, limit: int, offset: int = 0) -> list[Job]:
    """A page of the newest jobs (highest numbers first, skipping `offset`), by scheduled time."""
    found = [
        Job.from_row(r)
        for r in conn.execute(f"{_SELECT} ORDER BY jobs.id DESC LIMIT ? OFFSET ?", (limit, offset))
    ]
    return sorted(found, key=lambda j: (j.scheduled_at, j.id))


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """How many jobs are in each state."""
    return dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())


def artist_time(job: Job) -> datetime | None:
    """The time the artist wrote in the sidecar (`at`): a release date. None if not set."""
    value = job.meta.get("at")
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None


def waits_for_release(job: Job, at: datetime) -> bool:
    """True while `job` waits for the time the artist wrote (sidecar `at`). `run --now`
    ignores slots, pacing and delays, never that; `poster release` (which moves the job's
    time before it) is the explicit way to post earlier."""
    release = artist_time(job)
    return release is not None and at < release <= job.scheduled_at


def due(conn: sqlite3.Connection, at: datetime, *, ignore_schedule: bool = False) -> list[Job]:
    """Jobs to work on now, oldest first. `ignore_schedule` (run --now) makes pending and
    ready jobs due at once, except those waiting for the release date their sidecar sets;
    a retry time the platform asked for is still honoured."""
    return [
        j
        for j in waiting(conn)
        if j.scheduled_at <= at
        or (ignore_schedule and j.state != State.RETRY_WAIT and not waits_for_release(j, at))
    ]


def waiting(conn: sqlite3.Connection) -> list[Job]:
    """Every job that will still be worked on (pending, ready, retry_wait), oldest first."""
    marks = ",".join("?" * len(DUE_STATES))
    rows = conn.execute(
        f"{_SELECT} WHERE jobs.state IN ({marks}) ORDER BY jobs.scheduled_at, jobs.id",
        [s.value for s in DUE_STATES],
    ).fetchall()
    return [Job.from_row(r) for r in rows]


def originals(conn: sqlite3.Connection, artwork_id: int) -> list[Original]:
    rows = conn.execute(
        "SELECT idx, name, sha256, archive_path FROM originals WHERE artwork_id = ? ORDER BY idx",
        (artwork_id,),
    )
    return [Original(r["idx"], r["name"], r["sha256"], r["archive_path"]) for r in rows]


def variants(conn: sqlite3.Connection, job_id: int) -> list[Variant]:
    rows = conn.execute("SELECT * FROM variants WHERE job_id = ? ORDER BY idx", (job_id,))
    return [
        Variant(
            r["idx"],
            r["mark_id"],
            r["path"],
            r["sha256"],
            r["format"],
            r["width"],
            r["height"],
            r["bytes"],
            json.loads(r["render"]),
        )
        for r in rows
    ]


def reserve_mark_id(conn: sqlite3.Connection, job_id: int, idx: int) -> int:
    """A fresh random 48-bit hidden ID, never handed out before (inside a transaction)."""
    while True:
        mark_id = secrets.randbits(48)
        if mark_id == 0:
            continue
        try:
            conn.execute(
                "INSERT INTO marks (mark_id, job_id, idx, created_at) VALUES (?, ?, ?, ?)",
                (mark_id, job_id, idx, iso(now())),
            )
            return mark_id
        except sqlite3.IntegrityError:
            continue


def save_variants(conn: sqlite3.Connection, job_id: int, items: list[Variant]) -> None:
    """Replace the job's variants; an approval was of the old pixels, so it is withdrawn."""
    conn.execute("DELETE FROM variants WHERE job_id = ?", (job_id,))
    conn.execute("UPDATE jobs SET approved_at = NULL WHERE id = ?", (job_id,))
    conn.executemany(
        "INSERT INTO variants (job_id, idx, mark_id, path, sha256, format, width, height, bytes,"
        " render) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                job_id,
                v.idx,
                v.mark_id,
                v.path,
                v.sha256,
                v.format,
                v.width,
                v.height,
                v.bytes,
                json.dumps(v.render, sort_keys=True),
            )
            for v in items
        ],
    )


def recover(conn: sqlite3.Connection) -> list[Job]:
    """At start-up: a job caught `rendering` goes back to pending (no side effect happened);
    a job caught `posting` becomes `uncertain` (the post may exist). Returns the latter."""
    with transaction(conn):
        for row in conn.execute("SELECT id FROM jobs WHERE state = ?", (State.RENDERING.value,)).fetchall():
            conn.execute("DELETE FROM variants WHERE job_id = ?", (row["id"],))
            transition(
                conn,
                row["id"],
                State.RENDERING,
                State.PENDING,
                reason=_("render interrupted; will render again"),
            )
        stuck = conn.execute("SELECT id FROM jobs WHERE state = ?", (State.POSTING.value,)).fetchall()
        for row in stuck:
            transition(
                conn,
                row["id"],
                State.POSTING,
                State.UNCERTAIN,
                reason=_("interrupted while posting: the post may or may not exist"),
            )
    return [get(conn, r["id"]) for r in stuck]


def previous_state(conn: sqlite3.Connection, job_id: int) -> State | None:
    """The state a job was in before its current one (from its events), None if it has none."""
    row = conn.execute(
        "SELECT state FROM events WHERE job_id = ? ORDER BY id DESC LIMIT 1 OFFSET 1", (job_id,)
    ).fetchone()
    return State(row["state"]) if row else None
