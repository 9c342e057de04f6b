"""X (Twitter), API v2 with OAuth 1.0a user context (tweepy's OAuth1 handler signs every
request of the shared HTTP seam).

Images: `POST /2/media/upload` (one request) or, above `chunk_threshold` bytes, the chunked
`initialize → append… → finalize (→ STATUS)` flow; alt text through `POST /2/media/metadata`;
the post through `POST /2/tweets` with `media.media_ids`. Up to 4 images; the text is cut to
X's weighted 280 with a warning. A link (e.g. to the pixiv post) is added only when
`link_back = true` — since 2026-02 a post with a URL costs about 13× more. Uploads go to
`api_base` too (never the old `upload.twitter.com`). X cannot look a post up by the job's
key, so a `POST /2/tweets` whose answer leaves open whether it was made (no answer, 5xx, a
redirect, no post id) leaves the job `uncertain` for `poster confirm`.

Settings: `api_base` (default https://api.x.com), `username` (for nicer post URLs; otherwise
https://x.com/i/web/status/ID), `link_back` (bool, default false), `chunk_threshold` (bytes,
default 1 MiB), `chunk_size` (bytes, default 1 MiB), `text_length` (280; premium accounts
may raise it). Credentials: CONSUMER_KEY, CONSUMER_SECRET, ACCESS_TOKEN,
ACCESS_TOKEN_SECRET.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any, ClassVar

from poster.errors import ConfigError
from poster.i18n import _
from poster.platforms.base import Capabilities, CheckResult, MediaItem, Post, PostResult
from poster.platforms.http import (
    AuthFailure,
    Fatal,
    HttpAdapter,
    RateLimited,
    Retryable,
    _short_body,
    json_body,
    json_object,
    no_post_id,
    parse_retry_at,
)
from poster.platforms.text import compose, x_weighted_length

log = logging.getLogger("poster.platforms.x")


class XAdapter(HttpAdapter):
    name = "x"
    credential_fields = ("CONSUMER_KEY", "CONSUMER_SECRET", "ACCESS_TOKEN", "ACCESS_TOKEN_SECRET")
    credential_help: ClassVar[dict[str, str]] = {
        "CONSUMER_KEY": "developer.x.com → your app → Keys and tokens → API Key and Secret",
        "ACCESS_TOKEN": "same page → Access Token and Secret (app permission: Read and write)",
    }
    settings_keys = HttpAdapter.common_settings | frozenset(
        {"username", "link_back", "chunk_threshold", "chunk_size", "text_length"}
    )
    capabilities = Capabilities(
        max_bytes=5 * 1000 * 1000,
        max_edge=4096,
        formats=("JPEG", "PNG"),
        keeps_png=False,  # truecolour PNG > 900×900 becomes JPEG 85
        images_per_post=4,
        text_length=280,  # weighted
        alt_text=True,
        alt_text_length=1000,
        min_interval=60.0,
        reencodes=((4096, 85), (2048, 85), (1200, 85)),
    )
    default_api_base = "https://api.x.com"
    status_poll_limit: ClassVar[int] = 20

    def __init__(self, target, settings, credentials, *, data_dir):
        super().__init__(target, settings, credentials, data_dir=data_dir)
        for key, default in (("chunk_threshold", 1 << 20), ("chunk_size", 1 << 20), ("text_length", 280)):
            value = self.settings.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(
                    _("targets.{target}.{key}: must be a positive integer").format(target=target, key=key)
                )
            setattr(self, key, value)
        username = self.settings.get("username")
        if username is not None and (not isinstance(username, str) or not username.strip()):
            raise ConfigError(_("targets.{target}.username: must be the account name").format(target=target))
        self.username = username.lstrip("@") if username else None
        self.link_back = bool(self.settings.get("link_back", False))

    def effective_capabilities(self) -> Capabilities:
        return replace(
            self.capabilities,
            text_length=self.text_length,
            min_interval=self._min_interval(self.capabilities.min_interval),
        )

    def make_client(self, **overrides: Any):
        import tweepy

        c = self._credentials
        auth = tweepy.OAuth1UserHandler(
            c.get("CONSUMER_KEY", ""),
            c.get("CONSUMER_SECRET", ""),
            c.get("ACCESS_TOKEN", ""),
            c.get("ACCESS_TOKEN_SECRET", ""),
        ).apply_auth()
        return super().make_client(auth=auth, **overrides)

    # -- errors
    def _problem(self, response) -> tuple[str, str]:
        try:
            body = response.json()
        except Exception:
            return "", _short_body(response)
        if not isinstance(body, dict):
            return "", _short_body(response)
        errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
        title = str(body.get("title") or (errors[0].get("title") if errors else "") or "")
        detail = str(
            body.get("detail") or (errors[0].get("message") if errors else "") or body.get("reason") or ""
        )
        kind = str(body.get("type") or "")
        return f"{title} {kind}".strip(), detail

    def _classify(self, response, action: str) -> Exception:
        status = response.status_code
        title, detail = self._problem(response)
        words = f"{title} {detail}".lower()
        if "usage-capped" in words or "usagecap" in words.replace(" ", ""):
            return Retryable(
                _(
                    "X usage cap reached for this app/account ({detail}); posting resumes when the cap resets"
                ).format(detail=detail or title),
                retry_at=parse_retry_at(response.headers),
            )
        if status == 401:
            return AuthFailure(
                _(
                    "X refused the credentials (401): the access token was revoked or expired, or "
                    "the keys are wrong; run `poster login {target}`"
                ).format(target=self.target)
            )
        if status == 403 and "duplicate" in words:
            return Fatal(
                _("X refused the post as a duplicate of a recent post with the same text and images")
            )
        if status == 403 and (
            "oauth1-permissions" in words or "not permitted" in words or "client-not-enrolled" in words
        ):
            return AuthFailure(
                _(
                    "X says this app may not {action} ({detail}): give the app 'Read and write' "
                    "permission, then create a new access token and run `poster login {target}`"
                ).format(action=action, detail=detail or title, target=self.target)
            )
        if status == 403:
            return Fatal(
                _("X forbade {action} (403): {detail}").format(action=action, detail=detail or title)
            )
        if status == 413 or "too large" in words or "file size" in words:
            return Fatal(_("X says the image is too large: {detail}").format(detail=detail or title))
        return Fatal(
            _("X refused to {action} ({status}): {detail}").format(
                action=action, status=status, detail=detail or title
            )
        )

    def _call(self, method: str, path: str, ok=(200, 201, 202, 204), action: str = "", **kwargs):
        try:
            r = self.client.request(method, path, **kwargs)
        except RateLimited as exc:
            if "usage" in exc.message.lower() and "cap" in exc.message.lower():
                raise RateLimited(
                    _("X usage cap reached for this app/account; posting resumes when the cap resets"),
                    retry_at=exc.retry_at,
                ) from None
            raise
        if r.status_code not in ok:
            raise self._classify(r, action or f"{method} {path}")
        return r

    # -- media
    def _upload(self, item: MediaItem) -> str:
        if len(item.data) > self.capabilities.max_bytes:
            raise Fatal(
                _("{file} is {size} bytes; X takes images up to {limit} bytes").format(
                    file=item.filename, size=len(item.data), limit=self.capabilities.max_bytes
                )
            )
        if len(item.data) <= self.chunk_threshold:
            r = self._call(
                "POST",
                "/2/media/upload",
                action=_("upload {file}").format(file=item.filename),
                idempotent=True,
                files={"media": (item.filename, item.data, item.mime)},
                data={"media_category": "tweet_image", "media_type": item.mime},
            )
            data = json_body(r, self.name).get("data") or {}
        else:
            r = self._call(
                "POST",
                "/2/media/upload/initialize",
                action=_("start a chunked upload"),
                idempotent=True,
                json={
                    "media_type": item.mime,
                    "total_bytes": len(item.data),
                    "media_category": "tweet_image",
                },
            )
            media_id = str((json_body(r, self.name).get("data") or {}).get("id") or "")
            if not media_id:
                raise Fatal(_("X did not return a media id for the chunked upload"))
            for index, start in enumerate(range(0, len(item.data), self.chunk_size)):
                self._call(
                    "POST",
                    f"/2/media/upload/{media_id}/append",
                    action=_("upload part {index} of {file}").format(index=index, file=item.filename),
                    idempotent=True,
                    files={
                        "media": (
                            item.filename,
                            item.data[start : start + self.chunk_size],
                            "application/octet-stream",
                        )
                    },
                    data={"segment_index": str(index)},
                )
            r = self._call(
                "POST", f"/2/media/upload/{media_id}/finalize", action=_("finish the upload"), idempotent=True
            )
            data = json_body(r, self.name).get("data") or {}
            data.setdefault("id", media_id)
        media_id = str(data.get("id") or "")
        if not media_id:
            raise Fatal(_("X accepted the upload but returned no media id"))
        self._await_processing(media_id, data.get("processing_info"))
        if item.alt:
            self._call(
                "POST",
                "/2/media/metadata",
                action=_("set the alt text"),
                idempotent=True,
                json={
                    "id": media_id,
                    "metadata": {"alt_text": {"text": item.alt[: self.capabilities.alt_text_length]}},
                },
            )
        return media_id

    def _await_processing(self, media_id: str, info: dict | None) -> None:
        polls = 0
        while info and info.get("state") in ("pending", "in_progress"):
            if polls >= self.status_poll_limit:
                raise Retryable(_("X is still processing the image; try again later"))
            time.sleep(min(float(info.get("check_after_secs") or 1), 10.0))
            polls += 1
            r = self._call(
                "GET",
                "/2/media/upload",
                action=_("check the upload"),
                params={"command": "STATUS", "media_id": media_id},
            )
            info = (json_body(r, self.name).get("data") or {}).get("processing_info")
        if info and info.get("state") == "failed":
            error = info.get("error") or {}
            raise Fatal(
                _("X could not process the image: {error}").format(error=error.get("message") or error)
            )

    # -- post
    def _post(self, post: Post) -> PostResult:
        media = post.media[: self.capabilities.images_per_post]
        if len(post.media) > len(media):
            log.warning(
                "%s",
                _("{target}: X takes 4 images per post; the rest are not posted").format(target=self.target),
            )
        link = post.options.get("link") if self.link_back else None
        text, trimmed = compose(
            post.caption or post.title,
            post.tags,
            limit=self.text_length,
            measure=x_weighted_length,
            suffix=link if isinstance(link, str) else "",
        )
        if trimmed:
            log.warning(
                "%s",
                _("{target}: caption trimmed to X's weighted {limit} characters").format(
                    target=self.target, limit=self.text_length
                ),
            )
        ids = [self._upload(item) for item in media]
        r = self._call(
            "POST",
            "/2/tweets",
            action=_("create the post"),
            idempotent=False,
            json={"text": text, "media": {"media_ids": ids}},
        )
        data = json_object(r, self.name, creates=True).get("data")
        tweet_id = str(data.get("id") or "") if isinstance(data, dict) else ""
        if not tweet_id:
            raise no_post_id(self.name, "data.id")
        who = self.username or "i/web"
        return PostResult.posted(tweet_id, f"https://x.com/{who}/status/{tweet_id}")

    def _check(self) -> CheckResult:
        r = self._call("GET", "/2/users/me", action=_("read the account"))
        user = json_body(r, self.name).get("data") or {}
        return CheckResult(
            True,
            _("logged in as @{account} on {api_base}").format(
                account=user.get("username", "?"), api_base=self.api_base
            ),
        )
