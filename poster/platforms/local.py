"""The `local` adapter: publishes into `<data_dir>/posted/<target>/` exactly as a real
adapter posts (the protected image bytes plus a `post.json` with caption, tags, alt and
hidden IDs). It needs no account, so the whole product runs end to end on a fresh machine.

A post appears atomically (written to a temporary folder, then renamed), and its folder is
named after the job's stable key, so after a crash `find_existing` can prove whether it was
published: an interrupted local post is never left `uncertain`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

from poster import store
from poster.i18n import _
from poster.platforms.base import Adapter, Capabilities, Existence, Post, PostResult

_SAFE = re.compile(r"[^\w.-]+", re.UNICODE)


class LocalAdapter(Adapter):
    name = "local"
    settings_keys = frozenset()
    capabilities = Capabilities(
        max_bytes=50_000_000,
        max_edge=16384,
        formats=("JPEG", "PNG", "WEBP"),
        keeps_png=True,
        images_per_post=20,
        text_length=None,
        alt_text=True,
        min_interval=0.0,
    )

    @property
    def root(self) -> Path:
        return self.data_dir / "posted" / self.target

    def _folder(self, post: Post) -> Path:
        return self.root / post.key

    def _result(self, folder: Path) -> PostResult:
        meta = json.loads((folder / "post.json").read_text(encoding="utf-8"))
        urls = tuple((folder / m["file"]).resolve().as_uri() for m in meta["media"])
        return PostResult.posted(remote_id=meta["key"], url=urls[0], media_urls=urls)

    def post(self, post: Post) -> PostResult:
        folder = self._folder(post)
        if folder.exists():  # idempotent: the same job never publishes twice
            return self._result(folder)
        tmp = self.root / f".{post.key}.tmp"
        try:
            if tmp.exists():
                shutil.rmtree(tmp)
            store.ensure_private_dir(tmp)
            media = []
            for i, item in enumerate(post.media):
                stem = _SAFE.sub("_", Path(item.filename).stem).strip("._") or "image"
                fname = f"{i + 1:02d}-{stem}{Path(item.filename).suffix}"
                store.write_private(tmp / fname, item.data)
                media.append(
                    {
                        "file": fname,
                        "id": item.mark_id,
                        "alt": item.alt,
                        "width": item.width,
                        "height": item.height,
                        "mime": item.mime,
                    }
                )
            meta = {
                "key": post.key,
                "title": post.title,
                "caption": post.caption,
                "tags": list(post.tags),
                "rating": post.rating,
                "media": media,
                "options": dict(post.options),
                "posted_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
            }
            store.write_private(tmp / "post.json", json.dumps(meta, ensure_ascii=False, indent=2).encode())
            os.replace(tmp, folder)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if store.storage_error(exc, self.data_dir) is not None:
                raise  # the data folder's disk is full or read-only: poster stops and says so
            return PostResult.fatal(
                _("cannot publish into {root}: {reason}").format(root=self.root, reason=exc.strerror)
            )
        return self._result(folder)

    def find_existing(self, post: Post) -> tuple[Existence, PostResult | None]:
        folder = self._folder(post)
        if (folder / "post.json").exists():
            return Existence.EXISTS, self._result(folder)
        return Existence.ABSENT, None
