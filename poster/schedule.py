"""When jobs are due, and the daemon's clock.

The SQLite job table is the one source of truth for what is due; APScheduler only provides
the clock (an interval tick that scans the outbox and dispatches due jobs).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from types import FrameType

from poster.config import Config

log = logging.getLogger(__name__)


def initial_time(config: Config, target: str, at: datetime | None, created: datetime) -> datetime:
    """A sidecar `at` wins; otherwise now, staggered by the target's `delay_minutes`."""
    if at is not None:
        return at
    return created + timedelta(minutes=config.targets[target].delay_minutes)


def run_daemon(
    config: Config,
    tick: Callable[[threading.Event], None],
    *,
    install_signals: bool = True,
    stop: threading.Event | None = None,
) -> None:
    """Call `tick` now and then every `intake.scan_interval` seconds until SIGTERM/SIGINT.

    The first signal lets the current tick finish its current request and exit cleanly; a
    second one exits at once.
    """
    from apscheduler.schedulers.background import BackgroundScheduler

    stop = stop or threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("second signal: exiting now")
            os._exit(128 + signum)
        log.warning("signal %d: finishing the current step, then stopping", signum)
        stop.set()

    if install_signals:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    scheduler = BackgroundScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
    )
    scheduler.add_job(
        tick,
        "interval",
        args=[stop],
        seconds=config.intake.scan_interval,
        next_run_time=datetime.now().astimezone(),
        id="tick",
    )
    scheduler.start()
    log.info("poster is running; watching %s", config.outbox)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        scheduler.shutdown(wait=True)
        log.info("poster stopped")
