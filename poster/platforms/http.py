"""The one HTTP seam every network adapter goes through.

`HttpClient` wraps a `requests.Session` with:

* **one origin**: a client talks only to the scheme, host and port of its `base_url` (the
  target's `api_base`). A URL elsewhere is refused before anything is sent, redirects are
  never followed to another origin (they are an error naming the other server), and
  same-origin redirects only for an adapter that declares them (`same_origin_redirects`).
  Credential cookies are kept out of the session's jar and added only to those requests.
  So a credential — a header, a body field, a cookie — can only reach the server the user
  configured;
* **an overall deadline** per request, covering connect, send and the whole answer: a
  watchdog shuts the socket down when it passes, so a server trickling its status line,
  headers or body cannot hold a run (a per-read timeout alone restarts with every byte).
  Uploads get extra time for their size (`UPLOAD_FLOOR_RATE`). Only name resolution is left
  to the system resolver's own timeouts (it cannot be interrupted);
* **a size cap** on every answer, read as a stream and dropped at the limit for its kind
  (`ANSWER_LIMITS`), so a huge answer costs neither memory nor time;
* bounded retries with exponential backoff and jitter on network errors and 5xx answers —
  for requests that are safe to repeat. A request that creates something (`creates=True`,
  the default for non-idempotent methods) is only repeated when it surely did not reach the
  server (connection refused, 429, 503); any other failure — no answer, 5xx, a redirect, a
  deadline hit, an over-long answer — is raised as `Ambiguous`, because the post may exist;
* 429 handling: `Retry-After` (seconds or HTTP date), `x-rate-limit-reset` (epoch seconds,
  X), `X-RateLimit-Reset` (ISO 8601, Mastodon) and `ratelimit-reset` are honoured; short waits
  are slept in place, long ones are raised as `RateLimited` with `retry_at` so the scheduler
  comes back later;
* a token-refresh hook called once on 401;
* masking of every known secret in log lines and exception text.

Adapters raise `PlatformError` (or let these errors through) inside `HttpAdapter._post`;
`HttpAdapter.post` turns all of them into a `PostResult`, so expected failures never raise.
An `Ambiguous` error becomes `posted` (the adapter found the post) or `uncertain`, never
`failed`: a failed job can be retried, and a retry of a post that exists is a duplicate.
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters
from requests.cookies import RequestsCookieJar, create_cookie
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from poster.errors import ConfigError
from poster.i18n import _
from poster.platforms.base import (
    Adapter,
    CheckResult,
    Existence,
    Post,
    PostResult,
    PostStatus,
)
from poster.secrets import env_name, mask

log = logging.getLogger("poster.http")

USER_AGENT = "poster/0.1 (+https://github.com/; art poster)"

# ------------------------------------------------------------------ limits of one request
# Every limit of the seam, in one place. Adapters pick an answer kind per call; they never
# pass raw numbers.
MiB = 1024 * 1024
ANSWER_LIMITS: dict[str, int] = {
    # JSON answers of every API poster calls; the largest real ones (Mastodon's instance
    # document, Misskey's meta, a list of drive files) are tens of kilobytes
    "api": 1 * MiB,
    # web pages read for a token (pixiv's upload page: a few hundred kilobytes of HTML with
    # its __NEXT_DATA__ script)
    "page": 8 * MiB,
}
# An upload gets `deadline + body bytes / UPLOAD_FLOOR_RATE` seconds: the slowest uplink
# poster waits for (512 kbit/s), so a 5 MB image on a slow line is not cut off while a
# stalled request still ends.
UPLOAD_FLOOR_RATE = 64 * 1024  # bytes per second
DEFAULT_DEADLINE = 60.0  # seconds; adapters use the target's `timeout`
MAX_REDIRECTS = 5  # same-origin hops, for adapters that declare them
_CHUNK = 64 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


# --------------------------------------------------------------------------------- errors
class PlatformError(Exception):
    """An expected failure while talking to a platform; becomes a `PostResult`.

    `retryable` says whether trying again later can help; `retry_at` is when the platform
    said to come back. `ambiguous` means the post may have been created (the job must not be
    re-posted blindly). The message is one line and already secret-free.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        retry_at: datetime | None = None,
        status: int | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable
        self.retry_at = retry_at
        self.status = status
        self.ambiguous = ambiguous

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__

    def to_result(self) -> PostResult:
        if self.ambiguous:
            return PostResult.uncertain(self.message)
        if self.retryable:
            return PostResult.retryable(self.message, retry_at=self.retry_at)
        return PostResult.fatal(self.message)


class Fatal(PlatformError):
    retryable = False


class Retryable(PlatformError):
    retryable = True


class RateLimited(Retryable):
    """The platform said "too many requests"; `retry_at` is when to come back (may be None)."""


class NetworkFailure(Retryable):
    """The server could not be reached, or kept failing (5xx) after the bounded retries."""


class AuthFailure(Fatal):
    """401/403 on credentials: the user has to log in again."""


class Ambiguous(PlatformError):
    """A request that may have created the post reached the platform, and what came back
    does not say whether it did (no answer, 5xx, a redirect, a deadline hit, an over-long or
    unreadable answer, no post id). Never retried blindly: the adapter looks the post up,
    otherwise the job waits as `uncertain`. The message says what happened, nothing more."""

    retryable = False

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs["ambiguous"] = True
        super().__init__(message, **kwargs)


class RedirectRefused(Fatal):
    """The server answered with a redirect poster does not follow (to another origin, or one
    the adapter does not declare). Not retried: the same request would get the same answer."""


class OtherOrigin(Fatal):
    """A request for a URL outside the client's origin: refused before anything is sent."""


class DeadlineExceeded(NetworkFailure):
    """A request did not finish (connect, send, whole answer) within its overall deadline."""


class AnswerTooLarge(Fatal):
    """The answer was longer than the limit for its kind; reading stopped there."""


# ------------------------------------------------------------------------- header parsing
def parse_retry_at(headers: Mapping[str, str], now: datetime | None = None) -> datetime | None:
    """When a 429 (or 503) says to come back, as an aware UTC datetime; None if it doesn't."""
    now = now or datetime.now(UTC)
    lower = {k.lower(): v for k, v in headers.items()}
    # X: an exhausted 24-hour (user or app) limit outlasts the 15-minute window
    for scope in ("user", "app"):
        if lower.get(f"x-{scope}-limit-24hour-remaining", "").strip() == "0":
            reset = lower.get(f"x-{scope}-limit-24hour-reset", "").strip()
            if reset.isdigit():
                return datetime.fromtimestamp(int(reset), UTC)
    value = lower.get("retry-after")
    if value:
        value = value.strip()
        if value.isdigit():
            return now + timedelta(seconds=int(value))
        try:
            parsed = email.utils.parsedate_to_datetime(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except (TypeError, ValueError):
            pass
    for name in ("x-rate-limit-reset", "x-ratelimit-reset", "ratelimit-reset"):
        value = lower.get(name)
        if not value:
            continue
        value = value.strip()
        try:
            number = float(value)
        except ValueError:
            try:  # Mastodon: ISO 8601
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            except ValueError:
                continue
        if number > 1_000_000_000:  # epoch seconds
            return datetime.fromtimestamp(number, UTC)
        return now + timedelta(seconds=number)  # delta seconds (IETF RateLimit draft)
    return None


def _surely_not_sent(exc: requests.RequestException) -> bool:
    """True when the request never reached the server (so repeating it cannot duplicate)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = repr(exc)
        return (
            any(
                marker in text
                for marker in (
                    "NewConnectionError",
                    "Connection refused",
                    "NameResolutionError",
                    "Failed to resolve",
                    "Max retries exceeded with url",
                )
            )
            and "RemoteDisconnected" not in text
            and "Connection aborted" not in text
        )
    return False


# ---------------------------------------------------------------------------------- origin
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute URL, normalised: what "the same server" means."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: matches nothing
        port = -1
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme, -1)


def origin_text(url: str) -> str:
    """An origin for messages: scheme://host:port, never a path or query (they may carry
    tokens)."""
    scheme, host, port = origin(url)
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if _DEFAULT_PORTS.get(scheme) == port else f":{port}")


# -------------------------------------------------------------------------------- deadline
class _Deadline:
    """The overall deadline of one request. A watchdog timer shuts down every socket the
    request uses when it passes; a blocked connect, send or read then ends at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._token: contextvars.Token[_Deadline | None] | None = None

    def __enter__(self) -> _Deadline:
        self._token = _current_deadline.set(self)
        self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._timer.cancel()
        with self._lock:
            self._sockets.clear()
        if self._token is not None:
            _current_deadline.reset(self._token)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


_current_deadline: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar(
    "poster_http_deadline", default=None
)


def _shut(sock: socket.socket) -> None:
    # the plain socket's shutdown, also for a TLS socket (whose own shutdown() would drop
    # its SSL object under the thread reading it): the blocked recv/send returns at once
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watch(sock: socket.socket | None) -> None:
    deadline = _current_deadline.get()
    if deadline is not None and sock is not None:
        deadline.watch(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)  # before the TLS handshake, which the deadline covers too
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        _watch(self.sock)  # a kept-alive connection serving a new request
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        _watch(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' transport, with connections whose sockets the request deadline can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_WATCHED_POOLS)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS has its own connection classes
            manager.pool_classes_by_scheme = dict(_WATCHED_POOLS)
        return manager


def _body_size(kwargs: Mapping[str, Any]) -> int:
    """Roughly how many bytes a request sends (for its upload allowance)."""
    size = 0
    data = kwargs.get("data")
    if isinstance(data, bytes | bytearray | memoryview):
        size += len(data)
    elif isinstance(data, str):
        size += len(data.encode())
    elif isinstance(data, Mapping):
        size += sum(len(str(k)) + len(str(v)) for k, v in data.items())
    elif isinstance(data, list | tuple):
        size += sum(len(str(item)) for item in data)
    files = kwargs.get("files")
    items = files.values() if isinstance(files, Mapping) else (f[1] for f in files or ())
    for item in items:
        content = item[1] if isinstance(item, tuple) and len(item) > 1 else item
        if isinstance(content, bytes | bytearray | str):
            size += len(content)
    if kwargs.get("json") is not None:
        size += len(json.dumps(kwargs["json"], default=str))
    return size


class _TooLarge(Exception):
    pass


def _read_answer(response: requests.Response, limit: int) -> None:
    """Read the streamed body into the response (so `.text`/`.json()` work), at most `limit`
    bytes after decoding; over it, the connection is closed and `_TooLarge` raised."""
    declared = (response.headers.get("Content-Length") or "").strip()
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise _TooLarge
    body = bytearray()
    for chunk in response.iter_content(_CHUNK):
        body += chunk
        if len(body) > limit:
            response.close()
            raise _TooLarge
    response._content = bytes(body)
    response._content_consumed = True


# ---------------------------------------------------------------------------------- client
# Libraries that log credentials at DEBUG (OAuth1 signing logs consumer key, token and the
# request body): kept at WARNING whatever the user's verbosity.
for _noisy in ("oauthlib", "requests_oauthlib"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


def _register_global(values: Iterable[str]) -> None:
    """Tell the process-wide log filter (poster.logs) about secrets, when it exists."""
    try:
        from poster.logs import register_secret
    except ImportError:  # pragma: no cover - core without logging module
        return
    for value in values:
        if value and len(value) >= 4:
            register_secret(value)


class HttpClient:
    """A `requests.Session` bound to one origin, with an overall deadline and an answer cap
    per request, bounded retries, 429 handling and secret masking."""

    def __init__(
        self,
        base_url: str,
        *,
        secrets: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        timeout: float | tuple[float, float] = (10.0, 60.0),
        deadline: float = DEFAULT_DEADLINE,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        max_inline_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        on_unauthorized: Callable[[HttpClient], bool] | None = None,
        session: requests.Session | None = None,
        platform: str = "server",
        same_origin_redirects: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.origin = origin(self.base_url)
        self._secrets: set[str] = {s for s in secrets if s}
        _register_global(self._secrets)
        self.session = session or requests.Session()
        for prefix in ("http://", "https://"):
            self.session.mount(prefix, _WatchedAdapter())
        # credential cookies live here, not in the session's jar: they are added only to
        # requests the seam has checked go to the configured origin
        self._cookies = RequestsCookieJar()
        self.session.headers["User-Agent"] = USER_AGENT
        if headers:
            self.session.headers.update(headers)
        if auth is not None:
            self.session.auth = auth
        self.timeout = timeout
        self.deadline = deadline
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_inline_wait = max_inline_wait
        self.sleep = sleep
        self.on_unauthorized = on_unauthorized
        self.platform = platform
        self.same_origin_redirects = same_origin_redirects

    # -- masking
    def add_secret(self, *values: str | None) -> None:
        new = {v for v in values if v}
        self._secrets.update(new)
        _register_global(new)

    def mask(self, text: str) -> str:
        return mask(str(text), self._secrets)

    # -- credentials in cookies
    def set_cookie(self, name: str, value: str) -> None:
        """A credential cookie, sent only with this client's requests (so only to the
        configured origin) — never kept in the session's jar, where any request made with
        the session would carry it to its host on any port."""
        scheme, host, _port = self.origin
        self.add_secret(value)
        self._cookies.set_cookie(create_cookie(name, value, domain=host, path="/", secure=scheme == "https"))

    # -- requests
    def url(self, path: str) -> str:
        """The absolute URL for `path`; a URL on any other origin is refused (`OtherOrigin`)."""
        absolute = _ABSOLUTE.match(path) is not None
        url = path if absolute else f"{self.base_url}/{path.lstrip('/')}"
        if origin(url) != self.origin:
            raise OtherOrigin(
                _(
                    "refusing to send a {platform} request to {other}: poster sends requests "
                    "(and credentials) only to {configured}"
                ).format(
                    platform=self.platform,
                    other=self.mask(origin_text(url)),
                    configured=origin_text(self.base_url),
                )
            )
        return url

    def _delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * (0.5 + random.random() / 2)  # jitter: 50–100 % of the step

    def _socket_timeouts(self, deadline: float) -> tuple[float, float]:
        connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout, self.timeout)
        # connect is not watched until the socket exists: bound it by the deadline itself
        return min(connect, deadline), read

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool | None = None,
        creates: bool | None = None,
        answer: str = "api",
        ok: Iterable[int] = (),
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request; return the response for any status that is not retried.

        `idempotent` defaults to True for GET/HEAD/PUT/DELETE and False for POST/PATCH.
        `creates` (default: not idempotent) marks a call that may create the post: any
        failure after it may have reached the server is raised as `Ambiguous`.
        `answer` picks the body cap from `ANSWER_LIMITS`. `allow_redirects=False` returns a
        3xx answer to the caller (which reads it); otherwise a redirect to another origin,
        or any redirect the client was not told to follow, raises `RedirectRefused` (or
        `Ambiguous` for a create call).
        5xx/network failures are retried (idempotent requests only) up to `max_retries`, then
        raised as `NetworkFailure`. A deadline hit is not retried in place.
        429 is retried in place while the wait is short, then raised as `RateLimited`.
        The caller handles 4xx answers itself (they are platform-specific).
        """
        if idempotent is None:
            idempotent = method.upper() in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
        if creates is None:
            creates = not idempotent
        limit = ANSWER_LIMITS[answer]
        return_redirects = kwargs.pop("allow_redirects", True) is False
        kwargs.pop("timeout", None)
        kwargs.pop("stream", None)
        if kwargs.get("cookies"):
            jar = RequestsCookieJar()
            jar.update(self._cookies)
            jar.update(kwargs.pop("cookies"))
        else:
            kwargs.pop("cookies", None)
            jar = self._cookies
        url = self.url(path)
        seconds = self.deadline + _body_size(kwargs) / UPLOAD_FLOOR_RATE
        refreshed = False
        attempt = 0
        hops = 0
        while True:
            shown = self.mask(f"{method.upper()} {url.split('?')[0]}")
            deadline = _Deadline(seconds)
            with deadline:
                try:
                    response = self.session.request(
                        method,
                        url,
                        timeout=self._socket_timeouts(seconds),
                        allow_redirects=False,
                        stream=True,
                        cookies=jar,
                        **kwargs,
                    )
                    try:
                        _read_answer(response, limit)
                    except BaseException:
                        response.close()
                        raise
                    if deadline.expired:
                        # a socket shut mid-head can parse as a short, complete-looking
                        # answer (http.client takes EOF for the end of the headers)
                        response.close()
                        self._deadline_hit(shown, seconds, creates)
                except _TooLarge:
                    self._too_large(shown, limit, creates)
                except requests.RequestException as exc:
                    if deadline.expired:
                        self._deadline_hit(shown, seconds, creates)
                    reason = self.mask(f"{type(exc).__name__}: {exc}")
                    maybe_sent = not _surely_not_sent(exc)
                    if (idempotent or not maybe_sent) and attempt < self.max_retries:
                        delay = self._delay(attempt)
                        log.warning(
                            "%s",
                            _("{request} failed ({reason}); retry in {seconds:.1f}s").format(
                                request=shown, reason=reason, seconds=delay
                            ),
                        )
                        self.sleep(delay)
                        attempt += 1
                        continue
                    if creates and maybe_sent:
                        raise Ambiguous(
                            _("{platform} did not answer {request} ({reason})").format(
                                platform=self.platform, request=shown, reason=reason
                            )
                        ) from None
                    raise NetworkFailure(
                        _("cannot reach {platform}: {reason} (after {attempts} attempts)").format(
                            platform=self.platform, reason=reason, attempts=attempt + 1
                        )
                    ) from None

            status = response.status_code
            log.debug("%s -> %s", shown, status)
            if status in set(ok):
                return response

            if status in _REDIRECTS and response.headers.get("Location") and not return_redirects:
                target = urljoin(url, response.headers["Location"])
                if self._follows(method, status, target) and hops < MAX_REDIRECTS:
                    log.info("%s redirected (%s) within %s", shown, status, origin_text(url))
                    url, hops = target, hops + 1
                    continue
                self._refuse_redirect(shown, status, target, creates)

            if status == 401 and self.on_unauthorized is not None and not refreshed:
                refreshed = True
                if self.on_unauthorized(self):
                    log.info("%s: credentials refreshed, trying again", shown)
                    continue
                return response

            if status == 429:
                retry_at = parse_retry_at(response.headers)
                wait = (retry_at - datetime.now(UTC)).total_seconds() if retry_at else self._delay(attempt)
                wait = max(0.0, wait)
                if attempt < self.max_retries and wait <= self.max_inline_wait:
                    log.warning(
                        "%s",
                        _("{request} rate limited; waiting {seconds:.1f}s").format(
                            request=shown, seconds=wait
                        ),
                    )
                    self.sleep(wait)
                    attempt += 1
                    continue
                when = retry_at.isoformat(timespec="seconds") if retry_at else "later"
                detail = self.mask(_short_body(response, 120))
                raise RateLimited(
                    _("{platform} rate limit reached ({detail}); try again at {when}").format(
                        platform=self.platform, detail=detail or "HTTP 429", when=when
                    ),
                    retry_at=retry_at,
                    status=429,
                )

            if status >= 500:
                retry_ok = idempotent or status == 503
                if retry_ok and attempt < self.max_retries:
                    retry_at = parse_retry_at(response.headers) if status == 503 else None
                    delay = self._delay(attempt)
                    if retry_at:
                        delay = max(delay, (retry_at - datetime.now(UTC)).total_seconds())
                    if delay <= self.max_inline_wait:
                        log.warning(
                            "%s",
                            _("{request} answered {status}; retry in {seconds:.1f}s").format(
                                request=shown, status=status, seconds=delay
                            ),
                        )
                        self.sleep(delay)
                        attempt += 1
                        continue
                detail = self.mask(_short_body(response))
                if creates and status != 503:  # 503: the server says it did not take it
                    raise Ambiguous(
                        _("{platform} answered {status} to {request}: {detail}").format(
                            platform=self.platform, status=status, request=shown, detail=detail
                        ),
                        status=status,
                    )
                raise NetworkFailure(
                    _(
                        "{platform} answered {status} (server error) after {attempts} attempts: {detail}"
                    ).format(platform=self.platform, status=status, attempts=attempt + 1, detail=detail),
                    status=status,
                    retry_at=parse_retry_at(response.headers),
                )
            return response

    def _follows(self, method: str, status: int, target: str) -> bool:
        """A redirect is followed only within the origin, only when the adapter declared
        that its platform uses them, and only where the request stays what it was."""
        if not self.same_origin_redirects or origin(target) != self.origin:
            return False
        return status in (307, 308) or method.upper() in ("GET", "HEAD")

    def _refuse_redirect(self, shown: str, status: int, target: str, creates: bool) -> None:
        if origin(target) != self.origin:
            what = _(
                "{platform} answered {request} with a redirect ({status}) to another server, "
                "{other}; poster sends requests and credentials only to {configured} and did not "
                "follow it"
            ).format(
                platform=self.platform,
                request=shown,
                status=status,
                other=self.mask(origin_text(target)),
                configured=origin_text(self.base_url),
            )
        else:
            what = _(
                "{platform} answered {request} with a redirect ({status}) to {path}, which its "
                "API does not use; poster did not follow it (check api_base)"
            ).format(
                platform=self.platform,
                request=shown,
                status=status,
                path=self.mask(urlsplit(target).path or "/"),
            )
        if creates:  # the server got the whole request: it may have acted on it
            raise Ambiguous(what, status=status)
        raise RedirectRefused(what, status=status)

    def _deadline_hit(self, shown: str, seconds: float, creates: bool) -> None:
        what = _(
            "{platform} did not finish {request} within {seconds:.0f} s (connecting, sending "
            "and the whole answer)"
        ).format(platform=self.platform, request=shown, seconds=seconds)
        if creates:
            raise Ambiguous(what) from None
        raise DeadlineExceeded(what) from None

    def _too_large(self, shown: str, limit: int, creates: bool) -> None:
        what = _(
            "{platform} answered {request} with more than {limit} bytes, more than any answer "
            "poster expects there; reading stopped"
        ).format(platform=self.platform, request=shown, limit=limit)
        if creates:
            raise Ambiguous(what) from None
        raise AnswerTooLarge(what) from None

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)


def _short_body(response: requests.Response, limit: int = 200) -> str:
    try:
        text = response.text
    except Exception:
        return ""
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


def json_body(response: requests.Response, platform: str, *, creates: bool = False) -> Any:
    """The decoded JSON body, or an error saying the platform answered something else:
    `Fatal` (the API may have changed), or `Ambiguous` for the answer to a create call — the
    request reached the server and may have created the post."""
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        what = _("{platform} answered {status} with something that is not JSON ({content_type})").format(
            platform=platform,
            status=response.status_code,
            content_type=response.headers.get("Content-Type", "no content type"),
        )
        if creates:
            raise Ambiguous(what) from None
        raise Fatal(what + _(": the API may have changed")) from None


def json_object(response: requests.Response, platform: str, *, creates: bool = False) -> dict[str, Any]:
    """Like `json_body`, for answers that must be a JSON object."""
    body = json_body(response, platform, creates=creates)
    if isinstance(body, dict):
        return body
    what = _("{platform} answered {status} with JSON that is not an object").format(
        platform=platform, status=response.status_code
    )
    if creates:
        raise Ambiguous(what)
    raise Fatal(what + _(": the API may have changed"))


def no_post_id(platform: str, what: str) -> Ambiguous:
    """The create call was answered with success but the answer names no post."""
    return Ambiguous(
        _("{platform} accepted the request but its answer has no {what}").format(platform=platform, what=what)
    )


# ------------------------------------------------------------------------ adapter helper
class HttpAdapter(Adapter):
    """Common ground for adapters that talk HTTP: `api_base`, credentials, the client.

    Subclasses set `default_api_base` and implement `_post(post)` (raising `PlatformError`
    for expected failures) and optionally `_check()`. Construction makes no network call.
    """

    default_api_base: ClassVar[str] = ""
    # True only for a platform that documents redirects within its own server on the calls
    # the adapter makes; redirects to another origin are refused whatever this says.
    same_origin_redirects: ClassVar[bool] = False
    # settings keys every HTTP adapter accepts, besides the adapter's own ones
    common_settings: ClassVar[frozenset[str]] = frozenset(
        {"adapter", "policy", "api_base", "timeout", "min_interval"}
    )
    # Knobs tests (and impatient users) can change; class attributes so tests can patch.
    http_options: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        target: str,
        settings: Mapping[str, Any],
        credentials: Mapping[str, str],
        *,
        data_dir: Path,
    ) -> None:
        super().__init__(target, settings, credentials, data_dir=data_dir)
        api_base = self.settings.get("api_base") or self.default_api_base
        if not isinstance(api_base, str) or not api_base.startswith(("http://", "https://")):
            raise ConfigError(
                _("targets.{target}.api_base: must be an http:// or https:// URL, not {api_base!r}").format(
                    target=target, api_base=api_base
                )
            )
        self.api_base = api_base.rstrip("/")
        timeout = self.settings.get("timeout", 60)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise ConfigError(
                _("targets.{target}.timeout: must be a positive number of seconds").format(target=target)
            )
        self._timeout = float(timeout)
        mi = self.settings.get("min_interval")
        if mi is not None and (not isinstance(mi, int | float) or isinstance(mi, bool) or mi < 0):
            raise ConfigError(_("targets.{target}.min_interval: must be seconds ≥ 0").format(target=target))
        self._client: HttpClient | None = None

    # -- credentials
    def missing_credentials(self) -> list[str]:
        return [f for f in self.credential_fields if not self._credentials.get(f)]

    def _no_credentials_message(self) -> str:
        missing = self.missing_credentials()
        names = ", ".join(env_name(self.target, f) for f in missing)
        return _("no credentials for target {target}: run `poster login {target}` or set {names}").format(
            target=self.target, names=names
        )

    def secrets(self) -> list[str]:
        return [v for v in self._credentials.values() if v]

    # -- client
    def make_client(self, **overrides: Any) -> HttpClient:
        options: dict[str, Any] = {
            "secrets": self.secrets(),
            "timeout": (min(10.0, self._timeout), self._timeout),
            "deadline": self._timeout,
            "platform": self.name,
            "same_origin_redirects": self.same_origin_redirects,
        }
        options.update(self.http_options)
        options.update(overrides)
        return HttpClient(self.api_base, **options)

    @property
    def client(self) -> HttpClient:
        if self._client is None:
            self._client = self.make_client()
        return self._client

    def mask(self, text: str) -> str:
        return mask(str(text), self.secrets())

    # -- template methods
    def post(self, post: Post) -> PostResult:
        if self.missing_credentials():
            return PostResult.fatal(self._no_credentials_message())
        if not post.media:
            return PostResult.fatal(_("nothing to post: the job has no rendered image"))
        try:
            return self._post(post)
        except PlatformError as exc:
            if exc.ambiguous:
                return self._resolve_ambiguous(post, exc)
            result = exc.to_result()
            return PostResult(
                result.status,
                reason=self.mask(result.reason or ""),
                retry_at=result.retry_at,
            )

    def _resolve_ambiguous(self, post: Post, exc: PlatformError) -> PostResult:
        """The create call failed in a way that may have created the post: look it up
        rather than retry blindly (duplicates are worse than a question to the user)."""
        existence, found = self.find_existing(post)
        if existence is Existence.EXISTS and found is not None:
            return found
        what = self.mask(exc.message)
        if existence is Existence.ABSENT:
            # "Not found" a moment after a timed-out create proves nothing: the request may
            # still land. The dispatcher looks again once it no longer can (timeout + margin).
            return PostResult.uncertain(
                _("{what}; not visible yet, poster will look again before posting anything").format(what=what)
            )
        return PostResult.uncertain(
            _(
                "{what}; the post may or may not exist: check the {platform} account, then run "
                "`poster confirm` for this job"
            ).format(what=what, platform=self.name)
        )

    def _post(self, post: Post) -> PostResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self) -> CheckResult:
        if self.missing_credentials():
            return CheckResult(False, self._no_credentials_message())
        try:
            return self._check()
        except PlatformError as exc:
            return CheckResult(False, self.mask(exc.message))

    def _check(self) -> CheckResult:
        return CheckResult(True, _("nothing to check"))

    def find_existing(self, post: Post) -> tuple[Existence, PostResult | None]:
        if self.missing_credentials():
            return Existence.UNKNOWN, None
        try:
            return self._find_existing(post)
        except PlatformError:
            return Existence.UNKNOWN, None

    def _find_existing(self, post: Post) -> tuple[Existence, PostResult | None]:
        return Existence.UNKNOWN, None

    def _min_interval(self, default: float) -> float:
        value = self.settings.get("min_interval")
        return float(value) if value is not None else default

    # -- state files (tokens, cached limits): data_dir/state/, mode 0600
    def state_path(self, kind: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.target)
        return self.data_dir / "state" / f"{self.name}-{safe}{'-' + kind if kind else ''}.json"

    def read_state(self, kind: str) -> dict[str, Any] | None:
        path = self.state_path(kind)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_state(self, kind: str, data: Mapping[str, Any]) -> None:
        import os

        from poster.store import ensure_private_dir

        path = self.state_path(kind)
        ensure_private_dir(path.parent)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


def http_status_error(
    response: requests.Response, platform: str, action: str, detail: str = ""
) -> PlatformError:
    """A generic classification of a 4xx answer (adapters refine it first)."""
    status = response.status_code
    detail = detail or _short_body(response)
    if status == 401:
        return AuthFailure(
            _(
                "{platform} refused the credentials (401) while trying to {action}: {detail}; "
                "log in again with `poster login`"
            ).format(platform=platform, action=action, detail=detail),
            status=status,
        )
    if status == 403:
        return Fatal(
            _("{platform} forbade {action} (403): {detail}").format(
                platform=platform, action=action, detail=detail
            ),
            status=status,
        )
    if status == 413:
        return Fatal(
            _("{platform} says the upload is too large (413): {detail}").format(
                platform=platform, detail=detail
            ),
            status=status,
        )
    if status == 408:
        return Retryable(
            _("{platform} timed out while trying to {action}").format(platform=platform, action=action),
            status=status,
        )
    return Fatal(
        _("{platform} refused to {action} ({status}): {detail}").format(
            platform=platform, action=action, status=status, detail=detail
        ),
        status=status,
    )


__all__ = [
    "ANSWER_LIMITS",
    "Ambiguous",
    "AnswerTooLarge",
    "AuthFailure",
    "DeadlineExceeded",
    "Fatal",
    "HttpAdapter",
    "HttpClient",
    "NetworkFailure",
    "OtherOrigin",
    "PlatformError",
    "PostStatus",
    "RateLimited",
    "RedirectRefused",
    "Retryable",
    "http_status_error",
    "json_body",
    "json_object",
    "no_post_id",
    "origin",
    "parse_retry_at",
]
