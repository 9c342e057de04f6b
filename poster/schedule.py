"""When jobs are due, and the daemon's clock.

The SQLite job table is the one source of truth for what is due; APScheduler only provides
the clock (a tick that scans the outbox and dispatches due jobs). Nothing about the queue
lives in the scheduler, so a crash, a changed clock or a laptop that slept cannot lose a job:
the next tick simply finds it due.

Planning (at intake) gives each job a time:
- a sidecar `at` wins (targets with `delay_minutes` go out that much later);
- otherwise the target's next free slot at or after the earliest allowed time (intake, or
  the artwork's first post + `delay_minutes`), keeping `min_interval_minutes` to every other
  job of the target and at most `daily_cap` jobs in any 24 hours.

Pacing (at dispatch, `pacing_delay`) checks what actually went out: a job is held back while
the target posted less than `min_interval_minutes` ago or `daily_cap` times in the last 24
hours. That is what spreads out late jobs after a sleep instead of posting them at once.

`daily_cap` is one rule for both: at most that many posts in any 24 hours (a rolling window,
the way X counts its free tier's 17 posts), not per calendar day. A plan by calendar day
would put a job at 09:00 after posts at 18:00 and 21:00 the day before, only for pacing to
hold it back, and could allow twice the cap within 24 hours around midnight.

Slot syntax (one string per rule): `[DAYS] HH:MM[,HH:MM...]`, DAYS being `daily` (default),
a day (`mon`), a range (`mon-fri`) or a list (`sat,sun`). Examples: `"mon-fri 19:00,21:00"`,
`"sat,sun 10:00"`, `"12:30"`.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import threading
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, tzinfo
from types import FrameType
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from poster.i18n import _
from poster.slots import Slot as Slot  # re-exported: callers know them as schedule.*
from poster.slots import parse_slot as parse_slot
from poster.store import iso

if TYPE_CHECKING:
    from poster.config import Config, TargetConfig
    from poster.configsnap import Essentials

log = logging.getLogger(__name__)

# Planning gives up (and posts as soon as possible) rather than loop for ever on a config
# that has no free slot, e.g. a cap already filled for years ahead.
_PLAN_LIMIT = 5000
# Jobs in these states still occupy (or occupied) their time; failed/cancelled ones free it.
_OCCUPYING = ("pending", "rendering", "ready", "posting", "posted", "retry_wait", "uncertain")
_DAY = timedelta(hours=24)  # the window of `daily_cap`, in planning and in pacing alike


def zone(config: Config | Essentials) -> tzinfo:
    """The configured time zone, else the system's (a named zone, so DST is right)."""
    if config.timezone:
        return ZoneInfo(config.timezone)
    from tzlocal import get_localzone

    return get_localzone()


def slot_times(slots: tuple[str, ...], tz: tzinfo, start: datetime) -> Iterator[datetime]:
    """Every slot time at or after `start`, in order (aware, in UTC)."""
    from apscheduler.triggers.cron import CronTrigger

    triggers = [
        CronTrigger(day_of_week=s.day_of_week, hour=h, minute=m, timezone=tz)
        for s in map(parse_slot, slots)
        for h, m in s.times
    ]
    # APScheduler answers "next fire time >= now"; merge the triggers' sequences
    nxt = [t.get_next_fire_time(None, start) for t in triggers]
    while True:
        live = [n for n in nxt if n is not None]
        if not live:
            return
        best = min(live)
        # in UTC: arithmetic on two datetimes of one ZoneInfo is wall-clock arithmetic,
        # which is off by an hour across a DST change
        yield best.astimezone(UTC)
        nxt = [
            t.get_next_fire_time(n, best + timedelta(seconds=1)) if n == best else n
            for t, n in zip(triggers, nxt, strict=True)
        ]


def _taken(conn: sqlite3.Connection, target: str) -> list[datetime]:
    marks = ",".join("?" * len(_OCCUPYING))
    rows = conn.execute(
        f"SELECT scheduled_at FROM jobs WHERE target = ? AND state IN ({marks})", (target, *_OCCUPYING)
    )
    return [datetime.fromisoformat(r[0]) for r in rows]


def next_free(tc: TargetConfig, tz: tzinfo, taken: list[datetime], earliest: datetime) -> datetime:
    """The first time at or after `earliest` that is a slot of the target (any time if it has
    none), at least `min_interval_minutes` from every time in `taken`, and that leaves at most
    `daily_cap` times in any 24 hours (what `pacing_delay` enforces when the job is due).
    Pure: the caller supplies what is taken."""
    found, _reached = _first_free(tc, tz, sorted(taken), earliest)
    return earliest if found is None else found


def _first_free(
    tc: TargetConfig, tz: tzinfo, times: list[datetime], earliest: datetime
) -> tuple[datetime | None, datetime]:
    """next_free on `times` sorted: (the free time or None if none was found within
    _PLAN_LIMIT steps, the time up to which there is none)."""
    gap = timedelta(minutes=tc.min_interval_minutes)

    def cap_wait(t: datetime) -> datetime | None:
        """None if a job at `t` keeps every 24 hours within the cap; else a later time before
        which no job can be (every bound found is a necessary one, so none skips a free time)."""
        cap = tc.daily_cap
        if cap is None:
            return None
        need = []
        # the 24 hours up to t (what pacing counts when t comes): at most cap - 1 before it
        lo, hi = bisect_right(times, t - _DAY), bisect_right(times, t)
        if hi - lo >= cap:
            need.append(times[hi - cap] + _DAY)  # when the oldest of the last `cap` leaves
        # the 24 hours up to each later job that t would fall into: t must not be its cap + 1st
        for j in range(hi, bisect_left(times, t + _DAY)):
            s = times[j]
            if bisect_right(times, s) - bisect_right(times, s - _DAY) >= cap:
                need.append(s)  # only a time after that job leaves its window free
        return max(need) if need else None

    def clash(t: datetime) -> list[datetime]:
        # one job per slot even without an interval; otherwise keep the gap both ways (the
        # times within the gap, by bisection: a queue of thousands is not walked per step)
        if gap:
            return times[bisect_right(times, t - gap) : bisect_left(times, t + gap)]
        return times[bisect_left(times, t) : bisect_right(times, t)]

    if tc.slots:
        reached = earliest
        for i, t in enumerate(slot_times(tc.slots, tz, earliest)):
            if i >= _PLAN_LIMIT:
                break
            if not clash(t) and cap_wait(t) is None:
                return t, t
            reached = t + timedelta(microseconds=1)
        log.warning("%s", _("no free slot found for a job; it goes out as soon as pacing allows"))
        return None, reached
    t = earliest
    for _i in range(_PLAN_LIMIT):
        near = clash(t)
        if near:
            t = near[-1] + max(gap, timedelta(seconds=1))
            continue
        wait = cap_wait(t)
        if wait is not None:
            t = max(wait, t + timedelta(seconds=1))
            continue
        return t, t
    return None, t


def stagger_order(config: Config, targets: list[str]) -> list[str]:
    """Targets without a delay first, so a delayed one can be placed after its siblings."""
    return sorted(targets, key=lambda t: config.targets[t].delay_minutes)


class Planner:
    """Places the new jobs of one intake scan, batch after batch.

    Keeps each target's taken times sorted in memory instead of reading them per job (read
    again at a batch's start if another connection changed the database, and after a rollback:
    `refresh()`), and remembers for each target a span [since, until) found to hold no free
    time. Adding jobs only takes times, so the next search from within the span starts at its
    end instead of stepping through the whole queue again: 10,000 artworks dropped at once are
    placed in linear, not quadratic, time. (Should another process free a time meanwhile, a
    job may be placed later than it could be, never closer than the rules allow: every answer
    is checked against the taken times read in its own transaction.) A search that gives up
    after _PLAN_LIMIT steps gives `initial_time`'s answer for that job and the next one goes
    on from where it stopped."""

    def __init__(self, config: Config, conn: sqlite3.Connection) -> None:
        self.config = config
        self.conn = conn
        self.tz = zone(config)
        self._taken: dict[str, list[datetime]] = {}
        self._empty: dict[str, tuple[datetime, datetime]] = {}
        self._version: int | None = None  # PRAGMA data_version when the times were read

    def refresh(self, *, if_changed: bool = False) -> None:
        """Read the taken times again when next needed. With `if_changed` (a batch's start),
        only if another connection changed the database since they were read (`PRAGMA
        data_version` does not count this connection's own commits, whose times they hold):
        reading every queued job's time at each batch made a large drop quadratic."""
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if if_changed and version == self._version:
            return
        self._version = version
        self._taken.clear()

    def initial_time(self, target: str, at: datetime | None, created: datetime, artwork_id: int) -> datetime:
        """When a new job of `target` should go out; the time then counts as taken."""
        tc = self.config.targets[target]
        times = self._taken.get(target)
        if times is None:
            times = self._taken[target] = sorted(_taken(self.conn, target))
        when = _initial(tc, target, self.conn, at, created, artwork_id)
        if at is None:
            earliest = when
            span = self._empty.get(target)
            inside = span is not None and span[0] <= earliest < span[1]
            found, reached = _first_free(tc, self.tz, times, span[1] if inside and span else earliest)
            self._empty[target] = (span[0] if inside and span else earliest, reached)
            if found is not None:
                when = found
        insort(times, when)
        return when


def _initial(
    tc: TargetConfig,
    target: str,
    conn: sqlite3.Connection | None,
    at: datetime | None,
    created: datetime,
    artwork_id: int | None,
) -> datetime:
    """The release date plus the stagger, or (without one) the earliest time the stagger allows."""
    delay = timedelta(minutes=tc.delay_minutes)
    if at is not None:
        return at + delay
    base = created
    if conn is not None and artwork_id is not None and delay:
        row = conn.execute(
            "SELECT MIN(scheduled_at) FROM jobs WHERE artwork_id = ? AND target != ?", (artwork_id, target)
        ).fetchone()
        if row and row[0]:
            base = max(created, datetime.fromisoformat(row[0]))
    return base + delay


def initial_time(
    config: Config,
    target: str,
    at: datetime | None,
    created: datetime,
    *,
    conn: sqlite3.Connection | None = None,
    artwork_id: int | None = None,
) -> datetime:
    """When a new job of `target` should go out (see the module docstring)."""
    tc = config.targets[target]
    earliest = _initial(tc, target, conn, at, created, artwork_id)
    if at is not None or conn is None:  # no queue to look at: as soon as the stagger allows
        return earliest
    return next_free(tc, zone(config), _taken(conn, target), earliest)


# -- pacing at dispatch -----------------------------------------------------------------------
def posted_times(conn: sqlite3.Connection, target: str, since: datetime) -> list[datetime]:
    """When the target's posts went out (or may have: `uncertain`), oldest first: what the
    platform counts against its limits. Attempts the platform refused (retry, failure) do not
    count, so a retry's backoff is not stretched to the minimum interval."""
    rows = conn.execute(
        "SELECT events.at FROM events JOIN jobs ON jobs.id = events.job_id"
        " WHERE jobs.target = ? AND events.state IN ('posted', 'uncertain') AND events.at > ?"
        " ORDER BY events.at",
        (target, iso(since.replace(microsecond=0))),
    )
    return [datetime.fromisoformat(r[0]) for r in rows]


def pacing_delay(
    conn: sqlite3.Connection, tc: TargetConfig, target: str, at: datetime, *, floor_seconds: float = 0.0
) -> tuple[datetime, str] | None:
    """None if the target may post at `at`; else (earliest allowed time, why)."""
    gap = timedelta(seconds=max(tc.min_interval_minutes * 60, floor_seconds))
    recent = posted_times(conn, target, at - _DAY)
    if recent and gap and recent[-1] + gap > at:
        return recent[-1] + gap, _("paced: {target} posted less than {gap} ago").format(
            target=target, gap=_human(gap)
        )
    if tc.daily_cap is not None and len(recent) >= tc.daily_cap:
        # the oldest post in the window leaves it 24 h after it went out
        return (
            recent[-tc.daily_cap] + _DAY,
            f"daily cap: {target} already posted {len(recent)} times in 24 hours",
        )
    return None


def _human(d: timedelta) -> str:
    s = int(d.total_seconds())
    return f"{s // 60} min" if s >= 60 else f"{s} s"


# -- the daemon's clock -----------------------------------------------------------------------
# A tick returns when it next wants to run (the next due job), or None for "at the next scan".
Tick = Callable[[threading.Event], datetime | None]
CLOCK_JUMP = 5.0  # seconds of disagreement between wall clock and monotonic clock


def install_stop_signals(stop: threading.Event) -> None:
    """SIGTERM/SIGINT set `stop`: the request in flight finishes and is recorded, nothing new
    starts. A second signal exits at once (the post in flight then becomes `uncertain`)."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("%s", _("second signal: exiting now"))
            os._exit(128 + signum)
        log.warning(
            "%s", _("signal {signal}: finishing the current step, then stopping").format(signal=signum)
        )
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


@contextmanager
def stop_signals(stop: threading.Event) -> Iterator[None]:
    """`install_stop_signals` for a block (in the main thread only), then the old handlers
    back: in-process callers (tests, `poster demo`) keep their own Ctrl-C behaviour."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    install_stop_signals(stop)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def run_daemon(
    config: Config,
    tick: Tick,
    *,
    install_signals: bool = True,
    stop: threading.Event | None = None,
    interval: Callable[[], float] | None = None,
) -> None:
    """Call `tick` now, then every `intake.scan_interval` seconds or when the next job is
    due (whichever comes first), until SIGTERM/SIGINT. `interval`, if given, is asked after
    every tick for the scan interval (a reloaded config may change it).

    The first signal lets the current tick finish its current request and exit cleanly; a
    second one exits at once. If the wall clock jumps (changed by hand, NTP, or a laptop
    that slept) the tick runs at once: APScheduler keeps wall-clock fire times, which a
    clock set back would otherwise postpone by the size of the jump.
    """
    from apscheduler.schedulers.background import BackgroundScheduler

    stop = stop or threading.Event()
    every = [config.intake.scan_interval]
    if install_signals:
        install_stop_signals(stop)

    scheduler = BackgroundScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
    )
    # a tick still busy posting when the next one is due is skipped by design: not a warning
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    last_run = [time.monotonic()]

    def wake_at(when: datetime) -> None:
        try:
            scheduler.modify_job("tick", next_run_time=when)
        except Exception as exc:  # the scheduler is shutting down
            log.debug("cannot reschedule the tick: %s", exc)

    def run_tick() -> None:
        last_run[0] = time.monotonic()
        if stop.is_set():
            return
        nxt = tick(stop)
        now = datetime.now().astimezone()
        wanted = interval() if interval is not None else every[0]
        if wanted != every[0] and not stop.is_set():
            every[0] = wanted
            try:
                scheduler.reschedule_job("tick", trigger="interval", seconds=wanted)
            except Exception as exc:  # the scheduler is shutting down
                log.debug("cannot change the scan interval: %s", exc)
        if nxt is not None and nxt < now + timedelta(seconds=every[0]) and not stop.is_set():
            # wake when the next job is due rather than at the next scan
            wake_at(max(nxt, now + timedelta(seconds=1)))  # never a busy loop

    scheduler.add_job(
        run_tick,
        "interval",
        seconds=every[0],
        next_run_time=datetime.now().astimezone(),
        id="tick",
    )
    skew = time.time() - time.monotonic()  # before the first tick can run
    scheduler.start()
    log.info("poster is running; watching %s", config.outbox)
    try:
        while not stop.wait(0.5):
            new_skew = time.time() - time.monotonic()
            stalled = time.monotonic() - last_run[0] > 2 * every[0] + 5
            if abs(new_skew - skew) > CLOCK_JUMP or stalled:
                log.warning(
                    "%s",
                    _(
                        "the clock jumped by {seconds:+.0f} s (changed, or the machine slept): checking "
                        "the queue now"
                    ).format(seconds=new_skew - skew),
                )
                last_run[0] = time.monotonic()
                wake_at(datetime.now().astimezone())
            skew = new_skew
    finally:
        scheduler.shutdown(wait=True)
        log.info("poster stopped")
