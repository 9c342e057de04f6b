"""Long work (rendering the copies of a big canvas, tracing images, checking accounts) runs in
a worker thread; the page polls the task and shows its progress, so it never freezes."""

from __future__ import annotations

import logging
import secrets
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from poster import i18n
from poster.errors import UserError
from poster.i18n import _

log = logging.getLogger("poster.ui")


@dataclass
class Task:
    id: str
    kind: str  # what the page shows for it: prepare | trace | health
    subject: Any = None  # e.g. the artwork id
    done: int = 0
    total: int = 0
    step: str = ""
    result: Any = None
    error: str | None = None
    finished: bool = False
    started: float = field(default_factory=time.monotonic)
    language: str = i18n.DEFAULT  # its messages are in the language of whoever started it

    def progress(self, done: int, total: int, step: str = "") -> None:
        self.done, self.total, self.step = done, total, step

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0


Work = Callable[[Task], Any]


class Tasks:
    """Tasks by id. Two workers: a trace need not wait for a long render."""

    def __init__(self, workers: int = 2, keep: int = 100) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poster-ui-task")
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()
        self._keep = keep

    def submit(self, kind: str, work: Work, *, subject: Any = None, task_id: str | None = None) -> Task:
        language = i18n.current()
        task = Task(task_id or secrets.token_hex(8), kind, subject, language=language)
        with self._lock:
            self._tasks[task.id] = task
            for old in list(self._tasks)[: max(0, len(self._tasks) - self._keep)]:
                if self._tasks[old].finished:
                    del self._tasks[old]

        def run() -> None:
            with i18n.using(language):
                try:
                    task.result = work(task)
                except UserError as exc:
                    task.error = str(exc)
                except Exception as exc:  # shown on the page; the details go to the log
                    log.error("task %s (%s) failed:\n%s", task.id, kind, traceback.format_exc())
                    task.error = _("internal error: {error}").format(error=f"{type(exc).__name__}: {exc}")
                finally:
                    task.finished = True

        self._pool.submit(run)
        return task

    def get(self, task_id: str) -> Task | None:
        with self._lock:
            return self._tasks.get(task_id)

    def latest(self, kind: str, subject: Any = None) -> Task | None:
        with self._lock:
            found = [t for t in self._tasks.values() if t.kind == kind and t.subject == subject]
        return found[-1] if found else None

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
