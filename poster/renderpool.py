"""Rendering an artwork's variants away from the database: one task per artwork, run in a
worker process (`concurrent.futures.ProcessPoolExecutor`) or in-process.

A task carries everything a render needs as plain values (the archived originals' paths, each
job's policy, capabilities, reserved hidden IDs and layout seeds), so a worker never opens
the database: job states, variant rows and the ledger stay with the dispatcher, which commits
them in order exactly as a serial render does. Each original is read and decoded once per
task and shared by all of the artwork's targets.

In a worker, exceptions come back as a `Failure` value (an exception class with its own
constructor, like `render._Untraceable`, does not survive pickling); `Failure.exception()`
turns it back into the kind of exception the dispatcher handles (UserError, OSError, a bug).
"""

from __future__ import annotations

import multiprocessing
import os
import select
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from poster import imaging
from poster.errors import UserError
from poster.platforms.base import Capabilities
from poster.policies import Policy
from poster.render import Progress, Rendered, render


@dataclass(frozen=True)
class Source:
    idx: int
    name: str
    path: Path  # the archived original, absolute


@dataclass(frozen=True)
class JobSpec:
    """One job's share of an artwork task: what its target gets."""

    job_id: int
    policy: Policy
    caps: Capabilities
    mark_ids: tuple[int, ...]  # one per source, in the task's order
    seeds: tuple[int, ...]  # layout seeds, one per source


@dataclass(frozen=True)
class Task:
    sources: tuple[Source, ...]
    jobs: tuple[JobSpec, ...]
    key: bytes
    artist: str
    background: str
    max_pixels: int


@dataclass(frozen=True)
class Failure:
    """An exception raised in a worker, as plain values."""

    kind: str  # "user" | "os" | "bug"
    message: str
    type_name: str = ""
    errno: int | None = None
    filename: str | None = None

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        if isinstance(exc, UserError):
            return cls("user", str(exc))
        if isinstance(exc, OSError):
            return cls("os", exc.strerror or str(exc), errno=exc.errno, filename=exc.filename)
        return cls("bug", str(exc), type_name=type(exc).__name__)

    def exception(self) -> Exception:
        if self.kind == "user":
            return UserError(self.message)
        if self.kind == "os":
            return OSError(self.errno or 0, self.message, self.filename)
        return WorkerBug(self.type_name, self.message)


class WorkerBug(Exception):
    """A bug in a worker's render: keeps the original exception's type name for the reason."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name


# job id → the rendered variants in source order, or why that job's render failed
Result = dict[int, list[Rendered] | Failure]


def run(task: Task, *, capture: bool = True, progress: dict[int, Progress | None] | None = None) -> Result:
    """Render every job of `task`. With `capture` a job's exception becomes its `Failure`
    (and the other jobs still render); without, it propagates (the in-process path)."""
    decoded: list[tuple[str, Image.Image] | BaseException] = []
    for src in task.sources:
        try:
            data = src.path.read_bytes()
            fmt = imaging.probe(data, src.name, max_pixels=task.max_pixels).format
            decoded.append((fmt, imaging.load(data, src.name, max_pixels=task.max_pixels)))
        except Exception as exc:  # every job of the artwork fails with it
            if not capture:
                raise
            decoded.append(exc)
    out: Result = {}
    for spec in task.jobs:
        try:
            items = []
            for i, (src, entry) in enumerate(zip(task.sources, decoded, strict=True)):
                if isinstance(entry, BaseException):
                    raise entry
                fmt, image = entry
                say = (progress or {}).get(spec.job_id)
                items.append(
                    render(
                        image,
                        source_format=fmt,
                        policy=spec.policy,
                        caps=spec.caps,
                        key=task.key,
                        mark_id=spec.mark_ids[i],
                        artist=task.artist,
                        background=task.background,
                        seed=spec.seeds[i],
                        progress=(lambda stage, s=say, n=src.name: s(f"{n}: {stage}")) if say else None,
                    )
                )
            out[spec.job_id] = items
        except Exception as exc:
            if not capture:
                raise
            out[spec.job_id] = Failure.of(exc)
    return out


def workers(configured: int) -> int:
    """Worker processes for `[render] workers` (0: one per core)."""
    return configured if configured > 0 else (os.cpu_count() or 1)


def pool(n: int) -> Executor:
    """A process pool of `n` workers. forkserver: workers start from a clean process that has
    imported the render code once, not as forks of a daemon holding a database connection
    and threads."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["poster.renderpool"])
    return ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_follow, initargs=(os.getpid(),))


def _follow(owner: int) -> None:
    """In a worker: end when the process that made the pool ends. A daemon killed with
    SIGKILL (or by the OOM killer) cannot shut its pool down, and a pool worker holds both
    ends of its task queue and the forkserver's keep-alive pipe, so neither ever sees the
    end: they would wait forever, ~45 MB each (the crash tests left 200 of them)."""
    try:
        fd = os.pidfd_open(owner)  # Linux: tied to that very process, never to a reused pid
    except ProcessLookupError:
        os._exit(0)
    except (AttributeError, OSError):
        fd = None
    threading.Thread(target=_wait_for_end, args=(owner, fd), daemon=True, name="follow-owner").start()


def _wait_for_end(owner: int, fd: int | None) -> None:
    if fd is not None:
        select.select([fd], [], [])  # readable once the owner has ended
    else:  # no pidfd (macOS, old kernels): look every 2 s
        while True:
            time.sleep(2.0)
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                break
            except PermissionError:
                continue
    os._exit(0)
