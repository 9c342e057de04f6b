"""Logging: stderr for the user, a log file in the data folder, secrets masked in both.

Every credential value poster knows of (POSTER_* environment variables, and anything an
adapter registers with `register_secret`) is replaced by *** in every record, whatever the
verbosity, before any handler sees it. Every record is one line: control characters in it
(a file name with a newline or an ANSI escape, a server's answer) are shown escaped
(poster.termsafe), so a log line cannot forge another or drive the terminal; a traceback
(`exc_info=True`) follows on lines of its own.
"""

from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path

from poster.secrets import mask
from poster.termsafe import safe, safe_block

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


class SafeFormatter(logging.Formatter):
    """Formats each record as one line with outside text escaped; a traceback keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = safe(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        exc_text = record.exc_text
        if exc_text:
            record.exc_text = safe_block(exc_text)
        try:
            return super().format(record)
        finally:
            record.exc_text = exc_text


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
    err.setFormatter(SafeFormatter("poster: %(levelname)s: %(message)s"))
    err.addFilter(mask)
    root.addHandler(err)
    if data_dir is not None:
        try:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = data_dir / "poster.log"
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            fh = RotatingFileHandler(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
        except OSError:
            return
        fh.setLevel(logging.DEBUG if debug else logging.INFO)
        fh.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        fh.addFilter(mask)
        root.addHandler(fh)
