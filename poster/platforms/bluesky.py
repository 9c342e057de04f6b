"""Bluesky (AT Protocol): one stored session (createSession once, then refreshSession — the
login server allows only about 100 sessions a day), uploadBlob per image (metadata stripped
losslessly, ≤ 2,000,000 bytes), then createRecord of an `app.bsky.feed.post` with
`app.bsky.embed.images` (alt text, aspectRatio), hashtag and link facets, text ≤ 300
graphemes.

No duplicates: the record key (a TID) is chosen before the create call and remembered under
`data_dir/state/`, so a retry reuses it and `find_existing` can ask the PDS whether that
record exists — also when the createRecord answer is unreadable or never comes (the error
is `Ambiguous`: the job is settled by that look-up, never failed).

Every call goes to `api_base`: the adapter never switches to a PDS named in the session's
DID document (bsky.social serves its accounts through its entryway), so the app password and
the session tokens only reach the server the user configured.

Settings: `api_base` (the PDS, default https://bsky.social), `web_base` (for post URLs,
default https://bsky.app), `langs` (list, optional), `link_back` (bool, default false: add
`post.options["link"]`), `labels` (table rating → self-label, default r18 → "porn",
r18g → "graphic-media"). Credentials: `HANDLE`, `APP_PASSWORD` (an app password, not the
account password).
"""

from __future__ import annotations

import logging
import random
import re
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar

from poster.errors import ConfigError
from poster.i18n import _
from poster.platforms.base import (
    Capabilities,
    CheckResult,
    Existence,
    MediaItem,
    Post,
    PostResult,
)
from poster.platforms.http import (
    AuthFailure,
    Fatal,
    HttpAdapter,
    RateLimited,
    Retryable,
    json_body,
    json_object,
    no_post_id,
)
from poster.platforms.media import shrink_to, strip_metadata
from poster.platforms.text import bluesky_facets, compose, grapheme_length

log = logging.getLogger("poster.platforms.bluesky")

MAX_BLOB = 2_000_000
POST_NSID = "app.bsky.feed.post"
_BLOB_TOO_BIG = re.compile(r"blob too big \(maximum (\d+)")
_B32 = "234567abcdefghijklmnopqrstuvwxyz"


def make_tid(now_us: int | None = None, clock_id: int | None = None) -> str:
    """An AT Protocol TID: 53 bits of microseconds + 10 bits clock id, base32-sortable."""
    us = now_us if now_us is not None else time.time_ns() // 1000
    clock = clock_id if clock_id is not None else random.randrange(1024)
    value = ((us & ((1 << 53) - 1)) << 10) | (clock & 0x3FF)
    out = []
    for _i in range(13):
        out.append(_B32[value & 31])
        value >>= 5
    return "".join(reversed(out))


class BlueskyAdapter(HttpAdapter):
    name = "bluesky"
    credential_fields = ("HANDLE", "APP_PASSWORD")
    credential_help: ClassVar[dict[str, str]] = {
        "HANDLE": "your handle, e.g. artist.bsky.social",
        "APP_PASSWORD": "Bluesky → Settings → Privacy and security → App passwords → Add",
    }
    settings_keys = HttpAdapter.common_settings | frozenset({"web_base", "langs", "link_back", "labels"})
    capabilities = Capabilities(
        max_bytes=MAX_BLOB,
        max_edge=None,
        formats=("JPEG", "PNG"),
        keeps_png=False,  # the app view serves JPEG renditions
        images_per_post=4,
        text_length=300,  # graphemes
        alt_text=True,
        alt_text_length=2000,
        min_interval=5.0,
        reencodes=((2000, 80),),
    )
    default_api_base = "https://bsky.social"

    def __init__(self, target, settings, credentials, *, data_dir):
        super().__init__(target, settings, credentials, data_dir=data_dir)
        web = self.settings.get("web_base", "https://bsky.app")
        if not isinstance(web, str) or not web.startswith(("http://", "https://")):
            raise ConfigError(_("targets.{target}.web_base: must be an http(s) URL").format(target=target))
        self.web_base = web.rstrip("/")
        langs = self.settings.get("langs", [])
        if not isinstance(langs, list) or not all(isinstance(x, str) for x in langs):
            raise ConfigError(
                _('targets.{target}.langs: must be a list like ["ja", "en"]').format(target=target)
            )
        self.langs = langs
        labels = self.settings.get("labels", {"r18": "porn", "r18g": "graphic-media"})
        if not isinstance(labels, dict):
            raise ConfigError(
                _('targets.{target}.labels: must be a table rating = "label"').format(target=target)
            )
        self.labels = labels
        self.link_back = bool(self.settings.get("link_back", False))
        self._session: dict[str, Any] | None = None

    # -- session -----------------------------------------------------------------------
    def max_blob(self) -> int:
        """2,000,000 bytes, or less when this PDS said so (older PDSes: 1,000,000)."""
        learned = (self.read_state("limits") or {}).get("max_blob")
        if isinstance(learned, int) and 0 < learned < MAX_BLOB:
            return learned
        return MAX_BLOB

    def effective_capabilities(self) -> Capabilities:
        return replace(
            self.capabilities,
            max_bytes=self.max_blob(),
            min_interval=self._min_interval(self.capabilities.min_interval),
        )

    def _load_session(self) -> dict[str, Any] | None:
        if self._session is None:
            data = self.read_state("session")
            if (
                data
                and data.get("service") == self.api_base
                and data.get("identifier") == self._credentials.get("HANDLE")
                and data.get("accessJwt")
            ):
                self._session = data
                self.client.add_secret(data.get("accessJwt"), data.get("refreshJwt"))
        return self._session

    def _save_session(self, body: dict[str, Any]) -> dict[str, Any]:
        session = {
            "service": self.api_base,
            "identifier": self._credentials.get("HANDLE"),
            "did": body.get("did"),
            "handle": body.get("handle"),
            "accessJwt": body.get("accessJwt"),
            "refreshJwt": body.get("refreshJwt"),
        }
        if not session["did"] or not session["accessJwt"]:
            raise Fatal(_("bluesky answered the login without a session: the API may have changed"))
        self.client.add_secret(session["accessJwt"], session["refreshJwt"])
        self.write_state("session", session)
        self._session = session
        return session

    def _create_session(self) -> dict[str, Any]:
        r = self.client.post(
            "/xrpc/com.atproto.server.createSession",
            json={
                "identifier": self._credentials["HANDLE"],
                "password": self._credentials["APP_PASSWORD"],
            },
            idempotent=True,
        )
        if r.status_code == 200:
            log.info("%s: new bluesky session created", self.target)
            return self._save_session(json_body(r, self.name))
        error, message = self._error(r)
        if r.status_code == 401 or error == "AuthenticationRequired":
            raise AuthFailure(
                _(
                    "bluesky refused the login for {handle} ({message}): check the handle and the "
                    "app password, then run `poster login {target}`"
                ).format(handle=self._credentials["HANDLE"], message=message or error, target=self.target)
            )
        if error == "AccountTakedown":
            raise Fatal(_("bluesky says the account was taken down"))
        raise Fatal(
            _("bluesky login failed ({status} {error}: {message})").format(
                status=r.status_code, error=error, message=message
            )
        )

    def _refresh_session(self) -> dict[str, Any]:
        session = self._session or {}
        refresh = session.get("refreshJwt")
        if refresh:
            r = self.client.post(
                "/xrpc/com.atproto.server.refreshSession",
                headers={"Authorization": f"Bearer {refresh}"},
                idempotent=True,
            )
            if r.status_code == 200:
                log.info("%s: bluesky session refreshed", self.target)
                return self._save_session(json_body(r, self.name))
        return self._create_session()

    def session(self) -> dict[str, Any]:
        return self._load_session() or self._create_session()

    @staticmethod
    def _error(response) -> tuple[str, str]:
        try:
            body = response.json()
            return str(body.get("error", "")), str(body.get("message", ""))
        except Exception:
            return "", response.text[:200]

    def _xrpc(self, method: str, nsid: str, **kwargs: Any):
        """An authenticated XRPC call; refreshes the session once on an expired token."""
        for attempt in (0, 1):
            session = self.session()
            headers = dict(kwargs.pop("headers", {}) or {})
            headers["Authorization"] = f"Bearer {session['accessJwt']}"
            r = self.client.request(method, f"/xrpc/{nsid}", headers=headers, **kwargs)
            if attempt == 0 and r.status_code in (400, 401):
                error, _message = self._error(r)
                if r.status_code == 401 or error in ("ExpiredToken", "InvalidToken"):
                    self._refresh_session()
                    kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
                    continue
            return r
        return r

    def _raise_for(self, r, action: str) -> None:
        if r.status_code == 200:
            return
        error, message = self._error(r)
        detail = f"{error}: {message}" if message else error or str(r.status_code)
        if r.status_code == 401 or error in ("ExpiredToken", "InvalidToken"):
            raise AuthFailure(
                _(
                    "bluesky rejected the session while trying to {action} ({detail}); run `poster "
                    "login {target}`"
                ).format(action=action, detail=detail, target=self.target)
            )
        if r.status_code == 413 or error == "BlobTooLarge":
            raise Fatal(_("bluesky says the image is too large ({detail})").format(detail=detail))
        if error == "RateLimitExceeded":
            raise RateLimited(_("bluesky rate limit reached while trying to {action}").format(action=action))
        raise Fatal(
            _("bluesky refused to {action} ({status} {detail})").format(
                action=action, status=r.status_code, detail=detail
            )
        )

    # -- posting ---------------------------------------------------------------------
    def _prepare(self, item: MediaItem) -> tuple[bytes, str]:
        data = strip_metadata(item.data)
        mime = item.mime
        limit = self.max_blob()
        if len(data) > limit:
            try:
                data, mime = shrink_to(data, limit)
            except Exception as exc:
                raise Fatal(
                    _(
                        "{file} is {size} bytes, over bluesky's {limit}-byte limit, and could not be "
                        "shrunk ({error})"
                    ).format(file=item.filename, size=len(item.data), limit=limit, error=exc)
                ) from None
            data = strip_metadata(data)
        return data, mime

    def _upload(self, item: MediaItem) -> dict[str, Any]:
        data, mime = self._prepare(item)
        r = self._xrpc(
            "POST", "com.atproto.repo.uploadBlob", data=data, headers={"Content-Type": mime}, idempotent=True
        )
        self._raise_for(r, _("upload {file}").format(file=item.filename))
        blob = json_body(r, self.name).get("blob")
        if not isinstance(blob, dict):
            raise Fatal(_("bluesky answered the upload without a blob reference"))
        return blob

    def _pending(self) -> dict[str, str]:
        return dict(self.read_state("pending") or {})

    def _remember(self, key: str, rkey: str | None) -> None:
        pending = self._pending()
        if rkey is None:
            pending.pop(key, None)
        else:
            pending[key] = rkey
        self.write_state("pending", pending)

    def _url(self, session: dict[str, Any], rkey: str) -> str:
        return f"{self.web_base}/profile/{session.get('handle') or session['did']}/post/{rkey}"

    def _post(self, post: Post) -> PostResult:
        caps = self.capabilities
        session = self.session()
        suffix = ""
        link = post.options.get("link") if self.link_back else None
        if isinstance(link, str) and link:
            suffix = link
        text, trimmed = compose(
            post.caption or post.title,
            post.tags,
            limit=caps.text_length,
            measure=grapheme_length,
            suffix=suffix,
        )
        if trimmed:
            log.warning(
                "%s",
                _("{target}: text trimmed to {limit} graphemes").format(
                    target=self.target, limit=caps.text_length
                ),
            )
        media = post.media[: caps.images_per_post]
        if len(post.media) > len(media):
            log.warning(
                "%s",
                _("{target}: bluesky takes {limit} images per post; the rest are not posted").format(
                    target=self.target, limit=caps.images_per_post
                ),
            )
        for _attempt in (0, 1):
            record = self._record(post, text, media)
            result = self._create(post, session, record)
            if result is not None:
                return result
        raise Fatal(_("bluesky kept refusing the images as too large"))

    def _record(self, post: Post, text: str, media: tuple[MediaItem, ...]) -> dict[str, Any]:
        images = []
        for item in media:
            blob = self._upload(item)
            entry: dict[str, Any] = {"image": blob, "alt": (item.alt or "")[:2000]}
            if item.width > 0 and item.height > 0:
                entry["aspectRatio"] = {"width": item.width, "height": item.height}
            images.append(entry)
        record: dict[str, Any] = {
            "$type": POST_NSID,
            "text": text,
            "createdAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "embed": {"$type": "app.bsky.embed.images", "images": images},
        }
        facets = bluesky_facets(text)
        if facets:
            record["facets"] = facets
        if self.langs:
            record["langs"] = self.langs
        label = self.labels.get(post.rating)
        if label:
            record["labels"] = {
                "$type": "com.atproto.label.defs#selfLabels",
                "values": [{"val": label}],
            }
        return record

    def _create(self, post: Post, session: dict[str, Any], record: dict[str, Any]):
        """Create the record; None when the PDS wants smaller blobs (limit learned)."""
        rkey = self._pending().get(post.key) or make_tid()
        self._remember(post.key, rkey)
        r = self._xrpc(
            "POST",
            "com.atproto.repo.createRecord",
            json={"repo": session["did"], "collection": POST_NSID, "rkey": rkey, "record": record},
            idempotent=True,  # the fixed rkey makes a repeat fail instead of duplicate
            creates=True,
        )
        if r.status_code != 200:
            existing = self._get_record(session, rkey)
            if existing is not None:  # an earlier attempt did create it
                self._remember(post.key, None)
                return existing
            _error, message = self._error(r)
            m = _BLOB_TOO_BIG.search(message)
            if m and int(m.group(1)) < self.max_blob():
                log.warning(
                    "%s",
                    _("{target}: this PDS accepts blobs up to {limit} bytes; shrinking and retrying").format(
                        target=self.target, limit=m.group(1)
                    ),
                )
                limits = self.read_state("limits") or {}
                limits["max_blob"] = int(m.group(1))
                self.write_state("limits", limits)
                return None
            self._raise_for(r, _("create the post"))
        uri = json_object(r, self.name, creates=True).get("uri")
        if not isinstance(uri, str) or not uri.endswith(f"/{rkey}"):
            raise no_post_id(self.name, _("uri of record {rkey}").format(rkey=rkey))
        self._remember(post.key, None)
        return PostResult.posted(uri, self._url(session, rkey))

    def _get_record(self, session: dict[str, Any], rkey: str) -> PostResult | None:
        r = self.client.get(
            "/xrpc/com.atproto.repo.getRecord",
            params={"repo": session["did"], "collection": POST_NSID, "rkey": rkey},
        )
        if r.status_code == 200:
            body = json_body(r, self.name)
            return PostResult.posted(body.get("uri", ""), self._url(session, rkey))
        error, _message = self._error(r)
        if r.status_code in (400, 404) and error in ("RecordNotFound", "InvalidRequest", ""):
            return None
        raise Retryable(
            _("bluesky could not say whether the post exists ({status})").format(status=r.status_code)
        )

    def _find_existing(self, post: Post) -> tuple[Existence, PostResult | None]:
        state = self.read_state("pending")
        if state is None:
            return Existence.UNKNOWN, None
        rkey = state.get(post.key)
        if not rkey:
            return Existence.ABSENT, None  # the key is written before any create call
        found = self._get_record(self.session(), rkey)
        if found is not None:
            return Existence.EXISTS, found
        return Existence.ABSENT, None

    def _check(self) -> CheckResult:
        r = self._xrpc("GET", "com.atproto.server.getSession")
        self._raise_for(r, _("check the session"))
        body = json_body(r, self.name)
        return CheckResult(
            True,
            _("logged in as {account} ({did}) on {api_base}").format(
                account=body.get("handle"), did=body.get("did"), api_base=self.api_base
            ),
        )
