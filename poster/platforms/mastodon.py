"""Mastodon: `POST /api/v2/media` (with `description` as alt text), wait for processing,
then `POST /api/v1/statuses` with `media_ids[]` and an `Idempotency-Key` (the job's key), so
a repeated request after a timeout cannot create a second status (within the hour Mastodon
keeps the key). Once the bounded in-place repeats are spent, or the answer does not name
the status, the job is `uncertain`: there is no look-up by key.

Settings: `instance` (or `api_base`) — the server URL; `visibility` (public | unlisted |
private | direct, default public); `sensitive_for` (ratings marked sensitive, default r18
and r18g). Credential: `TOKEN` (an access token with `write:media write:statuses`).
Limits are read from `GET /api/v2/instance` and cached for a day.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from poster.i18n import _
from poster.platforms.base import Capabilities, CheckResult, Post, PostResult
from poster.platforms.http import (
    AuthFailure,
    Fatal,
    HttpAdapter,
    Retryable,
    http_status_error,
    json_body,
    json_object,
    no_post_id,
)
from poster.platforms.instance import InstanceAdapter
from poster.platforms.text import compose

log = logging.getLogger("poster.platforms.mastodon")

VISIBILITIES = ("public", "unlisted", "private", "direct")


class MastodonAdapter(InstanceAdapter):
    name = "mastodon"
    credential_fields = ("TOKEN",)
    credential_help: ClassVar[dict[str, str]] = {
        "TOKEN": "your server → Preferences → Development → New application (scopes "
        "write:media write:statuses read:accounts) → Your access token",
    }
    settings_keys = HttpAdapter.common_settings | frozenset({"instance", "visibility", "sensitive_for"})
    capabilities = Capabilities(
        max_bytes=16 * 1024 * 1024,
        max_pixels=3840 * 2160,  # 8.3 MP: larger images are downscaled by the server
        formats=("JPEG", "PNG", "WEBP"),
        keeps_png=True,
        images_per_post=4,
        text_length=500,
        alt_text=True,
        alt_text_length=1500,
        min_interval=10.0,
        reencodes=((3840, 90),),
    )
    default_api_base = ""
    visibilities = VISIBILITIES
    example_instance = "https://mastodon.social"
    media_poll_interval: ClassVar[float] = 1.0
    media_poll_limit: ClassVar[int] = 30

    def make_client(self, **overrides: Any):
        token = self._credentials.get("TOKEN", "")
        return super().make_client(headers={"Authorization": f"Bearer {token}"}, **overrides)

    # -- limits (cached by InstanceAdapter.effective_capabilities)
    def _fetch_limits(self) -> dict[str, Any]:
        r = self.client.get("/api/v2/instance")
        if r.status_code != 200:
            raise http_status_error(r, self.name, _("read the server's limits"))
        conf = json_body(r, self.name).get("configuration") or {}
        media = conf.get("media_attachments") or {}
        statuses = conf.get("statuses") or {}
        limits = {
            "max_bytes": media.get("image_size_limit"),
            "max_pixels": media.get("image_matrix_limit"),
            "images_per_post": statuses.get("max_media_attachments"),
            "text_length": statuses.get("max_characters"),
            "alt_text_length": media.get("description_limit"),
        }
        return limits

    # -- posting
    def _classify(self, response, action: str):
        status = response.status_code
        try:
            error = response.json().get("error", "")
        except Exception:
            error = response.text[:200]
        if status == 401:
            return AuthFailure(
                _(
                    "mastodon refused the access token ({error}): run `poster login {target}` with a "
                    "new token"
                ).format(error=error or "unauthorized", target=self.target)
            )
        if status == 422:
            return Fatal(_("mastodon refused to {action}: {error}").format(action=action, error=error))
        return http_status_error(response, self.name, action, error)

    def _upload(self, item) -> str:
        r = self.client.post(
            "/api/v2/media",
            files={"file": (item.filename, item.data, item.mime)},
            data={"description": item.alt[: self.effective_alt_limit()]} if item.alt else {},
            idempotent=True,  # an orphan upload is harmless; Mastodon deletes it
        )
        if r.status_code not in (200, 202):
            raise self._classify(r, _("upload {file}").format(file=item.filename))
        media = json_body(r, self.name)
        media_id = str(media.get("id") or "")
        if not media_id:
            raise Fatal(_("mastodon accepted the upload but returned no media id"))
        polls = 0
        while r.status_code == 202 or not media.get("url"):
            if polls >= self.media_poll_limit:
                raise Retryable(
                    _("mastodon is still processing {file}; try later").format(file=item.filename)
                )
            time.sleep(self.media_poll_interval)
            polls += 1
            r = self.client.get(f"/api/v1/media/{media_id}")
            if r.status_code == 206:  # still processing
                media = {}
                continue
            if r.status_code != 200:
                raise self._classify(r, _("check the upload"))
            media = json_body(r, self.name)
        return media_id

    def effective_alt_limit(self) -> int:
        return self.capabilities.alt_text_length or 1500

    def _post(self, post: Post) -> PostResult:
        caps = self.effective_capabilities()
        media = post.media[: caps.images_per_post]
        if len(post.media) > len(media):
            log.warning(
                "%s",
                _("{target}: only the first {count} images are posted").format(
                    target=self.target, count=len(media)
                ),
            )
        text, trimmed = compose(post.caption or post.title, post.tags, limit=caps.text_length, measure=len)
        if trimmed:
            log.warning(
                "%s",
                _("{target}: caption trimmed to {limit} characters").format(
                    target=self.target, limit=caps.text_length
                ),
            )
        ids = [self._upload(item) for item in media]
        body: dict[str, Any] = {
            "status": text,
            "media_ids": ids,
            "visibility": self.visibility,
            "sensitive": post.rating in self.rating_sets["sensitive_for"],
        }
        if post.rating in self.rating_sets["sensitive_for"]:
            body["spoiler_text"] = post.rating.upper()
        r = self.client.post(
            "/api/v1/statuses",
            json=body,
            headers={"Idempotency-Key": post.key},
            idempotent=True,  # the Idempotency-Key makes a repeat return the same status
            creates=True,
        )
        if r.status_code != 200:
            raise self._classify(r, _("publish the status"))
        status = json_object(r, self.name, creates=True)
        sid = str(status.get("id") or "")
        url = status.get("url") or status.get("uri")
        if not sid or not isinstance(url, str) or not url:
            raise no_post_id(self.name, _("status id or URL"))
        media_urls = tuple(
            m["url"]
            for m in status.get("media_attachments") or ()
            if isinstance(m, dict) and isinstance(m.get("url"), str)
        )
        return PostResult.posted(sid, url, media_urls)

    def _check(self) -> CheckResult:
        r = self.client.get("/api/v1/accounts/verify_credentials")
        if r.status_code != 200:
            raise self._classify(r, _("verify the credentials"))
        account = json_body(r, self.name)
        return CheckResult(
            True,
            _("logged in as @{account} on {api_base}").format(
                account=account.get("acct", "?"), api_base=self.api_base
            ),
        )
