"""Xfolio: hand-off mode.

Xfolio has no API, and no public description of its upload requests exists (no peer project
automates it; checked 2026-11). Rather than guess at a private web API — and risk posting
wrong settings or breaking silently — this adapter *hands the post off* to the user:

1. it writes the protected image(s) exactly as rendered (bytes untouched: the hidden ID is
   in them), the caption, tags and settings into `<data_dir>/handoff/<target>/<job key>/`,
   with a README saying what to do;
2. it opens the upload page in the browser (`open_browser = true`, the default, when a
   browser is available);
3. it returns an *uncertain* result: the job waits until the user runs
   `poster confirm JOB --posted URL` (or `--not-posted`), which records the real URL in the
   ledger.

Settings: `mode` ("handoff", the only mode; "web" is refused with an explanation),
`upload_url` (the page to open; default `<api_base>/`, api_base default https://xfolio.jp),
`open_browser` (bool, default true). Credential: `SESSION` is reserved for a future web mode
and not needed for hand-off.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import webbrowser
from collections.abc import Callable
from typing import Any, ClassVar

from poster import store
from poster.errors import ConfigError
from poster.i18n import _
from poster.platforms.base import (
    Adapter,
    Capabilities,
    CheckResult,
    Existence,
    Post,
    PostResult,
)
from poster.platforms.text import compose

log = logging.getLogger("poster.platforms.xfolio")


class XfolioAdapter(Adapter):
    name = "xfolio"
    credential_fields = ("SESSION",)
    login_fields: ClassVar[tuple[str, ...]] = ()  # hand-off needs no account
    settings_keys: ClassVar[frozenset[str] | None] = frozenset(
        {"api_base", "mode", "upload_url", "open_browser", "timeout", "min_interval"}
    )
    capabilities = Capabilities(
        max_bytes=10 * 1024 * 1024,  # limits unconfirmed: conservative
        max_edge=4096,
        formats=("PNG", "JPEG"),
        keeps_png=True,
        images_per_post=1,
        text_length=None,
        alt_text=False,
        min_interval=300.0,
        reencodes=((1200, 85),),  # unconfirmed; assume a web-size JPEG preview
    )
    default_api_base = "https://xfolio.jp"
    # how the upload page is opened; tests replace it
    opener: ClassVar[Callable[[str], Any]] = staticmethod(webbrowser.open)

    def __init__(self, target, settings, credentials, *, data_dir):
        super().__init__(target, settings, credentials, data_dir=data_dir)
        mode = self.settings.get("mode", "handoff")
        if mode == "web":
            raise ConfigError(
                _(
                    "targets.{target}.mode: the Xfolio web route is not available (Xfolio has no API "
                    'and its upload requests are not publicly documented); use mode = "handoff": '
                    "poster prepares the files and opens the upload page"
                ).format(target=target)
            )
        if mode != "handoff":
            raise ConfigError(
                _('targets.{target}.mode: must be "handoff", not {mode!r}').format(target=target, mode=mode)
            )
        base = self.settings.get("api_base") or self.default_api_base
        if not isinstance(base, str) or not base.startswith(("http://", "https://")):
            raise ConfigError(_("targets.{target}.api_base: must be an http(s) URL").format(target=target))
        self.api_base = base.rstrip("/")
        url = self.settings.get("upload_url") or f"{self.api_base}/"
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(_("targets.{target}.upload_url: must be an http(s) URL").format(target=target))
        self.upload_url = url
        ob = self.settings.get("open_browser", True)
        if not isinstance(ob, bool):
            raise ConfigError(_("targets.{target}.open_browser: must be true or false").format(target=target))
        self.open_browser = ob

    def folder(self, post: Post):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in post.key)
        tsafe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.target)
        return self.data_dir / "handoff" / tsafe / safe

    def post(self, post: Post) -> PostResult:
        if not post.media:
            return PostResult.fatal(_("nothing to post: the job has no rendered image"))
        folder = self.folder(post)
        tmp = folder.with_name(folder.name + ".tmp")
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            store.ensure_private_dir(tmp)
            names = []
            for i, item in enumerate(post.media, 1):
                name = f"{i:02d}-{item.filename}"
                store.write_private(tmp / name, item.data)
                names.append(name)
            caption, _unused = compose(post.caption, post.tags, limit=None)
            store.write_private(tmp / "caption.txt", (caption + "\n").encode())
            info = {
                "target": self.target,
                "key": post.key,
                "title": post.title,
                "caption": post.caption,
                "tags": list(post.tags),
                "rating": post.rating,
                "ai_generated": post.options.get("ai_generated"),
                "files": names,
                "upload_url": self.upload_url,
            }
            store.write_private(tmp / "post.json", json.dumps(info, ensure_ascii=False, indent=2).encode())
            readme = (
                "Xfolio hand-off (Xfolio has no API).\n\n"
                f"1. Open {self.upload_url} and log in.\n"
                f"2. Upload the image file(s) here, unchanged: {', '.join(names)}\n"
                f"   title: {post.title}\n   rating: {post.rating}\n"
                "   caption and tags: caption.txt\n"
                '   Do not tick "AI-generated" unless it is (Xfolio does not allow it).\n'
                "3. Tell poster the URL of the new work:\n"
                "   poster confirm JOB --posted https://xfolio.jp/...\n"
                "   (JOB is the number `poster status` shows for this post; if you decide not\n"
                "   to post it: poster confirm JOB --not-posted)\n"
            )
            store.write_private(tmp / "README.txt", readme.encode())
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        except OSError as exc:
            return PostResult.retryable(
                _("cannot prepare the hand-off folder {folder}: {error}").format(folder=folder, error=exc)
            )
        opened = False
        if self.open_browser:
            try:
                opened = bool(type(self).opener(self.upload_url))
            except Exception as exc:  # no browser on a headless server: say so, go on
                log.info("cannot open a browser: %s", exc)
        where = _("opened in the browser") if opened else _("open {url}").format(url=self.upload_url)
        return PostResult.uncertain(
            _(
                "handed off: the protected file(s) and caption are in {folder}; {where}, upload "
                "them, then run `poster confirm JOB --posted URL`"
            ).format(folder=folder, where=where)
        )

    def find_existing(self, post: Post) -> tuple[Existence, PostResult | None]:
        return Existence.UNKNOWN, None  # only the user knows: `poster confirm`

    def check(self) -> CheckResult:
        return CheckResult(
            True,
            _(
                "hand-off mode: nothing to log in to; posts are prepared under {folder} and "
                "uploaded by you at {upload_url}"
            ).format(folder=self.data_dir / "handoff" / self.target, upload_url=self.upload_url),
        )
