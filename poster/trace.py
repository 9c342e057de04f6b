"""Leak lookup: which post did this image come from?

First the hidden ID (the codec searches scale and offset itself; the mirrored image is tried
too, since flipped tracing is common). A hit names the exact ledger row.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from poster import imaging, ledger, mark
from poster.errors import InputError

MAX_TRACE_PIXELS = 400_000_000


@dataclass(frozen=True)
class Match:
    id: str
    target: str
    url: str | None
    posted_at: str
    method: str  # hidden-id | perceptual
    score: float
    row: dict[str, Any]
    mirrored: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "url": self.url,
            "posted_at": self.posted_at,
            "method": self.method,
            "score": round(self.score, 4),
            "seq": self.row["seq"],
            "mirrored": self.mirrored,
        }


def load_suspect(path: Path) -> Image.Image:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    im = imaging.open_image(data, str(path))
    if im.size[0] * im.size[1] > MAX_TRACE_PIXELS:
        raise InputError(f"{path}: image too large to trace")
    try:
        im.load()
        im = ImageOps.exif_transpose(im) or im
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{path}: damaged image ({exc})") from None
    return im.convert("RGBA").convert("RGB") if im.mode in ("P", "LA", "PA") else im.convert("RGB")


def by_hidden_id(conn: sqlite3.Connection, image: Image.Image, key: bytes) -> list[Match]:
    for mirrored, candidate in ((False, image), (True, ImageOps.mirror(image))):
        try:
            found = mark.extract(candidate, key=key)
        except mark.MarkError:
            return []
        if found is None:
            continue
        row = ledger.find(conn, found)
        if row is not None:
            return [
                Match(row["id"], row["target"], row["url"], row["posted_at"], "hidden-id", 1.0, row, mirrored)
            ]
    return []


def trace(conn: sqlite3.Connection, path: Path, key: bytes) -> list[Match]:
    return by_hidden_id(conn, load_suspect(path), key)
