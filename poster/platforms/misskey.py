"""Misskey: `POST /api/drive/files/create` (multipart `file`, `comment` = alt text,
`isSensitive`), then `POST /api/notes/create` (`fileIds`, `text`, `visibility`, `cw`).

Duplicate-proof: each uploaded file is named `poster-<job key>-<n>.<ext>`, so after a crash
`find_existing` asks `drive/files/find` for that name and `drive/files/attached-notes` for a
note using it — a real answer (exists / absent) instead of a guess. That look-up also settles
a `notes/create` whose answer is missing, late or unreadable (`Ambiguous`).

Settings: `instance` (or `api_base`), `visibility` (public | home | followers | specified,
default public), `sensitive_for` (ratings marked sensitive, default r18 and r18g), `cw_for`
(ratings that get a content warning, default r18g). Credential: `TOKEN` (an access token
with drive and note write permission). Limits: `policies.maxFileSizeMb` from `/api/i` and
`maxNoteTextLength` from `/api/meta`, cached for a day.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from poster.i18n import _
from poster.platforms.base import (
    Capabilities,
    CheckResult,
    Existence,
    MediaItem,
    Post,
    PostResult,
)
from poster.platforms.http import AuthFailure, Fatal, HttpAdapter, Retryable, json_body, no_post_id
from poster.platforms.instance import InstanceAdapter
from poster.platforms.text import compose

log = logging.getLogger("poster.platforms.misskey")

VISIBILITIES = ("public", "home", "followers", "specified")
EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


class MisskeyAdapter(InstanceAdapter):
    name = "misskey"
    credential_fields = ("TOKEN",)
    credential_help: ClassVar[dict[str, str]] = {
        "TOKEN": "your server → Settings → API → Generate access token (drive write, notes "
        "write, account read)",
    }
    settings_keys = HttpAdapter.common_settings | frozenset(
        {"instance", "visibility", "sensitive_for", "cw_for"}
    )
    capabilities = Capabilities(
        max_bytes=10 * 1024 * 1024,  # conservative until the server's policy is read
        formats=("PNG", "JPEG", "WEBP"),
        keeps_png=True,
        images_per_post=16,
        text_length=3000,
        alt_text=True,
        alt_text_length=512,
        min_interval=10.0,
        reencodes=((2048, 90),),  # web-public thumbnails; the original file is kept
    )
    default_api_base = ""
    visibilities = VISIBILITIES
    example_instance = "https://misskey.io"
    rating_lists: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "sensitive_for": ("r18", "r18g"),
        "cw_for": ("r18g",),
    }

    @property
    def token(self) -> str:
        return self._credentials.get("TOKEN", "")

    # -- calls
    def _classify(self, r, action: str) -> Exception:
        try:
            body = r.json()
        except ValueError:
            body = None
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):  # not Misskey's error shape: the status says enough
            err = {}
        code = str(err.get("code") or "")
        message = str(err.get("message") or r.text[:200])
        if r.status_code in (401, 403) and (
            code in ("AUTHENTICATION_FAILED", "CREDENTIAL_REQUIRED", "PERMISSION_DENIED")
            or r.status_code == 401
        ):
            return AuthFailure(
                _(
                    "misskey refused the access token ({code}: {message}); run `poster login "
                    "{target}` with a token that may write drive files and notes"
                ).format(code=code or r.status_code, message=message, target=self.target)
            )
        if r.status_code == 413 or "TOO_BIG" in code or "FILE_TOO_LARGE" in code:
            return Fatal(
                _("misskey says the file is too large ({code}: {message})").format(code=code, message=message)
            )
        if code == "NO_FREE_SPACE":
            return Fatal(_("misskey drive is full: free some space in the account's drive"))
        if code == "RATE_LIMIT_EXCEEDED":
            return Retryable(_("misskey rate limit reached; try again later"))
        return Fatal(
            _("misskey refused to {action} ({status} {code}: {message})").format(
                action=action, status=r.status_code, code=code, message=message
            )
        )

    def _api(
        self, endpoint: str, body: dict[str, Any] | None = None, *, action: str, creates: bool = False
    ) -> Any:
        """A call with the token in its body (`i`); `creates`: it may create the note, so
        an answer that does not say so clearly is `Ambiguous`."""
        r = self.client.post(
            f"/api/{endpoint}", json={"i": self.token, **(body or {})}, idempotent=not creates
        )
        if r.status_code == 204:
            return None
        if r.status_code != 200:
            raise self._classify(r, action)
        return json_body(r, self.name, creates=creates)

    # -- limits (cached by InstanceAdapter.effective_capabilities)
    def _fetch_limits(self) -> dict[str, Any]:
        limits: dict[str, Any] = {}
        meta = self.client.post("/api/meta", json={"detail": False})
        if meta.status_code == 200:
            limits["text_length"] = json_body(meta, self.name).get("maxNoteTextLength")
        if self.token:
            me = self._api("i", action=_("read the account's limits")) or {}
            mb = (me.get("policies") or {}).get("maxFileSizeMb")
            if isinstance(mb, int | float) and mb > 0:
                limits["max_bytes"] = int(mb * 1024 * 1024)
        return limits

    # -- posting
    def file_name(self, post: Post, index: int, item: MediaItem) -> str:
        return f"poster-{post.key}-{index}.{EXT.get(item.mime, 'bin')}"

    def _upload(self, post: Post, index: int, item: MediaItem) -> str:
        r = self.client.post(
            "/api/drive/files/create",
            data={
                "i": self.token,
                "name": self.file_name(post, index, item),
                "comment": (item.alt or "")[: self.capabilities.alt_text_length],
                "isSensitive": "true" if post.rating in self.rating_sets["sensitive_for"] else "false",
                "force": "true",
            },
            files={"file": (item.filename, item.data, item.mime)},
            idempotent=True,  # an unattached drive file is harmless
        )
        if r.status_code != 200:
            raise self._classify(r, _("upload {file}").format(file=item.filename))
        fid = str(json_body(r, self.name).get("id") or "")
        if not fid:
            raise Fatal(_("misskey accepted the upload but returned no file id"))
        return fid

    def _post(self, post: Post) -> PostResult:
        caps = self.effective_capabilities()
        media = post.media[: caps.images_per_post]
        text, trimmed = compose(post.caption or post.title, post.tags, limit=caps.text_length, measure=len)
        if trimmed:
            log.warning(
                "%s",
                _("{target}: text trimmed to {limit} characters").format(
                    target=self.target, limit=caps.text_length
                ),
            )
        for item in media:
            if len(item.data) > caps.max_bytes:
                raise Fatal(
                    _("{file} is {size} bytes; this misskey server takes files up to {limit} bytes").format(
                        file=item.filename, size=len(item.data), limit=caps.max_bytes
                    )
                )
        ids = [self._upload(post, i, item) for i, item in enumerate(media)]
        body: dict[str, Any] = {"text": text, "fileIds": ids, "visibility": self.visibility}
        if post.rating in self.rating_sets["cw_for"]:
            body["cw"] = post.rating.upper()
        answer = self._api("notes/create", body, action=_("create the note"), creates=True)
        note = answer.get("createdNote") if isinstance(answer, dict) else None
        nid = str(note.get("id") or "") if isinstance(note, dict) else ""
        if not nid:
            raise no_post_id(self.name, "createdNote.id")
        return PostResult.posted(nid, f"{self.api_base}/notes/{nid}")

    def _find_existing(self, post: Post) -> tuple[Existence, PostResult | None]:
        for index, item in enumerate(post.media[:1]):
            files = (
                self._api(
                    "drive/files/find",
                    {"name": self.file_name(post, index, item)},
                    action=_("look for the uploaded file"),
                )
                or []
            )
            for f in files:
                notes = (
                    self._api(
                        "drive/files/attached-notes", {"fileId": f["id"]}, action=_("look for the note")
                    )
                    or []
                )
                if notes:
                    nid = str(notes[0]["id"])
                    return Existence.EXISTS, PostResult.posted(nid, f"{self.api_base}/notes/{nid}")
        return Existence.ABSENT, None

    def _check(self) -> CheckResult:
        me = self._api("i", action=_("verify the token")) or {}
        return CheckResult(
            True,
            _("logged in as @{account} on {api_base}").format(
                account=me.get("username", "?"), api_base=self.api_base
            ),
        )
