"""What `poster status` needs from the config, remembered from the config's last full check.

Validating config.toml takes pydantic, and importing pydantic (with poster's models built on
it) is ~0.25 s of a ~0.4 s `poster status`: most of the command's time, for a read-only
look at the queue. So every full load (`poster.config.load`, which every command that
renders, posts or changes anything goes through) leaves a small snapshot of the few settings
`status` reads — the data folder, the time zone, the language, whether time-stamping is on —
in the user's cache folder, keyed by the config file's absolute path, its exact bytes and
poster's version. `status` uses the snapshot only when all three still match, so a config
edited since (even to something invalid) is loaded and checked in full, as before, and
reports its error the same way. A missing, unreadable or damaged snapshot is simply not used.

Nothing secret is in it: the config file has no secrets (they live in the keyring), and the
snapshot keeps four settings of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from poster import __version__

if TYPE_CHECKING:
    from poster.config import Config

log = logging.getLogger(__name__)

FORMAT = 1  # bumped when the snapshot's fields change


class DataFolder:
    """Where things are in the data folder: one layout for the full Config and Essentials."""

    if TYPE_CHECKING:
        data_dir: Path

    @property
    def db_path(self) -> Path:
        return self.data_dir / "poster.db"

    @property
    def outbox(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def archive(self) -> Path:
        return self.data_dir / "archive"


@dataclass(frozen=True)
class Essentials(DataFolder):
    """The settings `poster status` reads (the same values the full Config has)."""

    path: Path  # the config file, absolute
    data_dir: Path
    timezone: str | None
    language: str
    stamping: bool  # any time-stamping authority configured

    @classmethod
    def of(cls, config: Config) -> Essentials:
        return cls(
            path=config.path,
            data_dir=config.data_dir,
            timezone=config.timezone,
            language=config.language,
            stamping=bool(config.proof.tsa_urls),
        )


def folder() -> Path:
    from platformdirs import user_cache_path

    return user_cache_path("poster") / "config"


def _file(path: Path) -> Path:
    return folder() / (hashlib.sha256(os.fsencode(path)).hexdigest()[:32] + ".json")


def _key(path: Path, content: bytes) -> str:
    # HOME is in the key because data_dir = "~/..." is expanded when the file is loaded
    h = hashlib.sha256()
    for part in (str(FORMAT), __version__, os.fsdecode(path), os.environ.get("HOME", "")):
        h.update(part.encode("utf-8", "surrogateescape") + b"\0")
    h.update(content)
    return h.hexdigest()


def remember(config: Config, content: bytes) -> None:
    """Keep `config`'s essentials for the file whose bytes were `content` (just validated).
    Best effort: a cache folder that cannot be written only costs the next `status` time."""
    e = Essentials.of(config)
    record = {
        "key": _key(e.path, content),
        "data_dir": os.fsdecode(e.data_dir),
        "timezone": e.timezone,
        "language": e.language,
        "stamping": e.stamping,
    }
    text = json.dumps(record, ensure_ascii=False, sort_keys=True)
    target = _file(e.path)
    try:
        if target.read_text(encoding="utf-8") == text:
            return  # the common case: nothing changed since the last command
    except (OSError, UnicodeDecodeError):
        pass
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".snap-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, target)  # readers see the old snapshot or the new one, never half
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.debug("config snapshot not written to %s: %s", target, exc)


def recall(path: Path) -> Essentials | None:
    """The essentials of config file `path` if the snapshot was made from exactly its current
    bytes by this poster; else None (then the caller loads and checks the file in full)."""
    path = path.resolve()
    try:
        content = path.read_bytes()
        record = json.loads(_file(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != _key(path, content):
        return None
    data_dir, zone = record.get("data_dir"), record.get("timezone")
    language, stamping = record.get("language"), record.get("stamping")
    if not (
        isinstance(data_dir, str)
        and (zone is None or isinstance(zone, str))
        and isinstance(language, str)
        and isinstance(stamping, bool)
    ):
        return None
    return Essentials(path=path, data_dir=Path(data_dir), timezone=zone, language=language, stamping=stamping)
