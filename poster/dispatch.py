"""Work through due jobs, one stage after another:

    pending ─render→ ready ─post→ posted (+ ledger rows, one transaction)
                              └→ retry_wait (backoff / the platform's reset time) | failed

Each state is committed before the side effect it guards; a crash mid-post leaves the job
`posting`, which `jobs.recover` turns into `uncertain` and `resolve_uncertain` settles only
when the adapter can prove what happened.

What happens is told as it happens to an optional `report` callback (each `Outcome` and
`Held`), and render stages to `progress`: the daemon prints a line per post, failure and
hold from them and sends notifications (`poster.notify`).
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from poster import fingerprint, imaging, jobs, ledger, markkey, policies, schedule, store
from poster.config import Config
from poster.errors import UserError
from poster.i18n import _
from poster.jobs import Job, State, Variant
from poster.platforms import adapter_class
from poster.platforms.base import Adapter, Existence, MediaItem, Post, PostResult, PostStatus
from poster.platforms.http import HttpAdapter
from poster.protect import layout_seed, post_seed
from poster.render import render
from poster.secrets import credentials
from poster.store import iso, now, parse_iso, transaction

log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(hours=6)
MAX_LOOKUP_BACKOFF = timedelta(minutes=30)  # between look-ups of a still undecided `uncertain` job
AWAITING_APPROVAL = "rendered; waiting for your approval"


class _Lost(Exception):
    """A guarded transition found the job in another state: roll back, do nothing."""


@dataclass(frozen=True)
class Outcome:
    job_id: int
    target: str
    name: str
    state: State
    reason: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Held:
    """A due job held back by its target's pacing (min interval, daily cap) until `until`."""

    job_id: int
    target: str
    name: str
    until: datetime
    reason: str


@dataclass(frozen=True)
class AwaitingApproval:
    """A job rendered ahead of its time that waits for the artist's approval (`poster
    approve`, or the UI's preview page): told once, when it is rendered."""

    job_id: int
    target: str
    name: str


Report = Callable[[Outcome | Held | AwaitingApproval], None]
Progress = Callable[[Job, str], None]  # (job, what render is doing now)


def doubling(attempts: int, cap: timedelta) -> timedelta:
    """1, 2, 4 … minutes for attempts 1, 2, 3 …, at most `cap`."""
    return min(timedelta(minutes=2 ** min(max(0, attempts - 1), 30)), cap)


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential with ±25 % jitter: 1, 2, 4 … minutes, at most six hours."""
    return doubling(attempts, MAX_BACKOFF) * (0.75 + 0.5 * (rng or random).random())


class LookupThrottle:
    """When each `uncertain` job may be looked up on its platform again. The daemon keeps one
    for its life: a job that was looked up and is still undecided (not found yet, cannot
    tell, lookup failed) waits 1, 2, 4 … minutes, at most 30, before the next look-up,
    instead of costing a request on every tick. A job becomes uncertain again only after a
    new post attempt, which starts it afresh."""

    def __init__(self) -> None:
        # (job id, attempts) → (next look-up, look-ups so far)
        self._next: dict[tuple[int, int], tuple[datetime, int]] = {}

    def due(self, job: Job, at: datetime) -> bool:
        entry = self._next.get((job.id, job.attempts))
        return entry is None or at >= entry[0]

    def undecided(self, job: Job, at: datetime, *, decisive_at: datetime | None = None) -> datetime:
        """Record a look-up at `at` that settled nothing; returns when the next may be.
        `decisive_at`: when the same answer would settle the job ("not found" counts once
        the interrupted request can no longer land): if that comes before the backoff ends,
        the next look-up is then."""
        key = (job.id, job.attempts)
        count = self._next.get(key, (at, 0))[1] + 1
        when = at + doubling(count, MAX_LOOKUP_BACKOFF)
        if decisive_at is not None:
            when = min(when, decisive_at)
        self._next[key] = (when, count)
        return when

    def keep_only(self, current: list[Job]) -> None:
        """Forget jobs that are no longer uncertain (settled, confirmed, cancelled)."""
        keys = {(j.id, j.attempts) for j in current}
        for key in [k for k in self._next if k not in keys]:
            del self._next[key]


class Dispatcher:
    def __init__(
        self,
        config: Config,
        conn: sqlite3.Connection,
        *,
        stop: threading.Event | None = None,
        report: Report | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.config = config
        self.conn = conn
        self.stop = stop or threading.Event()
        self.report = report or (lambda _event: None)
        self.progress = progress
        self._adapters: dict[str, Adapter] = {}
        self._key: bytes | None = None

    # -- helpers -------------------------------------------------------------------------
    def adapter(self, target: str) -> Adapter:
        if target not in self._adapters:
            tc = self.config.targets.get(target)
            if tc is None:
                raise UserError(
                    _("target {target!r} is no longer in {path}").format(target=target, path=self.config.path)
                )
            cls = adapter_class(tc.adapter)
            self._adapters[target] = cls(
                target,
                tc.settings(),
                credentials(target, cls.credential_fields),
                data_dir=self.config.data_dir,
            )
        return self._adapters[target]

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = markkey.load(self.config.data_dir, create=True)
        return self._key

    def _fail(self, job: Job, from_states: State | tuple[State, ...], reason: str) -> Outcome:
        with transaction(self.conn):
            jobs.transition(self.conn, job.id, from_states, State.FAILED, reason=reason)
        log.error(
            "%s",
            _("job {job} ({name} → {target}) failed: {reason}").format(
                job=job.id, name=job.name, target=job.target, reason=reason
            ),
        )
        return Outcome(job.id, job.target, job.name, State.FAILED, reason)

    def _stop_if_storage(self, job: Job, exc: BaseException) -> None:
        """Raise the one-line StorageError if `exc` is the data folder's disk (full, read-only)
        or the database failing: the job is fine, poster's storage is not, so the job goes back
        to `pending` (best effort) and the run stops with the reason instead of failing it."""
        stored = store.storage_error(exc, self.config.data_dir)
        if stored is None:
            return
        try:
            with transaction(self.conn):
                self.conn.execute("DELETE FROM variants WHERE job_id = ?", (job.id,))
                jobs.transition(self.conn, job.id, State.RENDERING, State.PENDING, reason=str(stored))
        except sqlite3.Error as again:  # still `rendering`: the next start or tick puts it back
            log.debug("job %d stays rendering until the next start: %s", job.id, again)
        raise stored from exc

    # -- stages --------------------------------------------------------------------------
    def render_job(self, job: Job) -> Outcome | None:
        """pending → rendering → ready. Returns an Outcome only when the job failed."""
        with transaction(self.conn):
            if not jobs.transition(self.conn, job.id, State.PENDING, State.RENDERING):
                return None
        try:
            adapter = self.adapter(job.target)
            caps = adapter.effective_capabilities()
            target = self.config.targets[job.target]
            policy = policies.build(self.config, target.policy)
            originals = jobs.originals(self.conn, job.artwork_id)
            if len(originals) > caps.images_per_post:
                raise UserError(
                    _("{count} images, but {target} takes at most {limit} per post").format(
                        count=len(originals), target=job.target, limit=caps.images_per_post
                    )
                )
            rendered_items: list[Variant] = []
            out_dir = store.ensure_private_dir(self.config.data_dir / "variants" / str(job.id))
            for orig in originals:
                data = (self.config.data_dir / orig.archive_path).read_bytes()
                src_fmt = imaging.probe(
                    data, orig.name, max_pixels=self.config.intake.max_image_pixels
                ).format
                image = imaging.load(data, orig.name, max_pixels=self.config.intake.max_image_pixels)
                with transaction(self.conn):
                    mark_id = jobs.reserve_mark_id(self.conn, job.id, orig.idx)
                r = render(
                    image,
                    source_format=src_fmt,
                    policy=policy,
                    caps=caps,
                    key=self.key,
                    mark_id=mark_id,
                    artist=self.config.artist,
                    background=self.config.render.background,
                    seed=post_seed(self._layout_seed(job.artwork_id, orig.idx, orig.sha256), job.target),
                    progress=self._progress_for(job, orig.name),
                )
                path = out_dir / f"{orig.idx:02d}-{ledger.format_id(mark_id)}{imaging.EXTENSION[r.format]}"
                tmp = path.with_suffix(path.suffix + ".tmp")
                try:
                    store.write_private(tmp, r.data)
                except OSError:
                    tmp.unlink(missing_ok=True)  # no half-written file left by a full disk
                    raise
                os.replace(tmp, path)
                rendered_items.append(
                    Variant(
                        idx=orig.idx,
                        mark_id=mark_id,
                        path=str(path.relative_to(self.config.data_dir)),
                        sha256=r.sha256,
                        format=r.format,
                        width=r.width,
                        height=r.height,
                        bytes=len(r.data),
                        render={**r.info, "original_sha256": orig.sha256},
                    )
                )
        except UserError as exc:
            self._stop_if_storage(job, exc)
            return self._fail(job, State.RENDERING, str(exc))
        except OSError as exc:
            self._stop_if_storage(job, exc)
            return self._fail(
                job,
                State.RENDERING,
                _("cannot read or write files: {reason} ({filename})").format(
                    reason=exc.strerror, filename=exc.filename
                ),
            )
        except Exception as exc:  # a bug: keep the daemon alive and the reason visible
            self._stop_if_storage(job, exc)
            log.debug("render of job %d crashed", job.id, exc_info=True)
            return self._fail(
                job,
                State.RENDERING,
                _("internal error while rendering: {kind}: {error}").format(
                    kind=type(exc).__name__, error=exc
                ),
            )
        with transaction(self.conn):
            jobs.save_variants(self.conn, job.id, rendered_items)
            jobs.transition(self.conn, job.id, State.RENDERING, State.READY)
        return None

    def _progress_for(self, job: Job, name: str) -> Callable[[str], None] | None:
        progress = self.progress
        if progress is None:
            return None
        return lambda stage: progress(job, f"{name}: {stage}")

    def _layout_seed(self, artwork_id: int, idx: int, sha256: str) -> int:
        """The layout seed intake recorded for this original (derived the same way for an
        original taken in before seeds were recorded)."""
        row = self.conn.execute(
            "SELECT layout_seed FROM originals WHERE artwork_id = ? AND idx = ?", (artwork_id, idx)
        ).fetchone()
        if row is not None and row["layout_seed"] is not None:
            return int(row["layout_seed"])
        return layout_seed(self.key, sha256)

    def build_post(self, job: Job) -> Post:
        meta = job.meta
        items = []
        for v in jobs.variants(self.conn, job.id):
            data = (self.config.data_dir / v.path).read_bytes()
            stem = Path(job.name.rstrip("/")).stem
            alt = meta.get("alt", "")
            alt = alt if isinstance(alt, str) else (alt[v.idx] if v.idx < len(alt) else "")
            items.append(
                MediaItem(
                    data=data,
                    mime=imaging.MIME[v.format],
                    filename=f"{stem}{imaging.EXTENSION[v.format]}",
                    width=v.width,
                    height=v.height,
                    alt=alt,
                    mark_id=ledger.format_id(v.mark_id),
                )
            )
        options: dict[str, object] = {k: meta[k] for k in ("ai_generated",) if meta.get(k) is not None}
        link = meta.get("link") or self._sibling_link(job)
        if link:  # used only by targets with `link_back = true` (a link can cost more)
            options["link"] = link
        return Post(
            key=job.post_key,
            title=meta.get("title") or Path(job.name.rstrip("/")).stem,
            caption=meta.get("caption", ""),
            tags=tuple(meta.get("tags", ())),
            rating=meta.get("rating", "general"),
            media=tuple(items),
            options=options,
        )

    def _sibling_link(self, job: Job) -> str | None:
        """The web URL of this artwork's post on another target, pixiv first: what "link to
        the pixiv post" means when the sidecar names no `link` of its own."""
        rows = self.conn.execute(
            "SELECT target, url FROM jobs"
            " WHERE artwork_id = ? AND id != ? AND state = ? AND url LIKE 'http%'",
            (job.artwork_id, job.id, State.POSTED.value),
        ).fetchall()
        adapters = {r["target"]: getattr(self.config.targets.get(r["target"]), "adapter", "") for r in rows}
        rows = sorted(rows, key=lambda r: adapters[r["target"]] != "pixiv")
        return rows[0]["url"] if rows else None

    def record_posted(self, job: Job, result: PostResult, from_state: State) -> Outcome:
        """posting → posted and the ledger rows, in one transaction."""
        adapter_name = self.config.targets[job.target].adapter if job.target in self.config.targets else "?"
        posted_at = iso(now())
        # perceptual fingerprints for the ledger, before the write lock: decoding takes a moment
        prints = fingerprint.for_job(self.conn, self.config.data_dir, job.id, job.artwork_id)
        try:
            with transaction(self.conn):
                # the guard first: if the job is no longer in `from_state` (a concurrent
                # `confirm`, a second process) no ledger row may be written for it
                if not jobs.transition(self.conn, job.id, from_state, State.POSTED):
                    raise _Lost
                self._ledger_rows(job, result, adapter_name, posted_at, prints)
                self.conn.execute(
                    "UPDATE jobs SET url = ?, remote_id = ? WHERE id = ?",
                    (result.url, result.remote_id, job.id),
                )
        except _Lost:
            state = jobs.get(self.conn, job.id).state
            log.error("job %d: expected %s but it is %s; not recorded", job.id, from_state.value, state.value)
            return Outcome(
                job.id, job.target, job.name, state, f"job was {state.value}, not {from_state.value}"
            )
        log.info("posted %s to %s: %s", job.name, job.target, result.url)
        return Outcome(job.id, job.target, job.name, State.POSTED, url=result.url)

    def _ledger_rows(
        self,
        job: Job,
        result: PostResult,
        adapter_name: str,
        posted_at: str,
        prints: dict[int, dict[str, bytes]] | None = None,
    ) -> None:
        originals = {o.idx: o for o in jobs.originals(self.conn, job.artwork_id)}
        for v in jobs.variants(self.conn, job.id):
            media_url = result.media_urls[v.idx] if v.idx < len(result.media_urls) else None
            ledger.append(
                self.conn,
                ledger.Entry(
                    mark_id=v.mark_id,
                    job_id=job.id,
                    idx=v.idx,
                    target=job.target,
                    adapter=adapter_name,
                    url=result.url,
                    media_url=media_url,
                    remote_id=result.remote_id,
                    posted_at=posted_at,
                    original_sha256=originals[v.idx].sha256,
                    variant_sha256=v.sha256,
                    render=ledger.canonical(v.render),
                    **(prints or {}).get(v.idx, {}),
                ),
            )

    def post_job(self, job: Job) -> Outcome:
        job = jobs.get(self.conn, job.id)
        target = self.config.targets.get(job.target)
        if job.state not in (State.READY, State.RETRY_WAIT):
            return Outcome(job.id, job.target, job.name, job.state)
        if self.awaiting_approval(job):
            return Outcome(job.id, job.target, job.name, job.state, AWAITING_APPROVAL)
        try:
            # everything that can fail before a byte is sent, done before `posting`: a target
            # removed from the config or a missing variant fails the job instead of leaving
            # it `uncertain` although nothing was sent
            adapter = self.adapter(job.target)
            post = self.build_post(job)
        except UserError as exc:
            return self._fail(job, (State.READY, State.RETRY_WAIT), str(exc))
        except OSError as exc:
            return self._fail(
                job,
                (State.READY, State.RETRY_WAIT),
                _("cannot read the rendered image: {reason}").format(reason=exc.strerror),
            )
        with transaction(self.conn):
            if not jobs.transition(
                self.conn,
                job.id,
                (State.READY, State.RETRY_WAIT),
                State.POSTING,
                reason=None,
                count_attempt=True,
            ):
                return Outcome(job.id, job.target, job.name, jobs.get(self.conn, job.id).state)
        try:
            result = adapter.post(post)
        except Exception as exc:  # unknown whether anything reached the platform
            log.debug("adapter crashed on job %d", job.id, exc_info=True)
            stored = store.storage_error(exc, self.config.data_dir)
            reason = (
                str(stored)
                if stored is not None
                else _("adapter error, the post may or may not exist: {kind}: {error}").format(
                    kind=type(exc).__name__, error=exc
                )
            )
            with transaction(self.conn):
                jobs.transition(self.conn, job.id, State.POSTING, State.UNCERTAIN, reason=reason)
            if stored is not None:  # the data folder's disk: stop the run, say why
                raise stored from exc
            return Outcome(job.id, job.target, job.name, State.UNCERTAIN, reason)
        if result.status is PostStatus.POSTED:
            return self.record_posted(job, result, State.POSTING)
        if result.status is PostStatus.UNCERTAIN:
            # the post may exist: failing the job would let `poster retry` post it twice
            reason = result.reason or "the platform's answer leaves open whether the post exists"
            with transaction(self.conn):
                jobs.transition(self.conn, job.id, State.POSTING, State.UNCERTAIN, reason=reason)
            log.warning(
                "%s",
                _("job {job} ({name} → {target}) is uncertain: {reason}").format(
                    job=job.id, name=job.name, target=job.target, reason=reason
                ),
            )
            return Outcome(job.id, job.target, job.name, State.UNCERTAIN, reason)
        if result.status is PostStatus.RETRYABLE:
            attempts = job.attempts + 1
            max_attempts = target.max_attempts if target else 1
            if attempts >= max_attempts:
                return self._fail(
                    job,
                    State.POSTING,
                    _("gave up after {attempts} tries (targets.{target}.max_attempts): {reason}").format(
                        attempts=attempts, target=job.target, reason=result.reason
                    ),
                )
            when = result.retry_at or now() + backoff(attempts)
            with transaction(self.conn):
                jobs.transition(
                    self.conn,
                    job.id,
                    State.POSTING,
                    State.RETRY_WAIT,
                    reason=result.reason,
                    scheduled_at=when,
                )
            log.warning(
                "%s",
                _("job {job} → {target}: {reason}; next try {when}").format(
                    job=job.id, target=job.target, reason=result.reason, when=iso(when)
                ),
            )
            return Outcome(job.id, job.target, job.name, State.RETRY_WAIT, result.reason)
        return self._fail(job, State.POSTING, result.reason or "the platform refused the post")

    def awaiting_approval(self, job: Job) -> bool:
        return self.config.needs_approval(job.target) and job.approved_at is None

    def render_for_approval(self) -> list[Outcome]:
        """Render, ahead of their time, the pending jobs that wait for the artist's approval:
        what is approved is the exact variant that will be posted, and it should be ready to
        look at well before its slot."""
        out = []
        for job in jobs.in_state(self.conn, State.PENDING):
            if self.stop.is_set():
                break
            if self.awaiting_approval(job):
                failed = self.render_job(job)
                if failed is not None:
                    out.append(failed)
                else:
                    with transaction(self.conn):
                        self.conn.execute(
                            "UPDATE jobs SET reason = ? WHERE id = ? AND state = ? AND approved_at IS NULL",
                            (AWAITING_APPROVAL, job.id, State.READY.value),
                        )
                    self.report(AwaitingApproval(job.id, job.target, job.name))
        return out

    def process(self, job: Job) -> Outcome:
        if job.state is State.PENDING:
            failed = self.render_job(job)
            if failed is not None:
                return failed
        return self.post_job(job)

    # -- entry points --------------------------------------------------------------------
    def settle_time(self, adapter: Adapter) -> timedelta:
        """How long after a post attempt began its request may still land on the server.
        Until then "not found" proves nothing: the interrupted request can still be in flight
        (or queued on the platform), and posting again would make a duplicate. For HTTP
        adapters the seam ends every request at its deadline (`timeout`; the create calls of
        the adapters that can look posts up send small JSON bodies, so no upload allowance),
        and 30 s more covers a server still processing what it received."""
        explicit = getattr(adapter, "settle_seconds", None)
        if isinstance(explicit, int | float):
            return timedelta(seconds=explicit)
        if isinstance(adapter, HttpAdapter):
            timeout = adapter.settings.get("timeout", 60)
            return timedelta(seconds=(timeout if isinstance(timeout, int | float) else 60) + 30)
        return timedelta(0)  # in-process adapters (local): nothing outlives the process

    def _last_attempt(self, job_id: int) -> datetime | None:
        row = self.conn.execute(
            "SELECT MAX(at) FROM events WHERE job_id = ? AND state = ?", (job_id, State.POSTING.value)
        ).fetchone()
        return parse_iso(row[0]) if row and row[0] else None

    def resolve_uncertain(
        self, at: datetime | None = None, *, throttle: LookupThrottle | None = None
    ) -> list[Outcome]:
        """Ask each adapter whether an interrupted post exists; settle only on proof.
        Without `throttle` every uncertain job is looked up (`poster run --once`); with it
        (the daemon, every tick) only those whose next look-up is due."""
        out = []
        at = at or now()
        uncertain = [j for j in jobs.all_jobs(self.conn) if j.state is State.UNCERTAIN]
        if throttle is not None:
            throttle.keep_only(uncertain)
            uncertain = [j for j in uncertain if throttle.due(j, at)]
        for job in uncertain:
            if self.stop.is_set():
                break
            try:
                adapter = self.adapter(job.target)
                existence, result = adapter.find_existing(self.build_post(job))
            except Exception as exc:
                log.warning(
                    "%s",
                    _("job {job}: cannot check whether it was posted: {error}").format(job=job.id, error=exc),
                )
                if throttle is not None:
                    throttle.undecided(job, at)
                continue
            if existence is Existence.EXISTS and result is not None:
                out.append(self.record_posted(job, result, State.UNCERTAIN))
                self.report(out[-1])
            elif existence is Existence.ABSENT:
                began = self._last_attempt(job.id)
                if began is not None and at < began + self.settle_time(adapter):
                    # ask again once the old request cannot land any more
                    if throttle is not None:
                        throttle.undecided(job, at, decisive_at=began + self.settle_time(adapter))
                    continue
                # a job never rendered (held by `poster restore`) renders first
                again = State.READY if jobs.variants(self.conn, job.id) else State.PENDING
                with transaction(self.conn):
                    jobs.transition(
                        self.conn,
                        job.id,
                        State.UNCERTAIN,
                        again,
                        reason=_("interrupted post was not published; posting again"),
                    )
            elif throttle is not None:
                throttle.undecided(job, at)
        return out

    def pace(self, job: Job, at: datetime, held: dict[str, datetime]) -> bool:
        """Hold `job` back (moving its time) if its target posted too recently or too often.
        `held` carries, per target, the time given to the last job held in this pass, so
        several late jobs are spread out one interval apart, in their order."""
        tc = self.config.targets.get(job.target)
        if tc is None:
            return False
        try:
            floor = adapter_class(tc.adapter).capabilities.min_interval
        except Exception:
            floor = 0.0
        gap = timedelta(seconds=max(tc.min_interval_minutes * 60, floor))
        wait = schedule.pacing_delay(self.conn, tc, job.target, at, floor_seconds=floor)
        if wait is None and job.target not in held:
            return False
        when, why = wait or (at, "paced: waiting for the jobs before it")
        if job.target in held:
            when = max(when, held[job.target] + gap)
        held[job.target] = when
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE jobs SET scheduled_at = ?, reason = ? WHERE id = ? AND state = ?",
                (iso(when), why, job.id, job.state.value),
            )
        log.info("job %d (%s → %s) held until %s: %s", job.id, job.name, job.target, iso(when), why)
        self.report(Held(job.id, job.target, job.name, when, why))
        return True

    def run_due(
        self,
        at: datetime | None = None,
        *,
        ignore_schedule: bool = False,
        report: Callable[[Outcome], None] | None = None,
    ) -> list[Outcome]:
        """Process every due job, oldest first. Without `ignore_schedule` (run --now) each
        target's pacing (min interval, daily cap) holds jobs back to a later time. `report`
        is told each outcome as it happens (a run stopped by a full disk still shows what it
        did before). Jobs that wait for the artist's approval are rendered ahead of their
        time, so there is something to approve."""
        outcomes = self.render_for_approval()
        for o in outcomes:
            self.report(o)
            if report is not None:
                report(o)
        at = at or now()
        held: dict[str, datetime] = {}
        for job in jobs.due(self.conn, at, ignore_schedule=ignore_schedule):
            if self.stop.is_set():
                break
            if job.state is not State.PENDING and self.awaiting_approval(job):
                continue  # nothing posts before the artist approves it
            if not ignore_schedule and self.pace(job, at, held):
                continue
            outcomes.append(self.process(job))
            self.report(outcomes[-1])
            if report is not None:
                report(outcomes[-1])
        return outcomes

    def next_due(self) -> datetime | None:
        """When the earliest waiting job is due (None: nothing waits). A rendered job that waits
        for approval is not due: the daemon must not wake for it on every tick."""
        marks = ",".join("?" * len(jobs.DUE_STATES))
        gated = [t for t in self.config.targets if self.config.needs_approval(t)]
        gate = ""
        if gated:
            gate = (
                f" AND NOT (state != 'pending' AND approved_at IS NULL"
                f" AND target IN ({','.join('?' * len(gated))}))"
            )
        row = self.conn.execute(
            f"SELECT MIN(scheduled_at) FROM jobs WHERE state IN ({marks}){gate}",
            [*(s.value for s in jobs.DUE_STATES), *gated],
        ).fetchone()
        return parse_iso(row[0]) if row and row[0] else None
