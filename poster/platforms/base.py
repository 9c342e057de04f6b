"""The adapter interface: what every platform module declares and returns.

An adapter declares its `Capabilities` as a class attribute so the render step can fit every
image to them before posting (an image is never rejected for size or format), and returns a
`PostResult` that says *why* when it did not post. Expected platform errors (auth, rate
limits, oversize, a changed web page) never raise: they become `retryable` or `fatal` results.
Constructing an adapter makes no network call.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from poster.i18n import _


@dataclass(frozen=True)
class Capabilities:
    """What a platform accepts. The render step reads this; nothing else guesses limits."""

    max_bytes: int
    max_edge: int | None = None  # longest edge in pixels
    max_pixels: int | None = None
    formats: tuple[str, ...] = ("JPEG", "PNG")  # Pillow format names, preferred first
    keeps_png: bool = True  # False when the platform turns (large) PNGs into JPEG anyway
    images_per_post: int = 1
    text_length: int | None = None
    alt_text: bool = False
    alt_text_length: int | None = None
    min_interval: float = 0.0  # seconds between two posts of one account
    # What the platform does to an upload, as (long edge, JPEG quality) pairs the render
    # step simulates to check that the hidden ID survives. Empty: stored as uploaded.
    reencodes: tuple[tuple[int, int], ...] = ()


class PostStatus(enum.StrEnum):
    POSTED = "posted"
    RETRYABLE = "retryable"
    FATAL = "fatal"
    # The post may exist, or waits on the user (hand-off mode): never re-post automatically;
    # the job waits for `poster confirm JOB --posted URL|--not-posted`.
    UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class PostResult:
    """The outcome of one post attempt. `reason` is a one-line, secret-free explanation."""

    status: PostStatus
    remote_id: str | None = None
    url: str | None = None
    reason: str | None = None
    retry_at: datetime | None = None  # when the platform said to come back (UTC, aware)
    media_urls: tuple[str, ...] = ()

    @classmethod
    def posted(cls, remote_id: str, url: str, media_urls: tuple[str, ...] = ()) -> PostResult:
        return cls(PostStatus.POSTED, remote_id=remote_id, url=url, media_urls=media_urls)

    @classmethod
    def retryable(cls, reason: str, retry_at: datetime | None = None) -> PostResult:
        return cls(PostStatus.RETRYABLE, reason=reason, retry_at=retry_at)

    @classmethod
    def fatal(cls, reason: str) -> PostResult:
        return cls(PostStatus.FATAL, reason=reason)

    @classmethod
    def uncertain(cls, reason: str) -> PostResult:
        return cls(PostStatus.UNCERTAIN, reason=reason)


class Existence(enum.StrEnum):
    """Answer to "did an interrupted post go out?" (see `Adapter.find_existing`)."""

    EXISTS = "exists"
    ABSENT = "absent"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class MediaItem:
    """One rendered, protected image ready to upload."""

    data: bytes
    mime: str  # image/jpeg, image/png, ...
    filename: str
    width: int
    height: int
    alt: str = ""
    mark_id: str = ""  # the hidden ID (hex) in these pixels; for records, never sent


@dataclass(frozen=True)
class Post:
    """Everything an adapter needs for one post. `key` is unique per job and stable across
    retries, so adapters can use it as an idempotency key or a lookup marker."""

    key: str
    title: str
    caption: str
    tags: tuple[str, ...]
    rating: str  # general | r18 | r18g
    media: tuple[MediaItem, ...]
    options: Mapping[str, Any] = field(default_factory=dict)  # sidecar extras, e.g. ai flag


@dataclass(frozen=True)
class CheckResult:
    """Outcome of `poster doctor` for one target: ok, plus a plain-words message."""

    ok: bool
    message: str


class Adapter(ABC):
    """Base class of every platform adapter.

    Subclasses set `name`, `capabilities` and `credential_fields` (the names looked up as
    `POSTER_<TARGET>_<FIELD>` or in the keyring), and implement `post`.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    credential_fields: ClassVar[tuple[str, ...]] = ()
    # Target keys this adapter reads besides the common ones (adapter, policy, api_base, ...);
    # config load rejects any other key as a typo. None: the adapter checks its own settings.
    settings_keys: ClassVar[frozenset[str] | None] = None

    def __init__(
        self,
        target: str,
        settings: Mapping[str, Any],
        credentials: Mapping[str, str],
        *,
        data_dir: Path,
    ) -> None:
        self.target = target
        self.settings = dict(settings)
        self._credentials = dict(credentials)
        self.data_dir = data_dir

    def effective_capabilities(self) -> Capabilities:
        """Capabilities for this account. Adapters that can learn real server limits cheaply
        (and have cached them) may override; the default is the declared class attribute."""
        return self.capabilities

    @abstractmethod
    def post(self, post: Post) -> PostResult:
        """Publish `post`. Never raises for an expected platform error."""

    def find_existing(self, post: Post) -> tuple[Existence, PostResult | None]:
        """After a crash during `post`: can the adapter prove whether the post exists?

        Return (EXISTS, a posted result), (ABSENT, None) or (UNKNOWN, None). The default is
        UNKNOWN, which leaves the job `uncertain` for the user to confirm.
        """
        return Existence.UNKNOWN, None

    def check(self) -> CheckResult:
        """One cheap authenticated call, for `poster doctor`."""
        return CheckResult(True, _("nothing to check"))

    def __repr__(self) -> str:  # never show credentials
        return f"<{type(self).__name__} target={self.target!r}>"
