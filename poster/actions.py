"""What a user does, shared by the CLI and the web UI (`poster ui`): act on a job (retry,
cancel, confirm, release, approve, prepare), drop art into the outbox, look at the queue, the
calendar and the ledger, trace copies, read and write settings, check health, back up and
restore the data folder, and write an evidence bundle (`proof`).

Every function takes what it needs (a `Config`, a connection) as values and returns plain
data or a one-line, translated summary; user-fixable problems raise `UserError`. Nothing here
knows about HTTP or the terminal.

No action re-posts a job that may already be posted without asking the platform first: an
`uncertain` job is never retried, a cancelled one that was uncertain goes back to
`uncertain` (so the next run looks it up), and `confirm --not-posted` looks the post up
where the adapter can before it lets the job be posted again.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poster import imaging, jobs, ledger, outbox, schedule, sidecar, store
from poster import proof as proof_mod
from poster.config import Config
from poster.dispatch import Dispatcher
from poster.errors import InputError, UserError
from poster.i18n import N_, _
from poster.jobs import State
from poster.platforms.base import Existence, PostResult
from poster.store import now, transaction

if TYPE_CHECKING:
    from poster.features import FeatureIndex
    from poster.trace import Traced


# -- one job ---------------------------------------------------------------------------------
def retry(conn: sqlite3.Connection, job_id: int) -> str:
    job = jobs.get(conn, job_id)
    if job.state is State.CANCELLED and jobs.previous_state(conn, job_id) is State.UNCERTAIN:
        # it may be posted: back to `uncertain`, where only a look-up or the user settles it
        with transaction(conn):
            if not jobs.transition(
                conn,
                job_id,
                State.CANCELLED,
                State.UNCERTAIN,
                reason=_("was uncertain when cancelled: the post may exist"),
            ):
                raise UserError(_("job {job} changed meanwhile; see `poster status`").format(job=job_id))
        return _(
            "job {job} ({name} → {target}) may already be posted (it was uncertain when cancelled): it "
            "is uncertain again; the next run looks it up, or settle it with `poster confirm {job} "
            "--posted URL` or `--not-posted`"
        ).format(job=job_id, name=job.name, target=job.target)
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
            if job.state is State.UNCERTAIN:
                raise UserError(
                    _("job {job} may already be posted; settle it with `poster confirm` first").format(
                        job=job_id
                    )
                )
            raise UserError(
                _("job {job} is {state}; only failed, cancelled or waiting jobs can be retried").format(
                    job=job_id, state=state_label(job.state)
                )
            )
        conn.execute("UPDATE jobs SET attempts = 0 WHERE id = ?", (job_id,))
    if keep_date:
        return _(
            "job {job} ({name} → {target}) will be tried again on its release date {when} "
            "(`poster release {job}` posts it earlier)"
        ).format(job=job_id, name=job.name, target=job.target, when=job.meta.get("at"))
    return _("job {job} ({name} → {target}) will be tried again at the next run").format(
        job=job_id, name=job.name, target=job.target
    )


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
            reason=_("cancelled by the user"),
        )
    if not ok:
        raise UserError(
            _("job {job} is {state} and cannot be cancelled").format(job=job_id, state=state_label(job.state))
        )
    return _("job {job} ({name} → {target}) cancelled").format(job=job_id, name=job.name, target=job.target)


def confirm(config: Config, conn: sqlite3.Connection, job_id: int, posted_url: str | None) -> str:
    job = jobs.get(conn, job_id)
    if job.state not in (State.UNCERTAIN, State.READY, State.RETRY_WAIT, State.FAILED):
        raise UserError(
            _("job {job} is {state}; nothing to confirm").format(job=job_id, state=state_label(job.state))
        )
    if posted_url is not None:
        # (an uncertain job without variants was held by `poster restore`: the post may exist,
        # made from a render the restored folder never saw)
        if not jobs.variants(conn, job_id) and job.state is not State.UNCERTAIN:
            raise UserError(
                _("job {job} was never rendered, so it cannot have been posted").format(job=job_id)
            )
        result = PostResult.posted(remote_id=posted_url, url=posted_url)
        outcome = Dispatcher(config, conn).record_posted(job, result, job.state)
        if outcome.state is not State.POSTED:  # the daemon moved it meanwhile: nothing written
            raise UserError(
                _("job {job} changed to {state} meanwhile; see `poster status`").format(
                    job=job_id, state=state_label(outcome.state)
                )
            )
        return _("job {job} recorded as posted at {url}").format(job=job_id, url=posted_url)
    if job.state is not State.UNCERTAIN:
        raise UserError(
            _("job {job} is {state}; --not-posted is for uncertain jobs").format(
                job=job_id, state=state_label(job.state)
            )
        )
    found = _look_up(config, conn, job)
    if found is not None:
        raise UserError(
            _(
                "job {job}: {target} shows this post at {url}; not posting it again (record it with "
                "`poster confirm {job} --posted {url}`)"
            ).format(job=job_id, target=job.target, url=found.url)
        )
    again = State.READY if jobs.variants(conn, job_id) else State.PENDING  # never rendered: render first
    with transaction(conn):
        jobs.transition(
            conn,
            job_id,
            State.UNCERTAIN,
            again,
            reason=_("confirmed not posted; will post again"),
            scheduled_at=now(),
        )
    return _("job {job} will be posted again at the next run").format(job=job_id)


def approve(config: Config, conn: sqlite3.Connection, job_id: int) -> str:
    """Approve the job's rendered variants: the exact files that will be posted."""
    job = jobs.get(conn, job_id)
    variants = jobs.variants(conn, job_id)
    if job.state not in (State.READY, State.RETRY_WAIT, State.PENDING) or (
        job.state is State.PENDING and not variants
    ):
        if job.state is State.PENDING:
            raise UserError(
                _(
                    "job {job} is not rendered yet, so there is nothing to approve; it is rendered at "
                    "the next run (or open it in `poster ui`)"
                ).format(job=job_id)
            )
        raise UserError(
            _("job {job} is {state}; only a rendered job waiting to be posted can be approved").format(
                job=job_id, state=state_label(job.state)
            )
        )
    with transaction(conn):
        conn.execute(
            "UPDATE jobs SET approved_at = ?, reason = CASE WHEN reason = ? THEN NULL ELSE reason END"
            " WHERE id = ?",
            (store.iso(now()), _awaiting_reason(), job_id),
        )
    files = ", ".join(v.path for v in variants)
    return _("job {job} ({name} → {target}) approved: {files}").format(
        job=job_id, name=job.name, target=job.target, files=files
    )


def _awaiting_reason() -> str:
    from poster.dispatch import AWAITING_APPROVAL

    return AWAITING_APPROVAL


def prepare(config: Config, conn: sqlite3.Connection, job_id: int) -> str:
    """Render a pending job now, ahead of its time: its variants are then the exact files that
    will be posted (to look at, and to approve)."""
    job = jobs.get(conn, job_id)
    if job.state is not State.PENDING:
        if jobs.variants(conn, job_id):
            return _("job {job} is already rendered").format(job=job_id)
        raise UserError(
            _("job {job} is {state}; only a waiting job can be rendered").format(
                job=job_id, state=state_label(job.state)
            )
        )
    failed = Dispatcher(config, conn).render_job(job)
    if failed is not None:
        raise UserError(_("job {job}: {reason}").format(job=job_id, reason=failed.reason))
    return _("job {job} ({name} → {target}) rendered").format(job=job_id, name=job.name, target=job.target)


# -- states in plain words -----------------------------------------------------------------
STATE_LABELS = {
    State.PENDING: N_("scheduled"),
    State.RENDERING: N_("preparing"),
    State.READY: N_("ready"),
    State.POSTING: N_("posting"),
    State.POSTED: N_("posted"),
    State.RETRY_WAIT: N_("will retry"),
    State.FAILED: N_("failed"),
    State.UNCERTAIN: N_("may have been posted"),
    State.CANCELLED: N_("cancelled"),
}

STATE_HELP = {
    State.RETRY_WAIT: N_(
        "The platform could not take it just now (busy or rate-limited); poster tries again."
    ),
    State.FAILED: N_("This copy was not posted. Fix what the reason says, then try again."),
    State.UNCERTAIN: N_(
        "poster stopped while sending this post, so it may or may not be online. Look on the "
        "platform, then say which."
    ),
}


def state_label(state: State) -> str:
    return _(STATE_LABELS[state])


def state_help(state: State) -> str | None:
    text = STATE_HELP.get(state)
    return _(text) if text else None


# -- dropping art into the outbox -------------------------------------------------------------
@dataclass(frozen=True)
class Upload:
    name: str  # the file name the browser sent
    data: bytes


@dataclass
class PostFields:
    """The sidecar, as a form fills it in."""

    title: str = ""
    caption: str = ""
    tags: str = ""  # separated by commas, 、 or spaces
    alt: list[str] = field(default_factory=list)  # one per image
    rating: str = "general"
    targets: list[str] | None = None  # None: every enabled target
    at: str = ""  # a local date-time ("2026-12-03T19:00") in the config's time zone, or ""

    def sidecar_data(self, tz: tzinfo, images: int) -> dict[str, Any]:
        data: dict[str, Any] = {"rating": self.rating}
        if self.title.strip():
            data["title"] = self.title.strip()
        if self.caption.strip():
            data["caption"] = self.caption.strip()
        tags = [t for t in re.split(r"[,、，\s]+", self.tags) if t.strip("#")]
        if tags:
            data["tags"] = tags
        alts = [a.strip() for a in self.alt]
        if any(alts):
            data["alt"] = alts[0] if images == 1 else (alts + [""] * images)[:images]
        if self.targets is not None:
            data["targets"] = list(self.targets)
        if self.at.strip():
            try:
                when = datetime.fromisoformat(self.at.strip())
            except ValueError:
                raise InputError(_("time: not a date and time: {value}").format(value=self.at)) from None
            data["at"] = when if when.tzinfo else when.replace(tzinfo=tz)
        return data


MAX_UPLOAD_IMAGES = 20  # the most any adapter takes in one post (the local one)
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")


def safe_stem(name: str) -> str:
    """A file-name stem that is safe in the outbox (keeps Japanese and other letters)."""
    stem = _UNSAFE_NAME.sub("_", Path(name.replace("\\", "/")).stem).strip(" ._")
    return stem[:80] or "art"


def check_upload(config: Config, files: list[Upload], fields: PostFields) -> tuple[bytes, list[str]]:
    """The checks intake makes (size, format, pixel count, sidecar), before anything is
    written: a dropped file that intake would fail is refused at once, with the reason.
    Returns the sidecar's bytes and its warnings."""
    import tomlkit

    if not files:
        raise InputError(_("choose at least one image"))
    if len(files) > MAX_UPLOAD_IMAGES:
        raise InputError(
            _("{count} images: one post takes at most {limit}").format(
                count=len(files), limit=MAX_UPLOAD_IMAGES
            )
        )
    for f in files:
        suffix = Path(f.name).suffix.lower()
        kind = outbox.UNPOSTED_FORMATS.get(suffix)
        if kind:
            raise InputError(
                _("{file}: {kind} files are not posted; export PNG or JPEG").format(file=f.name, kind=kind)
            )
        if suffix not in imaging.IMAGE_EXTENSIONS:
            raise InputError(
                _("{file}: not an image poster takes (PNG, JPEG, WebP, TIFF, BMP, GIF)").format(file=f.name)
            )
        if len(f.data) > config.intake.max_file_bytes:
            raise InputError(
                _("{file}: {size} bytes, over the limit of {limit}").format(
                    file=f.name, size=len(f.data), limit=config.intake.max_file_bytes
                )
            )
        imaging.probe(f.data, f.name, max_pixels=config.intake.max_image_pixels)
    data = fields.sidecar_data(schedule.zone(config), len(files))
    unknown = [t for t in data.get("targets", []) if t not in config.targets]
    if unknown:
        raise InputError(_("targets: unknown target {names}").format(names=", ".join(unknown)))
    if "targets" in data and not data["targets"]:
        raise InputError(_("targets: choose at least one place to post"))
    text = tomlkit.dumps(data).encode("utf-8")
    _side, warnings = sidecar.parse(text, "post.toml", max_bytes=config.intake.max_sidecar_bytes)
    return text, warnings


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _free_name(outbox_dir: Path, stem: str, suffix: str) -> str:
    existing = {p.name for p in outbox_dir.iterdir()} if outbox_dir.exists() else set()
    for n in range(1, 10_000):
        name = stem if n == 1 else f"{stem}-{n}"
        if not ({name + suffix, name + ".toml", name} & existing):
            return name
    raise UserError(_("the outbox is full of files named {name}").format(name=stem))


def drop_into_outbox(config: Config, files: list[Upload], fields: PostFields) -> str:
    """Check the files as intake would, then put them into the outbox atomically: written and
    synced in a staging folder next to it, then renamed in, so the daemon never sees half a
    file. One image goes in as `NAME.ext` + `NAME.toml` (sidecar first), several as a folder
    `NAME/` with `post.toml` (one rename). Returns the name in the outbox."""
    side, _warnings = check_upload(config, files, fields)
    box = config.outbox
    store.ensure_private_dir(box)
    staging = config.data_dir / "incoming"
    store.ensure_private_dir(staging)
    stem = safe_stem(files[0].name)
    # old enough to count as stable: the files are complete the moment they appear
    stable = now().timestamp() - config.intake.stable_seconds - 1
    with tempfile.TemporaryDirectory(dir=staging) as tmp:
        work = Path(tmp)
        if len(files) == 1:
            suffix = Path(files[0].name).suffix.lower()
            name = _free_name(box, stem, suffix)
            _write_private(work / (name + ".toml"), side)
            _write_private(work / (name + suffix), files[0].data)
            for p in (work / (name + ".toml"), work / (name + suffix)):
                os.utime(p, (stable, stable))
                os.replace(p, box / p.name)
            shown = name + suffix
        else:
            name = _free_name(box, stem, "")
            folder = work / name
            folder.mkdir(mode=0o700)
            _write_private(folder / outbox.FOLDER_SIDECAR, side)
            for i, f in enumerate(files, 1):
                _write_private(folder / f"{i:02d}-{safe_stem(f.name)}{Path(f.name).suffix.lower()}", f.data)
            for p in folder.iterdir():
                os.utime(p, (stable, stable))
            os.rename(folder, box / name)
            shown = name + "/"
        dirfd = os.open(box, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)
    return shown


def take_in(config: Config, conn: sqlite3.Connection) -> list[outbox.IntakeResult]:
    """Take in everything stable in the outbox now (what the daemon's next scan would do)."""
    return outbox.scan(conn, config)


# -- the queue, grouped by artwork ------------------------------------------------------------
@dataclass
class JobView:
    job: jobs.Job
    label: str
    help: str | None
    when: datetime  # scheduled (or posted) time in the user's zone
    variants: list[jobs.Variant]
    awaiting_approval: bool

    @property
    def can_retry(self) -> bool:
        return self.job.state in (State.FAILED, State.CANCELLED, State.RETRY_WAIT)

    @property
    def can_cancel(self) -> bool:
        return self.job.state in (
            State.PENDING,
            State.READY,
            State.RETRY_WAIT,
            State.FAILED,
            State.UNCERTAIN,
        )

    @property
    def can_release(self) -> bool:
        """Waits for a later time (a slot or its release date): "post now" can bring it forward."""
        return self.job.state in (State.PENDING, State.READY) and self.job.scheduled_at > now()

    @property
    def can_prepare(self) -> bool:
        return self.job.state is State.PENDING

    @property
    def can_approve(self) -> bool:
        return self.awaiting_approval and self.job.state in (State.READY, State.RETRY_WAIT)


@dataclass
class ArtworkView:
    id: int
    name: str
    title: str
    created_at: datetime
    images: list[jobs.Original]
    jobs: list[JobView]
    meta: dict[str, Any]

    @property
    def summary(self) -> str:
        posted = sum(j.job.state is State.POSTED for j in self.jobs)
        return _("{posted} of {total} posted").format(posted=posted, total=len(self.jobs))

    @property
    def needs_attention(self) -> bool:
        return any(j.job.state in (State.FAILED, State.UNCERTAIN) or j.can_approve for j in self.jobs)

    @property
    def finished(self) -> bool:
        return all(j.job.state in (State.POSTED, State.CANCELLED) for j in self.jobs)


def _posted_times(conn: sqlite3.Connection) -> dict[int, datetime]:
    rows = conn.execute("SELECT job_id, MAX(at) AS at FROM events WHERE state = 'posted' GROUP BY job_id")
    return {r["job_id"]: store.parse_iso(r["at"]) for r in rows}


def _job_view(
    config: Config, j: jobs.Job, tz: tzinfo, posted: dict[int, datetime], conn: sqlite3.Connection
) -> JobView:
    when = posted.get(j.id, j.scheduled_at) if j.state is State.POSTED else j.scheduled_at
    return JobView(
        job=j,
        label=state_label(j.state),
        help=state_help(j.state),
        when=when.astimezone(tz),
        variants=jobs.variants(conn, j.id),
        awaiting_approval=config.needs_approval(j.target) and j.approved_at is None,
    )


def queue(config: Config, conn: sqlite3.Connection, *, limit: int = 200) -> list[ArtworkView]:
    """Artworks, newest first, each with its jobs (one per target)."""
    tz = schedule.zone(config)
    posted = _posted_times(conn)
    rows = conn.execute(
        "SELECT id, name, meta, created_at FROM artworks ORDER BY id DESC LIMIT ?", (limit,)
    ).fetchall()
    by_artwork: dict[int, list[jobs.Job]] = {}
    for j in jobs.all_jobs(conn):
        by_artwork.setdefault(j.artwork_id, []).append(j)
    out = []
    for r in rows:
        meta = json.loads(r["meta"])
        out.append(
            ArtworkView(
                id=r["id"],
                name=r["name"],
                title=meta.get("title") or Path(r["name"].rstrip("/")).stem,
                created_at=store.parse_iso(r["created_at"]).astimezone(tz),
                images=jobs.originals(conn, r["id"]),
                jobs=[
                    _job_view(config, j, tz, posted, conn)
                    for j in sorted(by_artwork.get(r["id"], []), key=lambda j: j.target)
                ],
                meta=meta,
            )
        )
    return out


def artwork(config: Config, conn: sqlite3.Connection, artwork_id: int) -> ArtworkView:
    tz = schedule.zone(config)
    r = conn.execute("SELECT id, name, meta, created_at FROM artworks WHERE id = ?", (artwork_id,)).fetchone()
    if r is None:
        raise UserError(_("no artwork {id}").format(id=artwork_id))
    meta = json.loads(r["meta"])
    posted = _posted_times(conn)
    js = [j for j in jobs.all_jobs(conn) if j.artwork_id == artwork_id]
    return ArtworkView(
        id=r["id"],
        name=r["name"],
        title=meta.get("title") or Path(r["name"].rstrip("/")).stem,
        created_at=store.parse_iso(r["created_at"]).astimezone(tz),
        images=jobs.originals(conn, artwork_id),
        jobs=[_job_view(config, j, tz, posted, conn) for j in sorted(js, key=lambda j: j.target)],
        meta=meta,
    )


def waiting_in_outbox(config: Config) -> list[tuple[str, str | None]]:
    """What sits in the outbox, not taken in yet: (name, why it stays, or None)."""
    found, skipped = outbox.find_candidates(config.outbox)
    return [(c.name, None) for c in found] + [(s.name, s.reason) for s in skipped]


def needs_attention(config: Config) -> tuple[Path, list[tuple[str, str]]]:
    """What intake held back in needs-attention/ (name, reason), and that folder."""
    from poster import attention

    return attention.folder(config), [(h.name, h.reason) for h in attention.items(config)]


def original_file(config: Config, conn: sqlite3.Connection, artwork_id: int, idx: int) -> Path:
    for o in jobs.originals(conn, artwork_id):
        if o.idx == idx:
            return config.data_dir / o.archive_path
    raise UserError(_("no image {idx} in artwork {id}").format(idx=idx, id=artwork_id))


def variant_file(config: Config, conn: sqlite3.Connection, job_id: int, idx: int) -> tuple[Path, str]:
    """The rendered file of one image of a job (the bytes that are posted) and its MIME type."""
    for v in jobs.variants(conn, job_id):
        if v.idx == idx:
            return config.data_dir / v.path, imaging.MIME[v.format]
    raise UserError(_("job {job} has no rendered image {idx}").format(job=job_id, idx=idx))


def thumbnail(config: Config, conn: sqlite3.Connection, artwork_id: int, idx: int, edge: int = 480) -> Path:
    """A small JPEG of an original for the queue (made once, kept in the data folder)."""
    original = next((o for o in jobs.originals(conn, artwork_id) if o.idx == idx), None)
    if original is None:
        raise UserError(_("no image {idx} in artwork {id}").format(idx=idx, id=artwork_id))
    cache = config.data_dir / "ui-cache"
    path = cache / f"{original.sha256}-{edge}.jpg"
    if not path.exists():
        store.ensure_private_dir(cache)
        data = (config.data_dir / original.archive_path).read_bytes()
        image = imaging.load(data, original.name, max_pixels=config.intake.max_image_pixels)
        image.thumbnail((edge, edge))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        imaging.flatten(image, config.render.background).save(tmp, "JPEG", quality=85)
        os.replace(tmp, path)
    return path


@lru_cache(maxsize=256)
def _quality(original: Path, variant: Path, sha256: str, background: str) -> tuple[float, float]:
    from poster.protect import quality
    from poster.protect.fit import resize

    v = imaging.decode(variant.read_bytes())
    o = imaging.load(original.read_bytes(), original.name, max_pixels=1_000_000_000)
    o = imaging.flatten(resize(o, v.size), background)
    v = imaging.flatten(v, background) if v.mode == "RGBA" else v.convert("RGB")
    return round(quality.psnr(o, v), 2), round(quality.ssim(o, v), 4)


def variant_quality(config: Config, conn: sqlite3.Connection, job_id: int, idx: int) -> dict[str, float]:
    """PSNR/SSIM of a rendered variant against its original at the variant's size, computed as
    `poster preview --json` computes them."""
    job = jobs.get(conn, job_id)
    path, _mime = variant_file(config, conn, job_id, idx)
    v = next(v for v in jobs.variants(conn, job_id) if v.idx == idx)
    psnr, ssim = _quality(
        original_file(config, conn, job.artwork_id, idx), path, v.sha256, config.render.background
    )
    return {"psnr": psnr, "ssim": ssim}


@dataclass(frozen=True)
class JobCopy:
    """One image of a queued job as it will be posted: its bytes, and both images as a viewer
    sees them (the original at the variant's size), for `poster preview --job` and the UI."""

    data: bytes
    original: Any  # PIL.Image.Image
    variant: Any  # PIL.Image.Image
    report: dict[str, Any]


def job_copy(config: Config, conn: sqlite3.Connection, job_id: int, idx: int = 0) -> JobCopy:
    """The job's own rendered file (rendered now if the job waits and was not yet): exactly
    the bytes that will be posted, with the numbers `poster preview --json` gives."""
    from poster.protect import quality
    from poster.protect.fit import resize

    job = jobs.get(conn, job_id)
    if not jobs.variants(conn, job_id):
        prepare(config, conn, job_id)
    path, _mime = variant_file(config, conn, job_id, idx)
    v = next(v for v in jobs.variants(conn, job_id) if v.idx == idx)
    data = path.read_bytes()
    background = config.render.background
    decoded = imaging.decode(data)
    variant = imaging.flatten(decoded, background) if decoded.mode == "RGBA" else decoded.convert("RGB")
    src = original_file(config, conn, job.artwork_id, idx)
    original = imaging.flatten(
        resize(
            imaging.load(src.read_bytes(), src.name, max_pixels=config.intake.max_image_pixels), variant.size
        ),
        background,
    )
    mark = v.render.get("mark", {})
    report = {
        "psnr": round(quality.psnr(original, variant), 2),
        "ssim": round(quality.ssim(original, variant), 4),
        "width": v.width,
        "height": v.height,
        "bytes": v.bytes,
        "format": v.format,
        "policy": v.render.get("policy", {}).get("name"),
        "mark_strength": mark.get("strength"),
        "mark_read": mark.get("read"),
        "checked": mark.get("checked"),
        "alpha": v.render.get("alpha"),
        "mark_id": ledger.format_id(v.mark_id),
        "job": job_id,
        "target": job.target,
        "sha256": v.sha256,
    }
    return JobCopy(data, original, variant, report)


# -- calendar -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CalendarEntry:
    when: datetime
    target: str
    job_id: int
    artwork_id: int
    title: str
    state: State
    label: str


def calendar(
    config: Config, conn: sqlite3.Connection, start: date, days: int
) -> dict[date, list[CalendarEntry]]:
    """Every job's time (posted: when it went out; otherwise when it is planned) from `start`
    for `days` days, by day in the user's zone. Cancelled jobs are left out."""
    tz = schedule.zone(config)
    posted = _posted_times(conn)
    out: dict[date, list[CalendarEntry]] = {start + timedelta(days=i): [] for i in range(days)}
    for j in jobs.all_jobs(conn):
        if j.state is State.CANCELLED:
            continue
        when = (posted.get(j.id, j.scheduled_at) if j.state is State.POSTED else j.scheduled_at).astimezone(
            tz
        )
        if when.date() in out:
            out[when.date()].append(
                CalendarEntry(
                    when=when,
                    target=j.target,
                    job_id=j.id,
                    artwork_id=j.artwork_id,
                    title=j.meta.get("title") or Path(j.name.rstrip("/")).stem,
                    state=j.state,
                    label=state_label(j.state),
                )
            )
    for entries in out.values():
        entries.sort(key=lambda e: (e.when, e.target))
    return out


# -- trace ------------------------------------------------------------------------------------
@dataclass
class TraceItem:
    file: str
    matches: list[dict[str, Any]]
    notes: list[str]
    report: Path | None
    error: str | None = None
    figures: dict[str, str] = field(default_factory=dict)  # suspect / posted-variant → file in the report


def trace_files(
    config: Config,
    conn: sqlite3.Connection,
    files: list[tuple[str, Path]],
    report_root: Path | None,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[TraceItem]:
    """The web UI's trace: `trace_images` (the CLI's, same verdicts and reports) on each
    (shown name, path), with what the page shows besides (titles, local times, figures).
    Reports go where `trace_report_dir` says; `progress(done, total, name)` after each image,
    and while originals are described for the local-feature index (`prepare_trace_index`: a
    rebuild after an upgrade takes minutes) with that step's name."""
    tz = schedule.zone(config)
    out = []
    describing = _("describing the archive's originals for trace")
    index = prepare_trace_index(
        config, conn, None if progress is None else lambda done, total: progress(done, total, describing)
    )
    for t in trace_images(config, conn, list(files), progress=progress, report_root=report_root, index=index):
        if t.result is None:
            out.append(TraceItem(t.name, [], [], None, t.error))
            continue
        figures: dict[str, str] = {}
        if t.report is not None:
            for f in t.report.parent.iterdir():
                if f.stem in ("suspect", "posted-variant"):
                    figures[f.stem] = f.name
        matches = [m.to_json() for m in t.result.matches]
        for m in matches:
            m["title"] = _title_of_job(conn, m.get("seq"))
            m["when"] = store.parse_iso(m["posted_at"]).astimezone(tz)
        out.append(TraceItem(t.name, matches, list(t.result.notes), t.report, figures=figures))
    return out


def trace_report_dir(report_root: Path, n: int, name: str, total: int) -> Path:
    """Where the evidence report of the n-th (from 1) of `total` traced images goes: the
    folder itself for one image, else NN-<name's stem> in it."""
    if total == 1:
        return report_root
    stem = "stdin" if name == "-" else safe_stem(name)
    return report_root / f"{n:02d}-{stem}"


def _title_of_job(conn: sqlite3.Connection, seq: int | None) -> str:
    if seq is None:
        return ""
    row = conn.execute(
        "SELECT a.name, a.meta FROM ledger l JOIN jobs j ON j.id = l.job_id"
        " JOIN artworks a ON a.id = j.artwork_id WHERE l.seq = ?",
        (seq,),
    ).fetchone()
    if row is None:
        return ""
    return json.loads(row["meta"]).get("title") or Path(row["name"].rstrip("/")).stem


def describe_method(match: dict[str, Any]) -> str:
    """How a trace match was found, in plain words."""
    if match["method"] == "hidden-id":
        if match.get("via"):
            return _("hidden ID, read with the original")
        return _("hidden ID")
    if match.get("post") == "ambiguous":
        return _("looks like this artwork (which post is unclear)")
    return _("looks like this post")


# -- ledger -----------------------------------------------------------------------------------
def ledger_search(
    conn: sqlite3.Connection,
    *,
    text: str = "",
    target: str = "",
    since: date | None = None,
    until: date | None = None,
    tz: tzinfo | None = None,
) -> list[dict[str, Any]]:
    """Ledger rows (newest first) with the artwork's title and file names, filtered by words
    in the title or a file name (or the hidden ID, URL), by target and by posting date."""
    names: dict[int, tuple[str, str]] = {}
    for r in conn.execute(
        "SELECT j.id AS job_id, a.name, a.meta, group_concat(o.name, char(31)) AS files FROM jobs j"
        " JOIN artworks a ON a.id = j.artwork_id LEFT JOIN originals o ON o.artwork_id = a.id"
        " GROUP BY j.id"
    ):
        title = json.loads(r["meta"]).get("title") or Path(r["name"].rstrip("/")).stem
        files = dict.fromkeys([r["name"], *(r["files"] or "").split("\x1f")])  # once each, in order
        names[r["job_id"]] = (title, " ".join(f for f in files if f))
    words = text.lower().split()
    out = []
    for row in reversed(ledger.rows(conn)):
        title, files = names.get(row["job_id"], ("", ""))
        hay = f"{title} {files} {row['id']} {row['url'] or ''}".lower()
        if words and not all(w in hay for w in words):
            continue
        if target and row["target"] != target:
            continue
        day = store.parse_iso(row["posted_at"]).astimezone(tz).date()
        if (since and day < since) or (until and day > until):
            continue
        out.append({**row, "title": title, "files": files.strip()})
    return out


def ledger_export(rows: list[dict[str, Any]], fmt: str) -> str:
    """CSV or JSON of ledger rows, in the columns `poster ledger export` prints."""
    plain = [{k: r[k] for k in ledger.EXPORT_FIELDS} for r in rows]
    if fmt == "csv":
        return ledger.to_csv(plain)
    return json.dumps(plain, ensure_ascii=False, indent=2, default=str)


@dataclass(frozen=True)
class LedgerCheck:
    """`poster ledger verify` (and the UI's verify button): `ok`, the one-line verdict,
    warnings (time-stamps that do not verify) and further lines of detail."""

    ok: bool
    verdict: str
    warnings: list[str]
    details: list[str]


def check_ledger(config: Config, conn: sqlite3.Connection) -> LedgerCheck:
    """The database file, the hash chain, and the chain against every time-stamped head with
    each token's signature and imprint (poster.timestamps.check_ledger)."""
    from poster import timestamps

    check = timestamps.check_ledger(conn, timestamps.anchors(config), config.data_dir)
    warnings = [
        _("time-stamp of {what} does not verify: {reason}").format(
            what=timestamps.describe(bad.stamp), reason=bad.reason
        )
        for bad in check.bad
    ]
    if not check.chain.ok:
        verdict = _("ledger check failed: {problem}").format(problem=check.chain.problem)
        return LedgerCheck(False, verdict, warnings, [])
    if check.bad:
        verdict = _("ledger check failed: {count} time-stamp(s) do not verify").format(count=len(check.bad))
        return LedgerCheck(False, verdict, warnings, [])
    details = []
    if check.last_head is not None:
        details.append(
            _("matches {heads} time-stamped head(s); rows 1-{seq} {label}").format(
                heads=check.chain.heads, seq=check.last_head.seq, label=timestamps.label(check.last_head)
            )
        )
    if check.tokens:
        details.append(
            _("{count} time-stamp token(s) verified (signature and hash)").format(count=check.tokens)
        )
    if check.unstamped_after == 0:
        details.append(_("no row is time-stamped yet (see `poster status`)"))
    elif check.unstamped_after is not None:
        details.append(
            _("rows after {seq} are not time-stamped yet (see `poster status`)").format(
                seq=check.unstamped_after
            )
        )
    verdict = _("ledger OK: {rows} rows, hash chain intact, database file sound ({file})").format(
        rows=check.chain.rows, file=config.db_path
    )
    return LedgerCheck(True, verdict, warnings, details)


def ledger_verify(config: Config, conn: sqlite3.Connection) -> tuple[bool, str]:
    """The UI's short form of `check_ledger`: ok and one paragraph."""
    c = check_ledger(config, conn)
    return c.ok, " ".join([c.verdict, *c.details, *c.warnings])


# -- settings ---------------------------------------------------------------------------------
@dataclass
class TargetSettings:
    name: str
    adapter: str
    policy: str
    enabled: bool
    slots: list[str]
    min_interval_minutes: float | int
    daily_cap: int | None
    delay_minutes: float | int
    approve: bool | None
    credentials: dict[str, str | None]  # field → "env" | "keyring" | None; never a value


def settings(config: Config) -> tuple[dict[str, Any], list[TargetSettings], list[str]]:
    """The editable settings (top level, per target) and the policy names to choose from."""
    from poster.config import builtin_policies
    from poster.platforms import adapter_class
    from poster.secrets import credential_sources, login_prompt_fields

    top = {
        "artist": config.artist,
        "timezone": config.timezone or "",
        "language": config.language,
        "approve": config.approve,
        "font": str(config.render.font or ""),
        "logo": str(config.render.logo or ""),
        "watermark_look": config.render.watermark_look,
        "signature_position": config.render.signature_position,
        "font_in_use": font_in_use(config),
    }
    targets = []
    for name, t in config.targets.items():
        try:
            fields = [f.name for f in login_prompt_fields(adapter_class(t.adapter))]
        except UserError:
            fields = []
        targets.append(
            TargetSettings(
                name=name,
                adapter=t.adapter,
                policy=t.policy,
                enabled=t.enabled,
                slots=list(t.slots),
                min_interval_minutes=_plain_number(t.min_interval_minutes),
                daily_cap=t.daily_cap,
                delay_minutes=_plain_number(t.delay_minutes),
                approve=t.approve,
                credentials=credential_sources(name, fields),
            )
        )
    return top, targets, sorted(set(builtin_policies()) | set(config.policies))


def font_in_use(config: Config) -> str:
    """The font the signature and watermark text are drawn with (the configured one, else the
    installed font found for the artist's name), or why there is none: for the settings page."""
    from poster import fonts

    text = f"© {config.artist}"
    try:
        found = fonts.choose(text, str(config.render.font) if config.render.font else None)
    except UserError as exc:
        return str(exc)
    return str(found) if found is not None else _("the built-in font (the text has only Latin letters)")


WATERMARK_LOOKS = {
    "subtle": N_("subtle: faint, small"),
    "standard": N_("standard"),
    "strong": N_("strong: bold, hard to remove"),
}
SIGNATURE_POSITIONS = {
    "auto": N_("automatic: the quietest corner, away from faces"),
    "bottom-right": N_("bottom right"),
    "bottom-left": N_("bottom left"),
    "top-right": N_("top right"),
    "top-left": N_("top left"),
}


POLICY_LABELS = {
    "heavy": N_("heavy: size cap, noise, visible watermarks, signature"),
    "light": N_("light: full size, faint noise, signature"),
}


def policy_label(name: str) -> str:
    text = POLICY_LABELS.get(name)
    return _(text) if text else name


def _plain_number(value: float) -> float | int:
    """5.0 → 5 for a form field; 2.5 stays."""
    return int(value) if float(value).is_integer() else value


def _number(text: str) -> float | int | str:
    """A form's number as TOML wants it; text that is not a number stays text, so the config
    model reports it beside its field."""
    t = text.strip()
    try:
        return int(t)
    except ValueError:
        try:
            return float(t)
        except ValueError:
            return t


def save_settings(config: Config, form: dict[str, str]) -> dict[str, str]:
    """Apply a settings form to the config file: validated by the config's own models, then
    written back with comments and layout kept (tomlkit). Returns {field: error}; nothing is
    written while there is an error. Field names: `artist`, `targets.x.slots`, …"""
    import tomlkit

    path = config.path
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))

    def put(table: Any, key: str, value: Any) -> None:
        if value is None or value == "":
            if key in table:
                del table[key]
        else:
            table[key] = value

    for key in ("artist", "timezone", "language"):
        if key in form:
            value = form[key].strip()
            if key in doc:
                doc[key] = value  # keep the line (`timezone = ""`) and the comment above it
            else:
                put(doc, key, value)
    doc["approve"] = form.get("approve") == "on"
    if any(f"render.{k}" in form for k in ("font", "logo", "watermark_look", "signature_position")):
        if "render" not in doc:
            doc["render"] = tomlkit.table()
        render = doc["render"]
        for key in ("font", "logo"):  # "" keeps the line: not set, found automatically
            if f"render.{key}" in form:
                value = form[f"render.{key}"].strip()
                if key in render or value:
                    render[key] = value
        for key in ("watermark_look", "signature_position"):
            if f"render.{key}" in form:
                put(render, key, form[f"render.{key}"].strip())
    targets = doc.get("targets", {})
    for name in config.targets:
        t = targets.get(name)
        if t is None:
            continue
        p = f"targets.{name}."
        if p + "policy" in form:
            t["policy"] = form[p + "policy"]
        t["enabled"] = form.get(p + "enabled") == "on"
        if p + "slots" in form:
            slots = [s.strip() for s in form[p + "slots"].replace("、", "\n").splitlines() if s.strip()]
            t["slots"] = slots
        for key in ("min_interval_minutes", "delay_minutes", "daily_cap"):
            if p + key in form:
                put(t, key, _number(form[p + key]) if form[p + key].strip() else None)
        if p + "approve" in form:
            choice = form[p + "approve"]
            put(t, "approve", {"on": True, "off": False}.get(choice))
    from poster import config as config_mod

    errors: dict[str, str] = {}
    for loc, _kind, err in config_mod.field_errors(path, doc.unwrap()):
        # a model-level check names its field in the message ("targets.x.policy: …"; in
        # Japanese the colon is the full-width one)
        m = re.match(
            r"^(targets\.[\w-]+\.\w+)(?:: |：)(.*)$", str(err.get("msg", "")).removeprefix("Value error, ")
        )
        if m:
            errors.setdefault(m.group(1), m.group(2))
        else:
            errors.setdefault(loc, config_mod.error_text(err))
    if errors:
        return errors
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)
    return {}


def store_credentials(config: Config, target: str, values: dict[str, str]) -> str:
    """Put a target's credentials into the keyring. Empty fields are left as they are; the
    values are never returned, logged or written anywhere else."""
    from poster import secrets
    from poster.platforms import adapter_class

    tc = config.targets.get(target)
    if tc is None:
        raise UserError(_("no target named {name}").format(name=target))
    fields = {f.name for f in secrets.login_prompt_fields(adapter_class(tc.adapter))}
    given = {k: v.strip() for k, v in values.items() if k in fields and v.strip()}
    if not given:
        raise UserError(_("{target}: nothing entered, nothing stored").format(target=target))
    ok, why = secrets.keyring_status()
    if not ok:
        names = ", ".join(secrets.env_name(target, f) for f in sorted(fields))
        raise UserError(
            _("cannot store credentials: {why}; set the environment variables {names} instead").format(
                why=why, names=names
            )
        )
    try:
        secrets.store(target, given)
    except Exception as exc:
        raise UserError(
            _("cannot store credentials in the keyring: {error}").format(error=type(exc).__name__)
        ) from None
    return _("{target}: stored {fields} in the keyring").format(
        target=target, fields=", ".join(sorted(given))
    )


# -- health -----------------------------------------------------------------------------------
@dataclass
class Health:
    targets: list[Any]  # poster.platforms.doctor.TargetReport
    keyring: tuple[bool, str]
    ledger: tuple[bool, str]
    daemon_running: bool
    outbox: Path
    waiting: int
    data: tuple[bool, str] = (True, "")  # the database file (SQLite's full integrity check)
    stamps: tuple[bool, str] = (True, "")  # the time-stamping authorities and what waits


def health(config: Config, conn: sqlite3.Connection, *, only: Iterable[str] | None = None) -> Health:
    """What `poster doctor` checks (one cheap call per target, the data folder's database,
    the time-stamping authorities), plus the keyring, the ledger's chain and whether a daemon
    works on this data folder."""
    from poster import daemon, secrets, timestamps
    from poster.platforms import doctor

    wanted = set(only) if only is not None else None
    targets = {
        n: (t.adapter, t.settings()) for n, t in config.targets.items() if wanted is None or n in wanted
    }
    reports = doctor.check_targets(targets, config.data_dir)
    data = doctor.check_data(config.db_path)
    stamps = (True, "")
    if wanted is None:  # a check of all targets also asks the time-stamping authorities
        stamped = timestamps.doctor(conn, config)
        stamps = (stamped.ok, stamped.message)
    return Health(
        targets=reports,
        keyring=secrets.keyring_status(),
        ledger=ledger_verify(config, conn),
        daemon_running=daemon.is_running(config),
        outbox=config.outbox,
        waiting=len(waiting_in_outbox(config)),
        data=(data.ok, data.message),
        stamps=stamps,
    )


def read_config(path: Path) -> Config:
    """The config as the settings page wrote it (a ConfigError names what is wrong)."""
    from poster import config as config_mod

    return config_mod.load(path)


def _look_up(config: Config, conn: sqlite3.Connection, job: jobs.Job) -> PostResult | None:
    """The post of `job` if its platform shows it; None when it does not, or cannot tell (then
    the user's word decides)."""
    dispatcher = Dispatcher(config, conn)
    try:
        existence, found = dispatcher.adapter(job.target).find_existing(dispatcher.build_post(job))
    except (UserError, OSError):  # target gone from the config, variant files gone
        return None
    return found if existence is Existence.EXISTS else None


def proof(config: Config, conn: sqlite3.Connection, ref: str, out: Path) -> proof_mod.Bundle:
    """`poster proof ARTWORK|POST-ID --out DIR` (poster.proof says what ARTWORK and POST-ID
    are): the evidence bundle, checked against the configured trust anchors."""
    from poster import timestamps

    subject = proof_mod.resolve(conn, ref)
    return proof_mod.write(conn, subject, out, timestamps.anchors(config), config.data_dir)


def proof_zip(config: Config, conn: sqlite3.Connection, ref: str) -> tuple[str, bytes, list[str]]:
    """`proof` as one .zip for a download (the web UI's ledger page): (file name, bytes,
    warnings). The bundle is made in a temporary folder that is removed afterwards."""
    import shutil

    name = "poster-proof-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", ref).strip("-")[:64] or "bundle")
    with tempfile.TemporaryDirectory(prefix="poster-proof-") as tmp:
        bundle = proof(config, conn, ref, Path(tmp) / name)
        archive = shutil.make_archive(
            str(Path(tmp) / name), "zip", root_dir=bundle.dir.parent, base_dir=bundle.dir.name
        )
        return f"{name}.zip", Path(archive).read_bytes(), list(bundle.warnings)


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


def prepare_trace_index(
    config: Config, conn: sqlite3.Connection, progress: Callable[[int, int], None] | None = None
) -> FeatureIndex | None:
    """Bring the local-feature index up to date with the archive before a trace, with
    `progress(done, total)` per original described: after an upgrade that changed how
    keypoints are described (poster.features.FORMAT) every original is described again, 0.3-1.3
    s each, which the trace would otherwise spend silently. The index is returned for
    `trace_images` (opening it again costs 0.13 s at 10^6 posts). A data folder that cannot
    be written gives None: the trace uses what is there and says so (Tracer.findex)."""
    from poster import features

    try:
        return features.update(conn, config.data_dir, progress=progress)
    except OSError:
        return None


def trace_images(
    config: Config,
    conn: sqlite3.Connection,
    items: Sequence[Path | bytes | tuple[str, bytes] | tuple[str, Path]],
    *,
    progress: Callable[[int, int, str], None] | None = None,
    report_root: Path | None = None,
    trust: Sequence[Any] | None = None,
    index: FeatureIndex | None = None,
) -> list[Traced]:
    """Trace found images (paths, bytes, or (name, bytes or path) as uploaded) against this
    data folder's ledger and archive: one `poster.trace.Traced` per item, in order, each with
    its verdict (`result.verdict`), matches and evidence, or the reason it could not be read.
    With `report_root`, an evidence report per traced image (`trace_report_dir`; `trust`: the
    time-stamp trust anchors, default `timestamps.anchors(config)`), its page in `.report`.
    `progress(done, total, name)` is called after each image; `index`: the local-feature index
    `prepare_trace_index` returned (else the tracer brings it up to date itself, silently).
    The CLI and the web UI both
    trace through here. The JSON of one item is `Traced.to_json()` (the CONTRACT's
    `{"file", "matches"}` plus `verdict`, `artwork`, and `report` when one was written)."""
    from poster import markkey, timestamps
    from poster import report as report_mod
    from poster import trace as trace_mod

    tracer = trace_mod.Tracer(
        conn, markkey.load(config.data_dir), config.data_dir, cache=trace_mod.index_cache(config.data_dir),
        findex=index,
    )  # fmt: skip
    traced = trace_mod.trace_many(tracer, items, progress=progress, keep_images=True)
    if report_root is None:
        return traced
    anchors = list(trust) if trust is not None else None
    for n, (item, t) in enumerate(zip(items, traced, strict=True), 1):
        if t.result is None or t.image is None:
            continue
        folder = trace_report_dir(report_root, n, t.name, len(traced))
        src = t.source
        if src is None:  # bytes (standard input, an upload): the report keeps them as found
            folder.mkdir(parents=True, exist_ok=True)
            src = folder / "stdin.img"
            data = item[1] if isinstance(item, tuple) else item
            src.write_bytes(data if isinstance(data, bytes) else b"")
        if anchors is None:
            anchors = timestamps.anchors(config)
        t.report = report_mod.write(folder, src, t.image, t.result, conn, config.data_dir, trust=anchors).page
    return traced
