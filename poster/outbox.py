"""Outbox intake: find artworks whose files have stopped changing, archive the originals,
and create one job per target — in that order, so a crash at any point leaves each artwork
either still in the outbox or archived with its jobs (a re-scan then only tidies up). A scan
takes many artworks in batches: their archive copies made durable together, then their rows
in one transaction, then their files removed, so 10,000 files cost a few disk flushes per
batch instead of three per file (`benchmarks/intake.py`).

An artwork is `NAME.ext` (+ optional `NAME.toml`) or a folder `NAME/` of images with an
optional `NAME/post.toml`. Each entry of the outbox ends in one of these ways:

- queued: archived, one job per target, removed from the outbox;
- duplicate: the same files and sidecar were taken before, and not posted twice;
- held: it cannot be posted as it is (a sidecar that does not parse, not an image poster
  posts, over a limit, a link or a pipe where a file should be): moved whole into
  needs-attention/ with the reason beside it (poster.attention); nothing is recorded, so the
  fixed artwork moved back is taken like a new one;
- waiting: not settled yet (still being written), unreadable, or no enabled target to post
  to: it stays in the outbox and is taken once that changes;
- skipped: not an artwork (not an image, a link, a pipe, a sidecar without its image): left
  where it is.

Only regular files are ever opened, never through a link (O_NOFOLLOW), never blocking on a
pipe (O_NONBLOCK, then fstat); the daemon reports each problem once per version of the files
(`Reported`), `run --once` every time.
"""

from __future__ import annotations

import contextvars
import errno
import hashlib
import json
import logging
import os
import secrets
import sqlite3
import stat
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from poster import attention, imaging, jobs, markkey, schedule, sidecar
from poster.attention import Kind
from poster.config import Config
from poster.errors import InputError
from poster.i18n import _
from poster.imaging import IMAGE_EXTENSIONS
from poster.protect import layout_seed
from poster.store import (
    StorageError,
    ensure_private_dir,
    iso,
    now,
    storage_error,
    storage_errors,
    sync_files,
    transaction,
    write_private,
)
from poster.termsafe import safe

log = logging.getLogger(__name__)
FOLDER_SIDECAR = "post.toml"
# Artworks recorded per transaction: a batch is committed when it has this many artworks, this
# many bytes of originals or is this old, so a large drop costs one disk flush and one
# synchronous commit per batch instead of three per artwork, and none is held back long.
BATCH_SIZE = 500
BATCH_BYTES = 256 * 1024 * 1024
BATCH_SECONDS = 2.0
# Threads that read, check and stage the artworks ahead of the one being recorded, and remove
# the taken ones from the outbox behind it. Decoding (to check the image) runs on every core,
# as Pillow lets go of the interpreter lock while it decodes, and the waits on the disk
# (creating an archive file, removing an outbox file: a millisecond or more each on a busy
# disk) overlap other work instead of adding up.
WORKERS = 4
AHEAD = 64  # artworks prepared ahead of the one being recorded (their bytes are not kept)
# A staged archive copy lives for one batch (seconds). One older than this was left by a scan
# that was killed before its commit: its artwork is still in the outbox and is staged again,
# so the leftover is only a duplicate of bytes the outbox holds.
STALE_STAGED_SECONDS = 3600.0
_swept: set[Path] = set()  # archives swept by this process (once per process is enough)


class Rejected(Exception):
    """The artwork cannot be posted as it is: hold it (needs-attention) with this reason."""

    def __init__(self, reason: str, kind: Kind) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


class NotNow(Exception):
    """The artwork is fine but cannot be taken yet (no enabled target): leave it in place."""


@dataclass
class Candidate:
    name: str  # as shown to the user
    images: list[Path]
    sidecar: Path | None
    folder: Path | None = None
    problem: Rejected | None = None  # found while listing: held once its files settle

    def paths(self) -> list[Path]:
        return [*self.images, *([self.sidecar] if self.sidecar else [])]

    def members(self) -> list[Path]:
        """What is moved if the artwork is held: its folder, or its files."""
        return [self.folder] if self.folder is not None else self.paths()


@dataclass
class IntakeResult:
    name: str
    outcome: str  # queued | duplicate | held | waiting | skipped
    reason: str | None = None
    artwork_id: int | None = None
    warnings: list[str] = field(default_factory=list)
    moved_to: Path | None = None  # held: where the artwork is now


# Art formats people drop by mistake: each is held with the reason, so the file shows in
# `poster status` and in needs-attention/ instead of sitting unnoticed in the outbox.
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


def _file_type(mode: int) -> str:
    """What a directory entry is: '' for a regular file, else link | folder | fifo | socket | device."""
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device"


def _what(kind: str) -> str:
    """A `_file_type` in words."""
    return {
        "link": _("a symbolic link"),
        "folder": _("a folder"),
        "fifo": _("a named pipe (FIFO)"),
        "socket": _("a socket"),
    }.get(kind, _("a device"))


def _entry_type(entry: os.DirEntry[str]) -> str | None:
    """`_file_type` of a directory entry; None if it vanished meanwhile."""
    try:
        return _file_type(entry.stat(follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return None


def _not_regular(shown: str, kind: str) -> Rejected:
    if kind == "link":
        reason = _("{file}: is a symbolic link, which poster never follows: put the file itself there")
    else:
        reason = _("{file}: is {what}, not a regular file: put the file itself there")
    return Rejected(reason.format(file=shown, what=_what(kind)), Kind.LINK)


def _name_problem(c: Candidate) -> Rejected | None:
    """SQLite, JSON and the platforms need text: a name that is not valid UTF-8 cannot be kept."""
    for p in [*(c.members()), *c.paths()]:
        try:
            p.name.encode("utf-8")
        except UnicodeEncodeError:
            return Rejected(
                _("{file}: the file name is not valid UTF-8; rename it").format(file=p.name), Kind.NAME
            )
    return None


def _folder_candidate(entry: os.DirEntry[str]) -> Candidate | IntakeResult | None:
    path = Path(entry.path)
    try:
        members = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as exc:
        return IntakeResult(
            entry.name + "/", "waiting", _("cannot read the folder: {why}").format(why=exc.strerror)
        )
    images: list[Path] = []
    side: Path | None = None
    problem: Rejected | None = None
    for m in members:
        kind = _entry_type(m)
        if kind is None:
            continue
        shown = f"{entry.name}/{m.name}"
        if m.name == FOLDER_SIDECAR:
            side = Path(m.path)
            if kind and problem is None:
                problem = _not_regular(shown, kind)
        elif _is_image(Path(m.name)):
            if not kind:
                images.append(Path(m.path))
            elif kind != "folder" and problem is None:
                problem = _not_regular(shown, kind)
    if not images and problem is None:
        return None  # a folder without images is not an artwork (yet)
    return Candidate(entry.name + "/", images, side, path, problem)


def find_candidates(outbox: Path) -> tuple[list[Candidate], list[tuple[IntakeResult, Path]]]:
    """Artworks in the outbox, plus entries that will not be taken (why, and which file)."""
    found: list[Candidate] = []
    skipped: list[tuple[IntakeResult, Path]] = []
    try:
        entries = sorted(os.scandir(outbox), key=lambda e: e.name)
    except FileNotFoundError:
        return [], []
    by_name = {e.name: e for e in entries}
    image_names: dict[str, list[str]] = {}  # stem → image-like names of any type, in order
    for e in entries:
        if _is_image(Path(e.name)):
            image_names.setdefault(Path(e.name).stem, []).append(e.name)
    taken_together: set[str] = set()

    def skip(entry: os.DirEntry[str], reason: str) -> None:
        skipped.append((IntakeResult(entry.name, "skipped", reason), Path(entry.path)))

    for entry in entries:
        if entry.name in taken_together:
            continue
        path = Path(entry.path)
        kind = _entry_type(entry)
        if kind is None:
            continue
        if kind == "folder":
            got = _folder_candidate(entry)
            if isinstance(got, Candidate):
                found.append(got)
            elif got is not None:
                skipped.append((got, path))
            continue
        if _is_image(path):
            if kind == "link":
                skip(entry, _("symbolic link: not followed; left in place"))
                continue
            if kind:
                skip(entry, _("{what}, not a file: not read; left in place").format(what=_what(kind)))
                continue
            side_name = path.stem + ".toml"
            side = by_name.get(side_name)
            c = Candidate(entry.name, [path], path.with_name(side_name) if side is not None else None)
            siblings = [n for n in image_names[path.stem] if n != entry.name]
            if side is not None and siblings:
                # one sidecar for two images: taking one would leave the other without it
                c.images = [Path(by_name[n].path) for n in image_names[path.stem]]
                taken_together.update(siblings)
                c.problem = Rejected(
                    _(
                        "{files} share the sidecar {sidecar}: give each image its own name, or put them "
                        "in a folder to post them together"
                    ).format(files=", ".join(image_names[path.stem]), sidecar=side_name),
                    Kind.SIDECAR,
                )
            elif side is not None and (side_kind := _entry_type(side)):
                c.problem = _not_regular(side_name, side_kind)
            found.append(c)
        elif entry.name.startswith("."):
            continue  # hidden files: partial downloads, .DS_Store
        elif path.suffix.lower() == ".toml" and path.stem in image_names:
            continue  # a sidecar, taken with its image
        elif entry.name.endswith(attention.REASON_SUFFIX) and (
            entry.name.removesuffix(attention.REASON_SUFFIX) in by_name
        ):
            continue  # poster's note about an artwork moved back with it: removed when taken
        elif kind == "link":
            skip(entry, _("symbolic link: not followed; left in place"))
        elif kind:
            skip(entry, _("{what}, not a file: not read; left in place").format(what=_what(kind)))
        elif path.suffix.lower() == ".toml":
            skip(entry, _("a sidecar without an image of the same name; left in place"))
        else:
            skip(entry, _("not an image; left in place"))
    for c in found:
        c.problem = c.problem or _name_problem(c)
    return found, skipped


class Reported:
    """What the daemon already reported, for its life. It scans every few seconds; a problem
    with an entry left in the outbox (unreadable, not a file, no target) is reported once for
    as long as the files stay the same (path, size, mtime), and again once they change — not
    on every scan. It also remembers when it first saw files whose modification time lies in
    the future, to tell when they have settled."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[object, ...]] = {}
        self.settling: dict[tuple[str, str, int, int], float] = {}

    def first_time(self, name: str, problem: str, paths: Iterable[Path]) -> bool:
        """True (and remembered) unless this very problem with these very files was reported."""
        key = (problem, *(_signature(p) for p in paths))
        if self._seen.get(name) == key:
            return False
        self._seen[name] = key
        return True

    def keep_only(self, names: set[str]) -> None:
        """Forget entries no longer in the outbox (taken, held, or removed by the user)."""
        for name in [n for n in self._seen if n not in names]:
            del self._seen[name]
        for key in [k for k in self.settling if k[0] not in names]:
            del self.settling[key]


def _signature(p: Path) -> tuple[str, int | None, int | None]:
    try:
        st = p.stat(follow_symlinks=False)
    except OSError:
        return str(p), None, None
    return str(p), st.st_size, st.st_mtime_ns


# A modification time this far ahead of our clock (another machine's clock, a camera's card)
# says nothing about whether the file is still being written: watch it instead.
_FUTURE_SLACK = 2.0


def _stable(
    c: Candidate, min_age: float, at: float, settling: dict[tuple[str, str, int, int], float]
) -> bool:
    """Every file's size and mtime have not changed for `min_age` seconds."""
    for p in c.paths():
        try:
            st = p.stat(follow_symlinks=False)
        except FileNotFoundError:
            return False
        if at - st.st_mtime >= min_age:
            continue
        if st.st_mtime > at + _FUTURE_SLACK:
            # first sight of this exact version, and unchanged since then for min_age
            first = settling.setdefault((c.name, str(p), st.st_size, st.st_mtime_ns), at)
            if at - first >= min_age:
                continue
        return False
    return True


def _read_regular(p: Path, shown: str, cap: int, *, is_sidecar: bool, dir_fd: int | None) -> bytes | None:
    """The bytes of regular file `p`; None if it changed while being read. Opened without
    following a link and without blocking (a named pipe would block `open` for ever), then
    checked on the open descriptor, so a file swapped for a link or pipe meanwhile is refused
    too. A file over `cap` is refused before reading (of a sidecar, one byte past the limit is
    read, which the parser then refuses)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(p.name if dir_fd is not None else p, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _not_regular(shown, "link") from None
        if exc.errno == errno.ENXIO:  # a socket
            raise _not_regular(shown, "socket") from None
        raise
    try:
        before = os.fstat(fd)
        kind = _file_type(before.st_mode)
        if kind:
            raise _not_regular(shown, kind)
        if before.st_size > cap and not is_sidecar:
            raise Rejected(
                _("{file}: {size} bytes, over the limit of {limit} (intake.max_file_bytes)").format(
                    file=shown, size=before.st_size, limit=cap
                ),
                Kind.IMAGE,
            )
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(min(before.st_size, cap) + 1)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    changed = (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns)
    if changed or (len(data) <= cap and len(data) != after.st_size):
        return None
    return data


def _read_stable(c: Candidate, limits: dict[Path, int]) -> dict[Path, bytes] | None:
    """Read every file; None if one changed while reading (still being written)."""
    dir_fd = None
    if c.folder is not None:
        try:
            dir_fd = os.open(c.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                return None  # replaced meanwhile: the next scan sees what it is now
            raise
    try:
        data: dict[Path, bytes] = {}
        for p in c.paths():
            shown = f"{c.name}{p.name}" if c.folder is not None else p.name
            got = _read_regular(p, shown, limits[p], is_sidecar=p == c.sidecar, dir_fd=dir_fd)
            if got is None:
                return None
            data[p] = got
        return data
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def archive_bytes(archive: Path, data: bytes, suffix: str) -> tuple[str, Path]:
    """Content-addressed, written once, never modified: archive/ab/abcdef….ext"""
    digest, dest, tmp = _stage(archive, data, suffix)
    if tmp is not None:
        _publish([(tmp, dest)])
    return digest, dest


def _stage(archive: Path, data: bytes, suffix: str) -> tuple[str, Path, Path | None]:
    """Write an original's archive copy under a temporary name, not yet synced: (sha256, its
    archive path, the temporary file, None if the copy is there already). `_publish` makes
    it durable and gives it its name, so an archive file that exists is always complete."""
    digest = hashlib.sha256(data).hexdigest()
    dest = archive / digest[:2] / f"{digest}{suffix.lower()}"
    if dest.exists():
        return digest, dest, None
    ensure_private_dir(dest.parent)
    # a name of its own: the same bytes may be staged by two threads at once, and a file that
    # was published must never be opened for writing again
    tmp = dest.with_name(f"{dest.name}.{secrets.token_hex(6)}.tmp")
    try:
        write_private(tmp, data)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk leaves no half-written original behind
        raise
    return digest, dest, tmp


def sweep_staged(archive: Path, *, older_than: float = STALE_STAGED_SECONDS) -> list[Path]:
    """Remove the staged copies (`NAME.<random>.tmp`) that killed scans left in the archive;
    returns what was removed. Only names `_stage` makes are touched, and only old ones, so a
    scan staging now (the run lock allows one per data folder) is never disturbed."""
    removed: list[Path] = []
    cutoff = time.time() - older_than
    for tmp in archive.glob("??/*.tmp"):
        try:
            if tmp.is_file() and not tmp.is_symlink() and tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed.append(tmp)
        except OSError as exc:  # tidying only: an unremovable leftover is reported, not fatal
            log.debug("cannot remove %s: %s", tmp, exc)
    return removed


def _sweep_once(archive: Path) -> None:
    if archive in _swept:
        return
    _swept.add(archive)
    removed = sweep_staged(archive)
    if removed:
        log.info(
            "%s",
            _("removed {count} unfinished archive copies left by an interrupted scan").format(
                count=len(removed)
            ),
        )


def _publish(staged: list[tuple[Path, Path]]) -> None:
    """Make the staged copies durable, rename each to its archive name, then make the renames
    durable: all of a batch with two flushes of the file system (`store.sync_files`) instead
    of two fsyncs per file."""
    # the same bytes staged twice: published once, the other copy removed
    todo: dict[Path, Path] = {}  # archive path → its staged file
    for tmp, dest in staged:
        if dest in todo:
            tmp.unlink(missing_ok=True)
        else:
            todo[dest] = tmp
    if not todo:
        return
    sync_files(list(todo.values()))
    for dest, tmp in todo.items():
        os.chmod(tmp, stat.S_IRUSR)
        os.replace(tmp, dest)
    sync_files(list(dict.fromkeys(dest.parent for dest in todo)))


def _remove(config: Config, c: Candidate) -> None:
    for p in c.paths():
        p.unlink(missing_ok=True)
    if c.folder is not None:
        try:
            c.folder.rmdir()
        except OSError:
            log.warning(
                "%s",
                _("{name}: left the folder in the outbox: it still holds other files").format(
                    name=safe(c.name)
                ),
            )
    attention.tidy(config, c.name)


def _targets_for(config: Config, side: sidecar.Sidecar | None, side_name: str) -> list[str]:
    enabled = list(config.enabled_targets())
    targets = enabled
    if side is not None and side.targets is not None:
        unknown = [t for t in side.targets if t not in config.targets]
        if unknown:
            raise Rejected(
                _("{file}: targets: unknown target {names} (known: {known})").format(
                    file=side_name, names=", ".join(map(repr, unknown)), known=", ".join(config.targets)
                ),
                Kind.SIDECAR,
            )
        targets = [t for t in side.targets if t in enabled]
    if not targets:
        raise NotNow(
            _("no enabled target to post to (enabled = false in {config}); taken once one is enabled").format(
                config=config.path.name
            )
        )
    return targets


def check(
    config: Config, c: Candidate, data: dict[Path, bytes]
) -> tuple[sidecar.Sidecar | None, list[str], list[str]]:
    """Everything that decides whether the artwork can be posted as it is, before anything
    is written: (sidecar, warnings, targets). Raises Rejected (hold it) or NotNow (leave it)."""
    side: sidecar.Sidecar | None = None
    warnings: list[str] = []
    side_name = c.name + FOLDER_SIDECAR if c.folder else (c.sidecar.name if c.sidecar else "")
    if c.sidecar is not None:
        try:
            side, warnings = sidecar.parse(
                data[c.sidecar], side_name, max_bytes=config.intake.max_sidecar_bytes
            )
        except InputError as exc:
            raise Rejected(str(exc), Kind.SIDECAR) from None
    # before decoding: the daemon looks at a waiting artwork again on every scan
    targets = _targets_for(config, side, side_name)
    for p in c.images:
        shown = f"{c.name}{p.name}" if c.folder is not None else p.name
        kind = UNPOSTED_FORMATS.get(p.suffix.lower())
        if kind:
            raise Rejected(
                _("{file}: {kind} files are not posted; export PNG or JPEG").format(file=shown, kind=kind),
                Kind.IMAGE,
            )
        try:
            # decoded once here, as rendering will: a damaged file is held now, with the
            # file kept, rather than archived and failing each of its jobs later
            imaging.load(data[p], shown, max_pixels=config.intake.max_image_pixels).close()
        except InputError as exc:
            raise Rejected(str(exc), Kind.IMAGE) from None
    return side, warnings, targets


def _earlier(conn: sqlite3.Connection, content_key: str) -> int | None:
    """The artwork these very files were taken in as before, if it still counts: None if
    there is none, or if every job of it failed or was cancelled before anything was sent
    (then the drop is taken afresh, and the old record keeps its history under a retired key)."""
    row = conn.execute("SELECT id FROM artworks WHERE content_key = ?", (content_key,)).fetchone()
    if row is None:
        return None
    artwork_id = int(row["id"])
    live = conn.execute(
        "SELECT 1 FROM jobs WHERE artwork_id = ? AND (state NOT IN ('failed', 'cancelled') OR EXISTS"
        " (SELECT 1 FROM events WHERE events.job_id = jobs.id AND events.state IN"
        " ('posting', 'posted', 'uncertain'))) LIMIT 1",
        (artwork_id,),
    ).fetchone()
    if live is not None:
        return artwork_id
    conn.execute(
        "UPDATE artworks SET content_key = content_key || ':retired:' || id WHERE id = ?", (artwork_id,)
    )
    return None


@dataclass
class _Prepared:
    """An artwork checked and archived, its rows not yet written (see `_record`)."""

    candidate: Candidate
    side: sidecar.Sidecar | None
    warnings: list[str]
    targets: list[str]
    archived: list[tuple[str, str, Path]]  # (name, sha256, archive path) per image
    staged: list[tuple[Path, Path]]  # (temporary file, archive path): copies not yet published
    content_key: str
    meta: dict[str, object]
    seeds: dict[str, int]


class _Key:
    """The hidden-ID key, read (or made, with the first artwork taken) once per scan."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._lock = threading.Lock()  # the preparing threads: the key is made once
        self._key: bytes | None = None

    def get(self) -> bytes:
        with self._lock:
            if self._key is None:
                self._key = markkey.load(self._data_dir, create=True)
            return self._key


def _prepare(config: Config, c: Candidate, data: dict[Path, bytes], key: _Key) -> _Prepared:
    """Check the artwork and stage its originals' archive copies (`_stage`): all that comes
    before its rows, outside the transaction. `_publish` completes the copies before the
    rows are written."""
    side, warnings, targets = check(config, c, data)
    archived: list[tuple[str, str, Path]] = []
    staged: list[tuple[Path, Path]] = []
    for p in c.images:
        digest, dest, tmp = _stage(config.archive, data[p], p.suffix)
        archived.append((p.name, digest, dest))
        if tmp is not None:
            staged.append((tmp, dest))
    side_raw = data[c.sidecar].decode("utf-8", "replace") if c.sidecar else None
    key_src = (
        "\n".join(d for _n, d, _p in archived)
        + "\n"
        + hashlib.sha256(data[c.sidecar] if c.sidecar else b"").hexdigest()
    )
    meta = {
        **(side.model_dump(mode="json") if side else {}),
        "sidecar_raw": side_raw,
        "warnings": warnings,
    }
    # the visible layout of every post of each image, fixed now (keyed like the hidden ID)
    seeds = {digest: layout_seed(key.get(), digest) for _, digest, _ in archived}
    content_key = hashlib.sha256(key_src.encode()).hexdigest()
    return _Prepared(c, side, warnings, targets, archived, staged, content_key, meta, seeds)


def _record(
    conn: sqlite3.Connection, config: Config, p: _Prepared, planner: schedule.Planner
) -> IntakeResult:
    """The artwork's rows and jobs, inside the caller's transaction; a known content key
    means a re-scan (or the same files twice in one batch)."""
    c = p.candidate
    created_at = now()
    earlier = _earlier(conn, p.content_key)
    if earlier is not None:
        return IntakeResult(c.name, "duplicate", _("already taken in (same files and sidecar)"), earlier)
    cur = conn.execute(
        "INSERT INTO artworks (content_key, name, meta, created_at) VALUES (?, ?, ?, ?)",
        (p.content_key, c.name, json.dumps(p.meta, ensure_ascii=False), iso(created_at)),
    )
    artwork_id = int(cur.lastrowid or 0)
    conn.executemany(
        "INSERT INTO originals (artwork_id, idx, name, sha256, archive_path, layout_seed)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (artwork_id, i, name, digest, str(path.relative_to(config.data_dir)), p.seeds[digest])
            for i, (name, digest, path) in enumerate(p.archived)
        ],
    )
    at = p.side.at if p.side else None
    for target in schedule.stagger_order(config, p.targets):
        when = planner.initial_time(target, at, created_at, artwork_id)
        cur = conn.execute(
            "INSERT INTO jobs (artwork_id, target, state, scheduled_at, reason, post_key,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                artwork_id,
                target,
                jobs.State.PENDING.value,
                iso(when),
                None,
                jobs.new_post_key(),
                iso(created_at),
                iso(created_at),
            ),
        )
        jobs._event(conn, int(cur.lastrowid or 0), jobs.State.PENDING, None)
    return IntakeResult(c.name, "queued", None, artwork_id, p.warnings)


def _record_batch(
    conn: sqlite3.Connection, config: Config, batch: list[_Prepared], planner: schedule.Planner
) -> list[IntakeResult | Exception]:
    """Write a batch of archived artworks in ONE transaction (one synchronous commit instead of
    one per artwork), each inside a savepoint so one that fails leaves the others. Raises if
    the commit fails: then nothing of the batch is recorded and every file is still in the
    outbox, with its archive copy, for the next scan."""
    out: list[IntakeResult | Exception] = []
    with transaction(conn):
        planner.refresh(if_changed=True)  # the jobs as they are now, in this transaction
        for p in batch:
            conn.execute("SAVEPOINT artwork")
            try:
                out.append(_record(conn, config, p, planner))
            except Exception as exc:  # a bug must not stop the others from being taken
                if storage_error(exc, config.data_dir) is not None:
                    raise  # the database's disk is full or read-only: the whole batch waits
                conn.execute("ROLLBACK TO artwork")
                planner.refresh()  # its jobs' times are no longer taken
                out.append(exc)
            conn.execute("RELEASE artwork")
    return out


def _hold(config: Config, c: Candidate, problem: Rejected) -> IntakeResult:
    """Move the artwork into needs-attention with its reason; if even that fails, it stays."""
    try:
        dest = attention.hold(config, c.members(), problem.reason, problem.kind, is_folder=bool(c.folder))
    except OSError as exc:
        return IntakeResult(
            c.name,
            "held",
            _("{reason}; left in the outbox (could not move it to {folder}: {why})").format(
                reason=problem.reason, folder=attention.FOLDER, why=exc.strerror
            ),
        )
    return IntakeResult(c.name, "held", problem.reason, moved_to=dest)


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

    With `reported` (the daemon's, for its life) each problem is logged as a warning the first
    time only, as the daemon's log is all the user sees; without it (`run --once`, which
    prints every result itself) problems are logged at info level, for the log file."""
    candidates, skipped = find_candidates(config.outbox)
    _sweep_once(config.archive)
    if reported is not None:
        reported.keep_only({c.name for c in candidates} | {r.name for r, _p in skipped})
    settling = reported.settling if reported is not None else {}
    level = logging.WARNING if reported is not None else logging.INFO

    def report(name: str, problem: str, paths: Iterable[Path], message: str) -> None:
        if reported is None or reported.first_time(name, problem, paths):
            log.log(level, "%s", safe(message))

    results: list[IntakeResult] = []
    for r, path in skipped:
        results.append(r)
        report(r.name, r.reason or "", [path], f"{r.name}: {r.reason}")
    min_age = config.intake.stable_seconds
    deadline = time.time() + min_age + 1
    # Archived artworks wait in `batch` for one transaction: a synchronous commit per artwork
    # was most of intake's time. Until that commit, each stays in the outbox (and is taken
    # again after a crash); its result is filled in after it. The threads of `pool` prepare
    # the artworks ahead of the one in hand (read, check, stage the archive copies), in any
    # order; they are recorded in the outbox's order, and removed from it once committed.
    batch: list[tuple[int, _Prepared]] = []
    planner = schedule.Planner(config, conn)
    key = _Key(config.data_dir)
    started, size = time.monotonic(), 0  # when the batch began, the bytes of its files
    ahead: deque[Future[IntakeResult | tuple[_Prepared, int]]] = deque()
    leaving: list[tuple[int, Candidate, Future[None]]] = []  # committed, being removed

    def prepare(c: Candidate) -> IntakeResult | tuple[_Prepared, int]:
        """In a thread: the artwork checked and staged with the bytes of its files, or why it waits."""
        limits = {p: config.intake.max_file_bytes for p in c.images}
        if c.sidecar is not None:
            limits[c.sidecar] = config.intake.max_sidecar_bytes
        with storage_errors(config.data_dir):
            got = _take(
                c, limits, wait=wait, min_age=min_age, deadline=deadline, settling=settling, stop=stop
            )
            if isinstance(got, IntakeResult):
                return got
            return _prepare(config, c, got, key), sum(len(b) for b in got.values())

    def flush() -> None:
        if not batch:
            return
        try:
            with storage_errors(config.data_dir):
                _publish([staged for _i, p in batch for staged in p.staged])
        except StorageError:
            raise  # the data folder's disk is full or read-only: stop, the files stay for the next run
        except OSError as exc:  # nothing of the batch is recorded: each waits for the next scan
            for i, p in batch:
                why = _("cannot read or archive: {why}").format(why=exc.strerror)
                results[i] = IntakeResult(p.candidate.name, "waiting", why)
                report(p.candidate.name, f"OSError: {exc}", p.candidate.paths(), f"{p.candidate.name}: {why}")
            batch.clear()
            return
        with storage_errors(config.data_dir):
            outs = _record_batch(conn, config, [p for _i, p in batch], planner)
        for (i, p), got in zip(batch, outs, strict=True):
            c = p.candidate
            if isinstance(got, Exception):
                results[i] = _crashed(c, got, reported)
                continue
            results[i] = got
            leaving.append((i, c, pool.submit(contextvars.copy_context().run, _remove, config, c)))
        batch.clear()

    def finish() -> None:
        """Wait for the committed artworks to leave the outbox."""
        for i, c, removal in leaving:
            try:
                removal.result()
            except OSError as exc:
                results[i] = IntakeResult(
                    c.name, "waiting", _("cannot read or archive: {why}").format(why=exc.strerror)
                )
                report(c.name, f"OSError: {exc}", c.paths(), f"{c.name}: {results[i].reason}")
                continue
            for w in results[i].warnings:
                log.warning("%s", safe(w))
        leaving.clear()

    pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="intake")
    stop = threading.Event()  # the scan ends early (Ctrl-C, a full disk): no more waiting
    todo = iter(candidates)
    try:
        for c in candidates:
            while len(ahead) < AHEAD and (nxt := next(todo, None)) is not None:
                # in this context: the reasons are in the user's language (poster.i18n)
                ahead.append(pool.submit(contextvars.copy_context().run, prepare, nxt))
            future = ahead.popleft()
            r: IntakeResult | None = None
            try:
                got = future.result()
                if isinstance(got, IntakeResult):
                    r = got
                else:
                    if not batch:
                        started, size = time.monotonic(), 0
                    batch.append((len(results), got[0]))
                    size += got[1]
            except StorageError:
                raise  # the data folder's disk is full or read-only: stop, the file stays for the next run
            except Rejected as exc:
                r = _hold(config, c, exc)
                where = r.moved_to.parent if r.moved_to else config.outbox
                report(
                    c.name,
                    r.reason or "",
                    c.paths(),
                    _("{name}: held in {folder}: {reason}").format(
                        name=c.name, folder=where, reason=r.reason
                    ),
                )
            except NotNow as exc:
                r = IntakeResult(c.name, "waiting", str(exc))
                report(c.name, str(exc), c.paths(), f"{c.name}: {exc}")
            except OSError as exc:
                r = IntakeResult(
                    c.name, "waiting", _("cannot read or archive: {why}").format(why=exc.strerror)
                )
                report(c.name, f"OSError: {exc}", c.paths(), f"{c.name}: {r.reason}")
            except Exception as exc:  # a bug must not stop the other files from being taken
                r = _crashed(c, exc, reported)
            results.append(r if r is not None else IntakeResult(c.name, "waiting"))  # filled in by flush
            if batch and (
                len(batch) >= BATCH_SIZE or size >= BATCH_BYTES or time.monotonic() - started >= BATCH_SECONDS
            ):
                flush()
        flush()
        finish()
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        # stopped early (a full disk): copies staged but never published are not left behind
        unpublished = [p for _i, p in batch]
        for f in ahead:
            if f.done() and not f.cancelled() and f.exception() is None and isinstance(f.result(), tuple):
                unpublished.append(f.result()[0])  # type: ignore[index]
        for p in unpublished:
            for tmp, _dest in p.staged:
                tmp.unlink(missing_ok=True)
    return results


def _crashed(c: Candidate, exc: Exception, reported: Reported | None) -> IntakeResult:
    r = IntakeResult(
        c.name, "waiting", _("internal error: {kind}: {error}").format(kind=type(exc).__name__, error=exc)
    )
    if reported is None or reported.first_time(c.name, f"{type(exc).__name__}: {exc}", c.paths()):
        log.debug("intake of %s crashed", safe(c.name), exc_info=exc)
        log.error(
            "%s", safe(_("{name}: internal error during intake: {error}").format(name=c.name, error=exc))
        )
    return r


def _take(
    c: Candidate,
    limits: dict[Path, int],
    *,
    wait: bool,
    min_age: float,
    deadline: float,
    settling: dict[tuple[str, str, int, int], float],
    stop: threading.Event | None = None,
) -> IntakeResult | dict[Path, bytes]:
    """The artwork's bytes once its files have settled, or why it waits (also once `stop`
    is set)."""
    while True:
        t = time.time()
        if _stable(c, min_age, t, settling):
            if c.problem is not None:
                raise c.problem
            data = _read_stable(c, limits)
            if data is not None:
                return data
        if not wait or t > deadline or (stop is not None and stop.is_set()):
            return IntakeResult(c.name, "waiting", _("still changing; taken once it settles"))
        time.sleep(0.2)
