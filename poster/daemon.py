"""One tick of `poster run` (the daemon): pick up config edits, take in the outbox, post what
is due. The clock that calls it is `poster.schedule.run_daemon`; `poster ui` runs the same
tick in-process when no `poster run` holds the data folder.

A tick that fails (a full disk, a database another program holds, a bug) is reported once,
not on every tick, and the daemon keeps going: the next tick first puts back what the failed
one left half-done (a render goes back to pending, a post in flight becomes `uncertain` and
is looked up), which is safe because ticks never overlap and the run lock keeps every other
`poster run` out.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from poster import config as config_mod
from poster import jobs, store
from poster.i18n import _
from poster.notices import Notices
from poster.termsafe import safe

log = logging.getLogger("poster.daemon")

FREED = 1 << 20  # bytes freed on a full disk before the daemon says it works again


@contextmanager
def run_lock(cfg: config_mod.Config) -> Iterator[None]:
    """One daemon per data folder (`poster run`, or `poster ui` running it in-process)."""
    with store.run_lock(cfg.data_dir):
        yield


def is_running(cfg: config_mod.Config) -> bool:
    """Whether some process (this one included) holds the data folder's run lock: flock on
    a new descriptor of the folder conflicts with any other descriptor's lock."""
    try:
        fd = os.open(cfg.data_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def refresh_trace_index(cfg: config_mod.Config, conn: sqlite3.Connection, outcomes: list[Any]) -> None:
    """After intake and posting: local features of newly archived originals (once each, and
    a no-op when there are none), and the fingerprint cache when something was posted. Only a
    speed-up: trace brings both up to date itself if needed."""
    from poster import trace as trace_mod

    try:
        from poster import features

        if any(o.state == jobs.State.POSTED for o in outcomes):
            trace_mod.refresh_index(conn, cfg.data_dir, budget=features.TICK_BUDGET)
        else:
            features.update(conn, cfg.data_dir, budget=features.TICK_BUDGET)
    except Exception as exc:
        # a full disk is the tick's problem, reported once as such: as a warning of its own
        # it came between two reports of the same full disk, the tick counted as a success
        found = store.write_error(exc, cfg.data_dir)
        if found is not None and found.kind == store.FULL:
            raise found from exc
        log.warning("%s", _("could not update the trace index: {error}").format(error=exc))


class Ticker:
    """The daemon's state between ticks and the tick itself (`__call__`)."""

    def __init__(
        self,
        cfg: config_mod.Config,
        *,
        reporter: Any = None,
        config_source: Callable[[], config_mod.Config] | None = None,
    ) -> None:
        """`reporter` (the CLI's) is told each post, failure, hold and intake result as it
        happens and shows render progress; without one, `Notices` sends the notifications. `config_source`
        (poster ui's, which validates and writes the settings itself) replaces the file
        watcher as the place each tick takes its config from."""
        from poster import outbox
        from poster.dispatch import LookupThrottle
        from poster.timestamps import Stamper

        self.watcher = config_mod.Watcher(cfg, lambda level, text: log.log(level, "%s", text))
        self.lookups = LookupThrottle()  # an undecided job is not looked up on every tick
        self.reported = outbox.Reported()  # a file it cannot take is reported once, not every scan
        self.stamper = Stamper(cfg)  # a TSA that did not answer rests a while before the next try
        self.reporter = reporter if reporter is not None else Notices(cfg)
        self.config_source = config_source
        # ticks never overlap: the UI may run one at once (after an upload) beside the clock's
        self._serial = threading.Lock()
        self._problem: str | None = None  # the failure reported last (not repeated)
        # a full disk: the free space when it was reported. A tick can succeed in the little
        # space left (a small post) and the next fail again; it is over once space is freed.
        self._full_at: int | None = None
        self._dirty = False  # the last tick failed: put back what it left half-done

    @property
    def config(self) -> config_mod.Config:
        return self.config_source() if self.config_source is not None else self.watcher.config

    def interval(self) -> float:
        return self.config.intake.scan_interval

    def __call__(self, stop: threading.Event) -> datetime | None:
        """Runs in APScheduler's worker thread, with its own connection. Returns when the
        next job is due, so the clock can wake for it instead of waiting for the next scan."""
        with self._serial:
            return self._tick(stop)

    def _tick(self, stop: threading.Event) -> datetime | None:
        from poster import outbox
        from poster.dispatch import Dispatcher
        from poster.timestamps import Stamper

        cfg = self.config_source() if self.config_source is not None else self.watcher.poll()
        try:
            with store.opened(cfg.db_path) as conn:
                if self._dirty:
                    for job in jobs.recover(conn):
                        log.warning(
                            "%s",
                            _("uncertain job {job} ({name} → {target}): {reason}").format(
                                job=job.id, name=job.name, target=job.target, reason=job.reason
                            ),
                        )
                        if self.reporter is not None:
                            self.reporter.recovered(job)
                    self._dirty = False
                if self.reporter is not None:
                    self.reporter.cfg = cfg  # reloaded: notify the services it names now
                    d = Dispatcher(
                        cfg, conn, stop=stop, report=self.reporter, progress=self.reporter.progress
                    )
                else:
                    d = Dispatcher(cfg, conn, stop=stop)
                d.resolve_uncertain(throttle=self.lookups)
                scanned = outbox.scan(conn, cfg, reported=self.reported)
                for r in scanned:
                    if r.outcome == "queued":
                        log.info("queued %s", safe(r.name))
                if self.reporter is not None:
                    self.reporter.intake(scanned)
                # originals right after intake, the ledger head after the batch (and any row
                # written meanwhile, e.g. by `poster confirm`); retries when due
                if self.stamper.config is not cfg:  # reloaded: its TSAs or trust anchors may differ
                    self.stamper = Stamper(cfg)
                self.stamper.run(conn)
                try:
                    outcomes = d.run_due()
                finally:
                    if self.reporter is not None:
                        self.reporter.done()
                refresh_trace_index(cfg, conn, outcomes)
                if outcomes:
                    self.stamper.run(conn)
                nxt = d.next_due()
        except store.StorageError as exc:
            self._dirty = True
            if exc.kind != store.FULL:
                self._full_at = None  # another problem now: a tick that succeeds is over it
            elif self._full_at is None:
                self._full_at = store.free_bytes(cfg.data_dir)
            if str(exc) != self._problem:
                self._problem = str(exc)
                log.error("%s", exc)
            return None
        except Exception:  # keep the daemon alive; the next tick tries again
            self._dirty = True
            log.error("tick failed", exc_info=True)
            return None
        if self._problem is not None and self._space_freed(cfg):
            log.warning("%s", _("the data folder works again: carrying on"))
            self._problem = None
            self._full_at = None
        return nxt

    def _space_freed(self, cfg: config_mod.Config) -> bool:
        """Whether a full disk reported earlier has had space freed since (any other problem:
        a tick that succeeds is over it)."""
        if self._full_at is None:
            return True
        free = store.free_bytes(cfg.data_dir)
        return free is None or free >= self._full_at + FREED


def make_tick(config: Callable[[], config_mod.Config]) -> Ticker:
    """The tick for `poster ui`'s in-process daemon, taking its config from `config` (the
    UI's, so a setting saved in the page applies from the next tick on)."""
    return Ticker(config(), config_source=config)
