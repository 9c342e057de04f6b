"""Outbox intake: find artworks whose files have stopped changing, archive the originals,
and create one job per target — in that order, so a crash at any point leaves each artwork
either still in the outbox or archived with its jobs (a re-scan then only tidies up).

An artwork is `NAME.ext` (+ optional `NAME.toml`) or a folder `NAME/` of images with an
optional `NAME/post.toml`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import stat
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from poster import jobs, markkey, schedule, sidecar
from poster.config import Config
from poster.errors import InputError
from poster.imaging import IMAGE_EXTENSIONS, probe
from poster.protect import layout_seed
from poster.store import iso, now, transaction

log = logging.getLogger(__name__)
FOLDER_SIDECAR = "post.toml"


@dataclass
class Candidate:
    name: str  # as shown to the user
    images: list[Path]
    sidecar: Path | None
    folder: Path | None = None

    def paths(self) -> list[Path]:
        return [*self.images, *([self.sidecar] if self.sidecar else [])]


@dataclass
class IntakeResult:
    name: str
    outcome: str  # queued | duplicate | failed | waiting | skipped
    reason: str | None = None
    artwork_id: int | None = None
    warnings: list[str] = field(default_factory=list)


# Art formats people drop by mistake: each gets a failed job with the reason, so it shows in
# `poster status` instead of sitting unnoticed in the outbox.
UNPOSTED_FORMATS = {
    ".psd": "Photoshop",
    ".psb": "Photoshop",
    ".kra": "Krita",
    ".clip": "CLIP STUDIO",
    ".xcf": "GIMP",
    ".ora": "OpenRaster",
    ".sai": "PaintTool SAI",
    ".svg": "SVG",
    ".ai": "Illustrator",
    ".pdf": "PDF",
    ".heic": "HEIC",
    ".heif": "HEIF",
    ".avif": "AVIF",
    ".jxl": "JPEG XL",
    ".mp4": "video",
    ".mov": "video",
}


def _is_image(p: Path) -> bool:
    if p.name.startswith("._"):  # macOS resource-fork companions, not images
        return False
    return p.suffix.lower() in IMAGE_EXTENSIONS or p.suffix.lower() in UNPOSTED_FORMATS


def find_candidates(outbox: Path) -> tuple[list[Candidate], list[IntakeResult]]:
    """Artworks in the outbox, plus entries that will never be taken (and why)."""
    found: list[Candidate] = []
    skipped: list[IntakeResult] = []
    try:
        entries = sorted(os.scandir(outbox), key=lambda e: e.name)
    except FileNotFoundError:
        return [], []
    names = {e.name for e in entries}
    for entry in entries:
        path = Path(entry.path)
        if entry.is_symlink():
            skipped.append(IntakeResult(entry.name, "skipped", "symbolic link: not followed"))
            continue
        if entry.is_dir(follow_symlinks=False):
            images = sorted(
                (
                    Path(e.path)
                    for e in os.scandir(path)
                    if e.is_file(follow_symlinks=False) and _is_image(Path(e.path))
                ),
                key=lambda p: p.name,
            )
            side = path / FOLDER_SIDECAR
            if images:
                found.append(Candidate(entry.name + "/", images, side if side.is_file() else None, path))
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        if _is_image(path):
            side_name = path.stem + ".toml"
            found.append(
                Candidate(entry.name, [path], path.with_name(side_name) if side_name in names else None)
            )
        elif path.suffix.lower() != ".toml" and not entry.name.startswith("."):
            skipped.append(IntakeResult(entry.name, "skipped", "not an image; left in place"))
    return found, skipped


class Reported:
    """Problems already reported for artworks left in the outbox. The daemon scans every few
    seconds; a file it cannot take (unreadable, too large) is reported once for as long as it
    stays the same (path, size, mtime), and again once it changes — not on every scan."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[object, ...]] = {}

    def first_time(self, c: Candidate, problem: str) -> bool:
        """True (and remembered) unless this very problem with these very files was reported."""
        key = (problem, *(_signature(p) for p in c.paths()))
        if self._seen.get(c.name) == key:
            return False
        self._seen[c.name] = key
        return True

    def keep_only(self, names: set[str]) -> None:
        """Forget artworks no longer in the outbox (taken, or removed by the user)."""
        for name in [n for n in self._seen if n not in names]:
            del self._seen[name]


def _signature(p: Path) -> tuple[str, int | None, int | None]:
    try:
        st = p.stat(follow_symlinks=False)
    except OSError:
        return str(p), None, None
    return str(p), st.st_size, st.st_mtime_ns


def _stable(c: Candidate, min_age: float, at: float) -> bool:
    for p in c.paths():
        try:
            st = p.stat(follow_symlinks=False)
        except FileNotFoundError:
            return False
        if at - st.st_mtime < min_age:
            return False
    return True


class TooLarge(Exception):
    pass


def _read_stable(c: Candidate, limits: dict[Path, int]) -> dict[Path, bytes] | None:
    """Read every file; None if one changed while reading (still being written). Sizes are
    checked before reading, so a huge image is refused without being loaded; of a huge
    sidecar only one byte past its limit is read, which the parser then refuses."""
    data: dict[Path, bytes] = {}
    for p in c.paths():
        before = p.stat(follow_symlinks=False)
        cap = limits[p]
        if before.st_size > cap and p != c.sidecar:
            raise TooLarge(f"{p.name}: {before.st_size} bytes, over the limit of {cap}")
        with p.open("rb") as fh:
            data[p] = fh.read(cap + 1)
        after = p.stat(follow_symlinks=False)
        changed = (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns)
        if changed or (len(data[p]) <= cap and len(data[p]) != after.st_size):
            return None
    return data


def archive_bytes(archive: Path, data: bytes, suffix: str) -> tuple[str, Path]:
    """Content-addressed, written once, never modified: archive/ab/abcdef….ext"""
    digest = hashlib.sha256(data).hexdigest()
    dest = archive / digest[:2] / f"{digest}{suffix.lower()}"
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = dest.with_name(dest.name + ".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, stat.S_IRUSR)
        os.replace(tmp, dest)
        dirfd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)
    return digest, dest


def _remove(c: Candidate) -> None:
    for p in c.paths():
        p.unlink(missing_ok=True)
    if c.folder is not None:
        try:
            c.folder.rmdir()
        except OSError:
            log.warning("%s: left the folder in the outbox: it still holds other files", c.name)


def _targets_for(config: Config, side: sidecar.Sidecar | None) -> tuple[list[str], str | None]:
    enabled = list(config.enabled_targets())
    if side is None or side.targets is None:
        return enabled, None
    unknown = [t for t in side.targets if t not in config.targets]
    if unknown:
        return (
            enabled,
            f"targets: unknown target {', '.join(map(repr, unknown))} (known: {', '.join(config.targets)})",
        )
    return [t for t in side.targets if t in enabled], None


def intake_one(
    conn: sqlite3.Connection, config: Config, c: Candidate, data: dict[Path, bytes]
) -> IntakeResult:
    warnings: list[str] = []
    problem: str | None = None
    side: sidecar.Sidecar | None = None
    if c.sidecar is not None:
        try:
            side, warnings = sidecar.parse(
                data[c.sidecar],
                c.name if c.folder else c.sidecar.name,
                max_bytes=config.intake.max_sidecar_bytes,
            )
        except InputError as exc:
            problem = str(exc)
    for p in c.images:
        if problem:
            break
        kind = UNPOSTED_FORMATS.get(p.suffix.lower())
        if kind:
            problem = f"{p.name}: {kind} files are not posted; export PNG or JPEG"
            break
        try:
            probe(data[p], p.name, max_pixels=config.intake.max_image_pixels)
        except InputError as exc:
            problem = str(exc)
    targets, target_problem = _targets_for(config, side)
    problem = problem or target_problem

    # 1. originals into the archive (idempotent), before anything else
    archived = [(p.name, *archive_bytes(config.archive, data[p], p.suffix)) for p in c.images]
    side_raw = data[c.sidecar].decode("utf-8", "replace") if c.sidecar else None
    key_src = (
        "\n".join(d for _, d, _ in archived)
        + "\n"
        + hashlib.sha256(data[c.sidecar] if c.sidecar else b"").hexdigest()
    )
    content_key = hashlib.sha256(key_src.encode()).hexdigest()
    meta = {
        **(side.model_dump(mode="json") if side else {}),
        "sidecar_raw": side_raw,
        "warnings": warnings,
    }
    # the visible layout of every post of each image, fixed now (keyed like the hidden ID)
    key = markkey.load(config.data_dir, create=True)
    seeds = {digest: layout_seed(key, digest) for _, digest, _ in archived}
    # 2. the artwork and its jobs, in one transaction; a known content key means a re-scan
    created_at = now()
    with transaction(conn):
        row = conn.execute("SELECT id FROM artworks WHERE content_key = ?", (content_key,)).fetchone()
        if row is not None:
            result = IntakeResult(c.name, "duplicate", "already taken in (same files and sidecar)", row["id"])
        else:
            cur = conn.execute(
                "INSERT INTO artworks (content_key, name, meta, created_at) VALUES (?, ?, ?, ?)",
                (content_key, c.name, json.dumps(meta, ensure_ascii=False), iso(created_at)),
            )
            artwork_id = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO originals (artwork_id, idx, name, sha256, archive_path, layout_seed)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        artwork_id,
                        i,
                        name,
                        digest,
                        str(path.relative_to(config.data_dir)),
                        seeds[digest],
                    )
                    for i, (name, digest, path) in enumerate(archived)
                ],
            )
            at = side.at if side else None
            for target in schedule.stagger_order(config, targets):
                when = schedule.initial_time(config, target, at, created_at, conn=conn, artwork_id=artwork_id)
                state = jobs.State.FAILED if problem else jobs.State.PENDING
                cur = conn.execute(
                    "INSERT INTO jobs (artwork_id, target, state, scheduled_at, reason, post_key,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        artwork_id,
                        target,
                        state.value,
                        iso(when),
                        problem,
                        jobs.new_post_key(),
                        iso(created_at),
                        iso(created_at),
                    ),
                )
                jobs._event(conn, int(cur.lastrowid or 0), state, problem)
            result = IntakeResult(c.name, "failed" if problem else "queued", problem, artwork_id, warnings)
    # 3. only now does the file leave the outbox
    _remove(c)
    for w in warnings:
        log.warning("%s", w)
    if problem:
        log.error("%s", problem)
    return result


def scan(
    conn: sqlite3.Connection,
    config: Config,
    *,
    wait: bool = False,
    clock: datetime | None = None,
    reported: Reported | None = None,
) -> list[IntakeResult]:
    """Take every stable artwork in the outbox. With `wait`, files that are too fresh are
    waited for (up to the stability interval) instead of being left for the next scan.
    A file left in the outbox with a problem is in the results of every scan; with
    `reported` (the daemon's, for its life) it is logged only the first time."""
    candidates, results = find_candidates(config.outbox)
    if reported is not None:
        reported.keep_only({c.name for c in candidates})

    def first_time(c: Candidate, problem: str) -> bool:
        return reported is None or reported.first_time(c, problem)

    min_age = config.intake.stable_seconds
    deadline = time.time() + min_age + 1
    for c in candidates:
        limits = {p: config.intake.max_file_bytes for p in c.images}
        if c.sidecar is not None:
            limits[c.sidecar] = config.intake.max_sidecar_bytes
        try:
            results.append(_take(conn, config, c, limits, wait=wait, min_age=min_age, deadline=deadline))
        except TooLarge as exc:
            results.append(IntakeResult(c.name, "skipped", f"{exc}; left in place"))
            if first_time(c, str(exc)):
                log.error("%s; left in the outbox", exc)
        except OSError as exc:
            results.append(IntakeResult(c.name, "waiting", f"cannot read or archive: {exc.strerror}"))
            if first_time(c, f"OSError: {exc}"):
                log.error("%s: cannot read or archive: %s", c.name, exc.strerror)
        except Exception as exc:  # a bug must not stop the other files from being taken
            results.append(IntakeResult(c.name, "waiting", f"internal error: {type(exc).__name__}: {exc}"))
            if first_time(c, f"{type(exc).__name__}: {exc}"):
                log.debug("intake of %s crashed:\n%s", c.name, traceback.format_exc())
                log.error("%s: internal error during intake: %s", c.name, exc)
    return results


def _take(
    conn: sqlite3.Connection,
    config: Config,
    c: Candidate,
    limits: dict[Path, int],
    *,
    wait: bool,
    min_age: float,
    deadline: float,
) -> IntakeResult:
    while True:
        t = time.time()
        if _stable(c, min_age, t):
            data = _read_stable(c, limits)
            if data is not None:
                return intake_one(conn, config, c, data)
        if not wait or t > deadline:
            return IntakeResult(c.name, "waiting", "still changing; taken once it settles")
        time.sleep(0.2)
