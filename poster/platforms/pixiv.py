"""pixiv, through the logged-in web session (pixiv has no posting API).

The observed web flow (as used by peers such as PostyBirb):
1. `GET /illustration/create` with the session cookie; the CSRF token is in the page's
   `__NEXT_DATA__` JSON (`…serverSerializedPreloadedState` → `api.token`).
2. `POST /ajax/work/create/illustration` (multipart, header `x-csrf-token`) with title,
   caption, tags, age rating, AI flag, restrict and the files → `{"body": {"convertKey"}}`.
3. `GET /ajax/work/create/illustration/progress?convertKey=…` until `COMPLETE` → illustId.

This is the most fragile adapter: a redirect to the login page is reported as an expired
session, and a page without the expected structure as a changed page — never a silent
failure. One post at a time, at least 5 minutes apart (pixiv's 2026-03 guideline).

Settings: `api_base` (default https://www.pixiv.net), `restrict` (public | mypixiv |
private), `ai_generated` (bool — REQUIRED somewhere: here or `ai_generated` in the sidecar;
`notAiGenerated` is only sent when the user said so), `original` (bool, default false),
`allow_tag_edit` (default true), `allow_comment` (default true). Credential: `SESSION` (the
`PHPSESSID` cookie value, or a full `Cookie:` header string), sent as cookies for
`api_base`'s host only.

Once the create request has reached pixiv, nothing but pixiv's own refusal (an error answer,
a redirect to its login) fails the job: an unreadable answer, or any failure while polling
for the work's id, leaves it `uncertain` — pixiv may have the work, and there is no look-up.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from poster.errors import ConfigError
from poster.i18n import _
from poster.platforms.base import Capabilities, CheckResult, Post, PostResult
from poster.platforms.http import (
    Ambiguous,
    AuthFailure,
    Fatal,
    HttpAdapter,
    HttpClient,
    PlatformError,
    Retryable,
    _short_body,
    no_post_id,
    origin,
    origin_text,
)
from poster.platforms.text import compose

log = logging.getLogger("poster.platforms.pixiv")

RESTRICTS = ("public", "mypixiv", "private")
RATINGS = ("general", "r18", "r18g")
_NEXT_DATA = re.compile(
    r'<script[^>]*id=["\']__NEXT_DATA__["\'][^>]*>(.*?)</script>', re.DOTALL | re.IGNORECASE
)
CREATE_PAGE = "/illustration/create"
CREATE_API = "/ajax/work/create/illustration"
PROGRESS_API = "/ajax/work/create/illustration/progress"


class PageChanged(Fatal):
    pass


class ConversionFailed(Fatal):
    """pixiv's progress poll said FAILED: its own answer that the work was not published."""


def session_cookies(session: str) -> list[tuple[str, str]]:
    """The SESSION credential as cookies: a bare PHPSESSID value, or a `Cookie:` header
    string (`PHPSESSID=…; other=…`)."""
    session = session.strip()
    if session.lower().startswith("cookie:"):
        session = session[len("cookie:") :]
    if "=" not in session:
        return [("PHPSESSID", session)] if session else []
    pairs = []
    for part in session.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name.strip():
            pairs.append((name.strip(), value.strip()))
    return pairs


def _find_key(node: Any, key: str, depth: int = 0) -> Any:
    if depth > 8:
        return None
    if isinstance(node, dict):
        if key in node:
            return node[key]
        for value in node.values():
            found = _find_key(value, key, depth + 1)
            if found is not None:
                return found
    elif isinstance(node, list):
        for value in node:
            found = _find_key(value, key, depth + 1)
            if found is not None:
                return found
    return None


def extract_csrf_token(html: str) -> str:
    """The CSRF token from the upload page, or `PageChanged` saying what was not found."""
    m = _NEXT_DATA.search(html)
    if not m:
        raise PageChanged(
            _(
                "pixiv's upload page has changed: no __NEXT_DATA__ script found, so the CSRF "
                "token cannot be read; the pixiv adapter needs an update (post by hand meanwhile)"
            )
        )
    try:
        data = json.loads(m.group(1))
    except ValueError:
        raise PageChanged(_("pixiv's upload page has changed: __NEXT_DATA__ is not JSON")) from None
    state = _find_key(data, "serverSerializedPreloadedState")
    if isinstance(state, str):
        try:
            state = json.loads(state)
        except ValueError:
            state = None
    token = ((state or {}).get("api") or {}).get("token") if isinstance(state, dict) else None
    if not isinstance(token, str) or not token:
        raise PageChanged(
            _(
                "pixiv's upload page has changed: __NEXT_DATA__ has no "
                "serverSerializedPreloadedState.api.token; the pixiv adapter needs an update"
            )
        )
    return token


class PixivAdapter(HttpAdapter):
    name = "pixiv"
    credential_fields = ("SESSION",)
    credential_help: ClassVar[dict[str, str]] = {
        "SESSION": "log in at pixiv.net in a browser; developer tools → Storage/Application → "
        "Cookies → www.pixiv.net → the value of PHPSESSID",
    }
    settings_keys = HttpAdapter.common_settings | frozenset(
        {"restrict", "ai_generated", "original", "allow_tag_edit", "allow_comment"}
    )
    capabilities = Capabilities(
        max_bytes=32 * 1024 * 1024,
        formats=("PNG", "JPEG"),
        keeps_png=True,  # the original file is kept; previews are JPEG
        images_per_post=200,  # unconfirmed officially
        text_length=3000,
        alt_text=False,
        min_interval=300.0,
        reencodes=((1200, 85),),  # "master1200" previews
    )
    default_api_base = "https://www.pixiv.net"
    progress_poll_interval: ClassVar[float] = 1.0
    progress_poll_limit: ClassVar[int] = 60

    def __init__(self, target, settings, credentials, *, data_dir):
        super().__init__(target, settings, credentials, data_dir=data_dir)
        restrict = self.settings.get("restrict", "public")
        if restrict not in RESTRICTS:
            raise ConfigError(
                _("targets.{target}.restrict: must be one of {choices}").format(
                    target=target, choices=", ".join(RESTRICTS)
                )
            )
        self.restrict = restrict
        for key in ("ai_generated", "original", "allow_tag_edit", "allow_comment"):
            value = self.settings.get(key)
            if value is not None and not isinstance(value, bool):
                raise ConfigError(
                    _("targets.{target}.{key}: must be true or false").format(target=target, key=key)
                )
        self.ai_generated = self.settings.get("ai_generated")

    def effective_capabilities(self) -> Capabilities:
        return replace(self.capabilities, min_interval=self._min_interval(self.capabilities.min_interval))

    def make_client(self, **overrides: Any) -> HttpClient:
        client = super().make_client(
            headers={
                "Accept-Language": "ja,en;q=0.8",
                "Referer": f"{self.api_base}{CREATE_PAGE}",
                "Origin": self.api_base,
            },
            **overrides,
        )
        # the session goes into the cookie jar, scoped to api_base's host (never a raw
        # Cookie header, which would go wherever a request went)
        for name, value in session_cookies(self._credentials.get("SESSION", "")):
            client.set_cookie(name, value)
        return client

    # -- session and token
    @staticmethod
    def _to_login(r) -> bool:
        """A redirect to pixiv's login: the session is not (or no longer) logged in."""
        where = r.headers.get("Location", "")
        return "login" in where or "accounts." in where

    def _where(self, r) -> str:
        """Where a redirect points, for a message: the origin and path, never the query."""
        from urllib.parse import urljoin, urlsplit

        target = urljoin(self.client.url(CREATE_PAGE), r.headers.get("Location", ""))
        path = urlsplit(target).path or "/"
        where = path if origin(target) == self.client.origin else origin_text(target) + path
        return self.mask(where)

    def _expired(self, why: str) -> AuthFailure:
        return AuthFailure(
            _(
                "pixiv session expired or not logged in ({why}): log in to pixiv in a browser, "
                "copy the PHPSESSID cookie and run `poster login {target}`"
            ).format(why=why, target=self.target)
        )

    def csrf_token(self) -> str:
        r = self.client.get(CREATE_PAGE, allow_redirects=False, answer="page")
        if r.status_code in (301, 302, 303, 307, 308):
            if self._to_login(r):
                raise self._expired(_("the upload page redirects to the login page"))
            raise PageChanged(
                _("pixiv's upload page has moved (redirect to {where}); poster did not follow it").format(
                    where=self._where(r)
                )
            )
        if r.status_code in (401, 403):
            raise self._expired(_("the upload page answered {status}").format(status=r.status_code))
        if r.status_code != 200:
            raise Fatal(
                _("pixiv's upload page answered {status}: {body}").format(
                    status=r.status_code, body=_short_body(r)
                )
            )
        token = extract_csrf_token(r.text)
        self.client.add_secret(token)
        return token

    # -- post
    def _ai_type(self, post: Post) -> str:
        value = post.options.get("ai_generated", self.ai_generated)
        if value is None:
            raise Fatal(
                _(
                    "pixiv requires the AI-generated flag and poster never guesses it: set "
                    "ai_generated = false (or true) in the sidecar or in targets.{target}"
                ).format(target=self.target)
            )
        if not isinstance(value, bool):
            raise Fatal(_("ai_generated must be true or false"))
        return "aiGenerated" if value else "notAiGenerated"

    def _form(self, post: Post, token: str) -> tuple[list[tuple[str, str]], list]:
        rating = post.rating if post.rating in RATINGS else "general"
        title = (post.title or "untitled").strip()
        if len(title) > 32:
            log.warning("%s", _("{target}: title cut to pixiv's 32 characters").format(target=self.target))
            title = title[:32]
        caption, trimmed = compose(post.caption, (), limit=3000, measure=len)
        if trimmed:
            log.warning("%s", _("{target}: caption trimmed to 3000 characters").format(target=self.target))
        tags = [t.strip().lstrip("#") for t in post.tags if t.strip()][:10]
        if len(post.tags) > 10:
            log.warning(
                "%s", _("{target}: pixiv takes 10 tags; the rest are dropped").format(target=self.target)
            )
        bool_s = lambda v: "true" if v else "false"  # noqa: E731
        opt = post.options
        fields: list[tuple[str, str]] = [
            ("title", title),
            ("caption", caption),
            ("allowTagEdit", bool_s(opt.get("allow_tag_edit", self.settings.get("allow_tag_edit", True)))),
            ("xRestrict", rating),
            ("restrict", self.restrict),
            ("original", bool_s(opt.get("original", self.settings.get("original", False)))),
            ("allowComment", bool_s(self.settings.get("allow_comment", True))),
            ("responseAutoAccept", "false"),
            ("aiType", self._ai_type(post)),
            ("tweet", "false"),
            ("titleTranslations[en]", ""),
            ("captionTranslations[en]", ""),
        ]
        if rating == "general":
            fields.append(("sexual", bool_s(opt.get("sexual", False))))
        fields += [("tags[]", t) for t in tags]
        files = []
        for i, item in enumerate(post.media[: self.capabilities.images_per_post]):
            files.append(("files[]", (item.filename, item.data, item.mime)))
            fields.append((f"imageOrder[{i}][type]", "newFile"))
            fields.append((f"imageOrder[{i}][fileKey]", str(i)))
        return fields, files

    def _answer(self, r, action: str, *, creates: bool = False) -> dict[str, Any]:
        """The JSON answer of a pixiv ajax call. `creates`: the call may have created the work,
        so an answer that is a success without being readable is `Ambiguous`; pixiv's own
        error answers (and redirects to its login) still say nothing was created."""
        if r.status_code in (301, 302, 303, 307, 308):
            if self._to_login(r) or not creates:
                raise self._expired(
                    _("{action} answered {status}").format(action=action, status=r.status_code)
                )
            raise Ambiguous(
                _("pixiv answered the request to {action} with a redirect ({status}) to {where}").format(
                    action=action, status=r.status_code, where=self._where(r)
                )
            )
        if r.status_code == 401:
            raise self._expired(_("{action} answered {status}").format(action=action, status=r.status_code))
        try:
            body = r.json()
        except ValueError:
            if creates and r.status_code < 300:
                raise Ambiguous(
                    _(
                        "pixiv answered the request to {action} with {status} and something that is not JSON"
                    ).format(action=action, status=r.status_code)
                ) from None
            if "<html" in r.text[:500].lower():
                raise self._expired(
                    _("{action} answered an HTML page instead of JSON").format(action=action)
                ) from None
            raise PageChanged(
                _(
                    "pixiv's {action} answered something unexpected ({status}): the web API may have changed"
                ).format(action=action, status=r.status_code)
            ) from None
        if not isinstance(body, dict) or "error" not in body:
            if creates and r.status_code < 300:
                raise Ambiguous(
                    _("pixiv answered the request to {action} in an unknown shape").format(action=action)
                )
            raise PageChanged(
                _("pixiv's {action} answer has an unknown shape: the web API may have changed").format(
                    action=action
                )
            )
        if body.get("error"):
            errors = (body.get("body") or {}).get("errors") if isinstance(body.get("body"), dict) else None
            message = str(body.get("message") or errors or "unknown error")
            low = message.lower()
            if errors and "gRecaptchaResponse" in errors:
                raise Retryable(
                    _(
                        "pixiv asks for a captcha (too many posts in a short time); posting is paused "
                        "for an hour"
                    ),
                    retry_at=datetime.now(UTC) + timedelta(hours=1),
                )
            if "csrf" in low or "token" in low or "login" in low or r.status_code == 403:
                raise self._expired(f"{action}: {message}")
            if r.status_code == 429:
                raise Retryable(_("pixiv rate limit: {message}").format(message=message))
            raise Fatal(_("pixiv refused to {action}: {message}").format(action=action, message=message))
        if r.status_code >= 400:
            raise Fatal(_("pixiv answered {status} to {action}").format(status=r.status_code, action=action))
        return body

    def _post(self, post: Post) -> PostResult:
        for item in post.media:
            if len(item.data) > self.capabilities.max_bytes:
                raise Fatal(
                    _("{file} is {size} bytes; pixiv takes up to {limit} bytes per image").format(
                        file=item.filename, size=len(item.data), limit=self.capabilities.max_bytes
                    )
                )
        self._ai_type(post)  # fail before any network call when the flag is missing
        token = self.csrf_token()
        fields, files = self._form(post, token)
        r = self.client.post(
            CREATE_API,
            data=fields,
            files=files,
            headers={"x-csrf-token": token, "Accept": "application/json"},
            allow_redirects=False,
            idempotent=False,
        )
        body = self._answer(r, _("create the work"), creates=True)
        inner = body.get("body")
        convert_key = inner.get("convertKey") if isinstance(inner, dict) else None
        if not isinstance(convert_key, str) or not convert_key:
            raise no_post_id(self.name, "convertKey")
        try:
            illust_id = self._await(convert_key)
        except (Ambiguous, ConversionFailed):
            raise
        except PlatformError as exc:
            # pixiv took the work: whatever goes wrong while waiting for its id, it may exist
            raise Ambiguous(
                _("pixiv accepted the work, then: {reason}").format(reason=self.mask(exc.message))
            ) from None
        return PostResult.posted(str(illust_id), f"{self.api_base}/artworks/{illust_id}")

    def _await(self, convert_key: str) -> str:
        for _poll in range(self.progress_poll_limit):
            r = self.client.get(
                PROGRESS_API,
                params={"convertKey": convert_key},
                headers={"Accept": "application/json"},
                allow_redirects=False,
            )
            body = self._answer(r, _("report the upload progress")).get("body") or {}
            status = str(body.get("status") or "")
            if status == "COMPLETE" and body.get("illustId"):
                return str(body["illustId"])
            if status == "FAILED":
                raise ConversionFailed(_("pixiv could not process the images (progress: FAILED)"))
            time.sleep(self.progress_poll_interval)
        raise Ambiguous(_("pixiv is still processing the work; it may appear later"))

    def _check(self) -> CheckResult:
        self.csrf_token()
        return CheckResult(
            True,
            _("pixiv session is valid and the upload page is as expected ({api_base})").format(
                api_base=self.api_base
            ),
        )
