"""The needs-attention folder: artworks poster would not take in, kept whole with the reason.

Nothing the user wrote is deleted or lost at intake. An artwork that cannot be posted as it is
(a sidecar that does not parse or names an unknown target, a file that is not an image poster
posts, an image over a limit, a link or a pipe where a file should be) is moved whole, image(s)
and sidecar or the folder, from the outbox into `<data_dir>/needs-attention/`, with
`NAME.reason.txt` beside it saying what is wrong and what to do. The user fixes it and moves
it back into the outbox, where it is taken like any new drop: a held artwork leaves no trace
in the database, so it can never block a later intake of the same bytes.

The reason file is deliberately bilingual (English and Japanese, whatever the interface
language): it is read in a file manager, without poster, maybe by someone else. Its one-line
reason is the message poster printed, in the interface language.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from poster import store
from poster.i18n import _
from poster.termsafe import safe

if TYPE_CHECKING:  # `poster status` lists held artworks without importing pydantic
    from poster.config import Config
    from poster.configsnap import Essentials

log = logging.getLogger(__name__)

FOLDER = "needs-attention"
REASON_SUFFIX = ".reason.txt"
_REASON_HEADING = "Reason / 理由:"


class Kind(enum.StrEnum):
    """What kind of fix the artwork needs: chooses the advice in the reason file."""

    SIDECAR = "sidecar"
    IMAGE = "image"
    LINK = "link"
    NAME = "name"


# (English, Japanese): what to do, per kind.
_ADVICE: dict[Kind, tuple[str, str]] = {
    Kind.SIDECAR: (
        "Fix the sidecar (.toml) as the reason says, then move the files back into the outbox.",
        "理由に書かれているとおりにサイドカー（.toml）を直してから、ファイルを outbox に戻してください。",
    ),
    Kind.IMAGE: (
        "Export the image again as a still PNG or JPEG (at least 256 px on the short side), or raise "
        "the limit the reason names in config.toml, then move it back into the outbox.",
        "静止画の PNG か JPEG（短い辺が 256 px 以上）で書き出し直すか、理由にある config.toml の"
        "上限を上げてから、outbox に戻してください。",
    ),
    Kind.LINK: (
        "poster reads only regular files and never follows links: put the file itself where the link "
        "(or pipe) is, then move the files back into the outbox.",
        "poster は通常のファイルだけを読み、リンクはたどりません。リンク（またはパイプ）の代わりに"
        "ファイルそのものを置いてから、outbox に戻してください。",
    ),
    Kind.NAME: (
        "Rename the file (its name is not valid UTF-8), then move it back into the outbox.",
        "ファイル名が正しい UTF-8 ではありません。名前を変えてから outbox に戻してください。",
    ),
}


@dataclass(frozen=True)
class Held:
    """One artwork waiting in needs-attention."""

    name: str  # as it is called there now: "rabbit.png", "set/"
    reason: str
    path: Path  # the image or the folder
    reason_file: Path


def folder(config: Config | Essentials) -> Path:
    return config.data_dir / FOLDER


def _renamed(p: Path, n: int, is_folder: bool) -> str:
    if n == 1:
        return p.name
    if is_folder:
        return f"{p.name} ({n})"
    return f"{p.stem} ({n}){p.suffix}"


def _move(src: Path, dest: Path) -> None:
    try:
        os.rename(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # the outbox is on another file system
            raise
        shutil.move(src, dest)  # copies, then removes the source (never for pipes: refuses)


def reason_text(names: list[str], reason: str, kind: Kind, outbox: Path, renamed: dict[str, str]) -> str:
    en, ja = _ADVICE[kind]
    shown = ", ".join(safe(n) for n in names)
    lines = [
        f"poster did not take this in, and nothing was posted: {shown}",
        f"poster はこれを取り込んでいません（何も投稿していません）: {shown}",
        "",
        _REASON_HEADING,
        f"    {safe(reason)}",
        "",
        f"What to do: {en}",
        f"対処: {ja}",
        "",
        f"outbox: {safe(outbox)}",
    ]
    for old, new in renamed.items():
        lines += [
            f"Renamed {safe(old)} to {safe(new)}: a file of that name was already here.",
            f"同じ名前のファイルがすでにあったため、{safe(old)} を {safe(new)} に変えました。",
        ]
    lines.append(f"{datetime.now().astimezone().isoformat(timespec='seconds')}")
    return "\n".join(lines) + "\n"


def hold(config: Config, members: list[Path], reason: str, kind: Kind, *, is_folder: bool = False) -> Path:
    """Move `members` (the files of one artwork from the outbox, or its folder) into
    needs-attention with a reason file beside them. Returns where the first member is now.
    Raises OSError if the first member could not be moved (the artwork then stays in the
    outbox as it was)."""
    dest_dir = folder(config)
    store.ensure_private_dir(dest_dir)
    n = 1
    while any(os.path.lexists(dest_dir / _renamed(m, n, is_folder)) for m in members):
        n += 1
    names = {m: _renamed(m, n, is_folder) for m in members}
    first = dest_dir / names[members[0]]
    renamed = {m.name: new for m, new in names.items() if new != m.name}
    # the reason first, then the image(s), the sidecar last: a crash in between leaves at
    # worst a sidecar in the outbox, never an image there without the sidecar it was meant for
    note = dest_dir / f"{names[members[0]]}{REASON_SUFFIX}"
    tmp = note.with_name(f".{note.name}.tmp")
    store.write_private(
        tmp, reason_text([m.name for m in members], reason, kind, config.outbox, renamed).encode("utf-8")
    )
    os.replace(tmp, note)
    ordered = sorted(members, key=lambda m: m.suffix.lower() == ".toml")
    for i, m in enumerate(ordered):
        try:
            _move(m, dest_dir / names[m])
        except FileNotFoundError:
            continue  # gone meanwhile (the user took it back): nothing to keep
        except OSError:
            if i == 0:
                note.unlink(missing_ok=True)
                raise
            log.warning(
                "%s",
                _("{name}: could not move it to {folder}; left in the outbox").format(
                    name=safe(m.name), folder=dest_dir
                ),
            )
    return first


def read_reason(note: Path) -> str:
    """The one-line reason from a reason file ('' if it has none)."""
    try:
        lines = note.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    for i, line in enumerate(lines[:-1]):
        if line.strip() == _REASON_HEADING:
            return lines[i + 1].strip()
    return ""


def items(config: Config | Essentials) -> list[Held]:
    """Every artwork in needs-attention whose reason file is beside it, by name."""
    try:
        entries = sorted(os.scandir(folder(config)), key=lambda e: e.name)
    except OSError:
        return []
    names = {e.name: e for e in entries}
    out = []
    for e in entries:
        if not e.name.endswith(REASON_SUFFIX) or e.name.startswith("."):
            continue
        subject = names.get(e.name.removesuffix(REASON_SUFFIX))
        if subject is None:
            continue  # moved back into the outbox: the reason file is stale
        is_dir = subject.is_dir(follow_symlinks=False)
        out.append(
            Held(
                subject.name + ("/" if is_dir else ""),
                read_reason(Path(e.path)),
                Path(subject.path),
                Path(e.path),
            )
        )
    return out


def tidy(config: Config, name: str) -> None:
    """After the artwork `name` was taken in from the outbox: remove reason files poster wrote
    about it that are now stale (one the user moved back along with it, and the one left in
    needs-attention once the artwork itself was moved back)."""
    base = name.rstrip("/")
    (config.outbox / f"{base}{REASON_SUFFIX}").unlink(missing_ok=True)
    if not os.path.lexists(folder(config) / base):
        (folder(config) / f"{base}{REASON_SUFFIX}").unlink(missing_ok=True)
