"""The daemon's pieces shared by `poster run` and `poster ui` (which can run it in-process):
the one-per-data-folder lock and the tick the clock calls."""

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

from poster import jobs, store
from poster.config import Config
from poster.errors import UserError
from poster.i18n import _

log = logging.getLogger("poster")


@contextmanager
def run_lock(cfg: Config) -> Iterator[None]:
    """One `poster run` per data folder: two would both post the same due jobs."""
    store.ensure_private_dir(cfg.data_dir)
    path = cfg.data_dir / "run.lock"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                _("another `poster run` is already using {folder}").format(folder=cfg.data_dir)
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def is_running(cfg: Config) -> bool:
    """Whether some process (this one included) holds the data folder's run lock."""
    path = cfg.data_dir / "run.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def refresh_trace_index(cfg: Config, conn: sqlite3.Connection, outcomes: list[Any]) -> None:
    if not any(o.state == jobs.State.POSTED for o in outcomes):
        return
    from poster import trace as trace_mod

    try:
        trace_mod.refresh_index(conn, cfg.data_dir)
    except Exception as exc:  # only a speed-up: trace rebuilds the index itself if needed
        log.warning("could not update the trace index: %s", exc)


def make_tick(config: Callable[[], Config]) -> Callable[[threading.Event], datetime | None]:
    """The daemon's tick: settle uncertain jobs, take in the outbox, post what is due; returns
    when the next job is due. `config` is called on every tick, so a config changed in
    `poster ui`'s settings page applies from the next tick on. Ticks are serialised: the UI
    may call one at once (after an upload) while the clock calls another."""
    from poster import outbox
    from poster.dispatch import Dispatcher, LookupThrottle

    lookups = LookupThrottle()  # for the daemon's life: an undecided job is not asked every tick
    reported = outbox.Reported()  # and a file it cannot take is reported once, not every scan
    serial = threading.Lock()

    def tick(stop: threading.Event) -> datetime | None:
        with serial:
            cfg = config()
            # APScheduler runs this in a worker thread: give it its own connection. The
            # answer (the next due time) lets the clock wake for it instead of the next scan.
            conn = store.connect(cfg.db_path)
            try:
                d = Dispatcher(cfg, conn, stop=stop)
                d.resolve_uncertain(throttle=lookups)
                for r in outbox.scan(conn, cfg, reported=reported):
                    if r.outcome == "queued":
                        log.info("queued %s", r.name)
                refresh_trace_index(cfg, conn, d.run_due())
                return d.next_due()
            except Exception:  # keep the daemon alive; the next tick tries again
                log.error("tick failed", exc_info=True)
                return None
            finally:
                conn.close()

    return tick
