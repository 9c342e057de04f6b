"""The one HTTP seam every network adapter goes through.

`HttpClient` wraps a `requests.Session` with:

* timeouts on every call;
* bounded retries with exponential backoff and jitter on network errors and 5xx answers —
  for requests that are safe to repeat. A request that creates something (`idempotent=False`)
  is only repeated when it surely did not reach the server (connection refused, 429, 503);
  any other failure is reported as *ambiguous*, because the post may exist;
* 429 handling: `Retry-After` (seconds or HTTP date), `x-rate-limit-reset` (epoch seconds,
  X), `X-RateLimit-Reset` (ISO 8601, Mastodon) and `ratelimit-reset` are honoured; short waits
  are slept in place, long ones are raised as `RateLimited` with `retry_at` so the scheduler
  comes back later;
* a token-refresh hook called once on 401;
* masking of every known secret in log lines and exception text.

Adapters raise `PlatformError` (or let these errors through) inside `HttpAdapter._post`;
`HttpAdapter.post` turns all of them into a `PostResult`, so expected failures never raise.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import requests

from poster.errors import ConfigError
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
    """A `requests.Session` with timeouts, bounded retries, 429 handling and secret masking."""

    def __init__(
        self,
        base_url: str,
        *,
        secrets: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        timeout: float | tuple[float, float] = (10.0, 60.0),
        max_retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        max_inline_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        on_unauthorized: Callable[[HttpClient], bool] | None = None,
        session: requests.Session | None = None,
        platform: str = "server",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._secrets: set[str] = {s for s in secrets if s}
        _register_global(self._secrets)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        if headers:
            self.session.headers.update(headers)
        if auth is not None:
            self.session.auth = auth
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_inline_wait = max_inline_wait
        self.sleep = sleep
        self.on_unauthorized = on_unauthorized
        self.platform = platform

    # -- masking
    def add_secret(self, *values: str | None) -> None:
        new = {v for v in values if v}
        self._secrets.update(new)
        _register_global(new)

    def mask(self, text: str) -> str:
        return mask(str(text), self._secrets)

    # -- requests
    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def _delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * (0.5 + random.random() / 2)  # jitter: 50–100 % of the step

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool | None = None,
        ok: Iterable[int] = (),
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request; return the response for any status that is not retried.

        `idempotent` defaults to True for GET/HEAD/PUT/DELETE and False for POST/PATCH.
        5xx/network failures are retried (idempotent requests only) up to `max_retries`, then
        raised as `NetworkFailure` (or an ambiguous `Retryable` for non-idempotent ones).
        429 is retried in place while the wait is short, then raised as `RateLimited`.
        The caller handles 4xx answers itself (they are platform-specific).
        """
        if idempotent is None:
            idempotent = method.upper() in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
        url = self.url(path)
        kwargs.setdefault("timeout", self.timeout)
        refreshed = False
        attempt = 0
        shown = self.mask(f"{method.upper()} {url.split('?')[0]}")
        while True:
            try:
                response = self.session.request(method, url, **kwargs)
            except requests.RequestException as exc:
                reason = self.mask(f"{type(exc).__name__}: {exc}")
                safe = idempotent or _surely_not_sent(exc)
                if safe and attempt < self.max_retries:
                    delay = self._delay(attempt)
                    log.warning("%s failed (%s); retry in %.1fs", shown, reason, delay)
                    self.sleep(delay)
                    attempt += 1
                    continue
                if not safe:
                    raise Retryable(
                        f"{self.platform} did not answer {shown} ({reason}); the post may or may not exist",
                        ambiguous=True,
                    ) from None
                raise NetworkFailure(
                    f"cannot reach {self.platform}: {reason} (after {attempt + 1} attempts)"
                ) from None

            status = response.status_code
            log.debug("%s -> %s", shown, status)
            if status in set(ok):
                return response

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
                    log.warning("%s rate limited; waiting %.1fs", shown, wait)
                    self.sleep(wait)
                    attempt += 1
                    continue
                when = retry_at.isoformat(timespec="seconds") if retry_at else "later"
                detail = self.mask(_short_body(response, 120))
                raise RateLimited(
                    f"{self.platform} rate limit reached ({detail or 'HTTP 429'}); try again at {when}",
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
                        log.warning("%s answered %s; retry in %.1fs", shown, status, delay)
                        self.sleep(delay)
                        attempt += 1
                        continue
                detail = self.mask(_short_body(response))
                if not retry_ok:
                    raise Retryable(
                        f"{self.platform} answered {status} to {shown}: {detail}; the post "
                        "may or may not exist",
                        status=status,
                        ambiguous=True,
                    )
                raise NetworkFailure(
                    f"{self.platform} answered {status} (server error) after "
                    f"{attempt + 1} attempts: {detail}",
                    status=status,
                    retry_at=parse_retry_at(response.headers),
                )
            return response

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


def json_body(response: requests.Response, platform: str) -> Any:
    """The decoded JSON body, or a `Fatal` saying the platform answered something else."""
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        raise Fatal(
            f"{platform} answered {response.status_code} with something that is not JSON "
            f"({response.headers.get('Content-Type', 'no content type')}): the API may have "
            "changed"
        ) from None


# ------------------------------------------------------------------------ adapter helper
class HttpAdapter(Adapter):
    """Common ground for adapters that talk HTTP: `api_base`, credentials, the client.

    Subclasses set `default_api_base` and implement `_post(post)` (raising `PlatformError`
    for expected failures) and optionally `_check()`. Construction makes no network call.
    """

    default_api_base: ClassVar[str] = ""
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
                f"targets.{target}.api_base: must be an http:// or https:// URL, not {api_base!r}"
            )
        self.api_base = api_base.rstrip("/")
        timeout = self.settings.get("timeout", 60)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise ConfigError(f"targets.{target}.timeout: must be a positive number of seconds")
        self._timeout = float(timeout)
        mi = self.settings.get("min_interval")
        if mi is not None and (not isinstance(mi, int | float) or isinstance(mi, bool) or mi < 0):
            raise ConfigError(f"targets.{target}.min_interval: must be seconds ≥ 0")
        self._client: HttpClient | None = None

    # -- credentials
    def missing_credentials(self) -> list[str]:
        return [f for f in self.credential_fields if not self._credentials.get(f)]

    def _no_credentials_message(self) -> str:
        missing = self.missing_credentials()
        names = ", ".join(env_name(self.target, f) for f in missing)
        return f"no credentials for target {self.target}: run `poster login {self.target}` or set {names}"

    def secrets(self) -> list[str]:
        return [v for v in self._credentials.values() if v]

    # -- client
    def make_client(self, **overrides: Any) -> HttpClient:
        options: dict[str, Any] = {
            "secrets": self.secrets(),
            "timeout": (min(10.0, self._timeout), self._timeout),
            "platform": self.name,
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
            return PostResult.fatal("nothing to post: the job has no rendered image")
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
        if existence is Existence.ABSENT:
            # "Not found" a moment after a timed-out create proves nothing: the request may
            # still land. The dispatcher looks again once it no longer can (timeout + margin).
            return PostResult.uncertain(
                self.mask(exc.message.split("; the post may")[0])
                + "; not visible yet, poster will look again before posting anything"
            )
        return PostResult.uncertain(
            self.mask(exc.message)
            + f"; check the {self.name} account, then run `poster confirm` for this job"
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
        return CheckResult(True, "nothing to check")

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
            f"{platform} refused the credentials (401) while trying to {action}: {detail}; "
            "log in again with `poster login`",
            status=status,
        )
    if status == 403:
        return Fatal(f"{platform} forbade {action} (403): {detail}", status=status)
    if status == 413:
        return Fatal(f"{platform} says the upload is too large (413): {detail}", status=status)
    if status == 408:
        return Retryable(f"{platform} timed out while trying to {action}", status=status)
    return Fatal(f"{platform} refused to {action} ({status}): {detail}", status=status)


__all__ = [
    "AuthFailure",
    "Fatal",
    "HttpAdapter",
    "HttpClient",
    "NetworkFailure",
    "PlatformError",
    "PostStatus",
    "RateLimited",
    "Retryable",
    "http_status_error",
    "json_body",
    "parse_retry_at",
]
