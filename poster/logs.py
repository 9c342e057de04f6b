"""Logging: stderr for the user, a log file in the data folder, secrets masked in both.

Every credential value poster knows of (POSTER_* environment variables, and anything an
adapter registers with `register_secret`) is replaced by *** in every record, whatever the
verbosity, before any handler sees it.
"""

from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path

from poster.secrets import mask

_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    if value and len(value) >= 4:
        _SECRETS.add(value)


def known_secrets() -> set[str]:
    env = {v for k, v in os.environ.items() if k.startswith("POSTER_") and len(v) >= 4}
    return _SECRETS | env


def mask_text(text: str) -> str:
    """`text` with every credential poster knows of replaced by ***."""
    return mask(text, known_secrets())


class MaskSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class _LogFile(RotatingFileHandler):
    """The log file in the data folder. On a full or read-only disk a record that cannot be
    written is dropped without a word: logging's default prints a traceback on stderr for
    each one, burying the one-line reason poster gives (the stderr handler still shows every
    warning and error)."""

    def handleError(self, record: logging.LogRecord) -> None:
        return


def setup_logging(verbose: int, debug: bool, data_dir: Path | None) -> None:
    root = logging.getLogger("poster")
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    root.setLevel(logging.DEBUG)
    root.propagate = False
    mask = MaskSecrets()
    err = logging.StreamHandler()
    err.setLevel(logging.DEBUG if debug or verbose >= 2 else logging.INFO if verbose else logging.WARNING)
    err.setFormatter(logging.Formatter("poster: %(levelname)s: %(message)s"))
    err.addFilter(mask)
    root.addHandler(err)
    if data_dir is not None:
        try:
            from poster.store import ensure_private_dir

            ensure_private_dir(data_dir)
            path = data_dir / "poster.log"
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            fh = _LogFile(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
        except OSError:
            return
        fh.setLevel(logging.DEBUG if debug else logging.INFO)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        fh.addFilter(mask)
        root.addHandler(fh)
