"""Sidecar files (`NAME.toml`, or `post.toml` inside a multi-image folder): what to say with a
post. An invalid sidecar holds its artwork back with the reason (poster.outbox) rather than
post it without the intended caption or age rating; unknown keys are reported by name.

Every value is checked here, once, so nothing later (planning, the ledger, `status`) can meet
a value it cannot handle: `at` must be a date-time with its UTC offset within years
2000–2999 (a date like 9999-12-31T23:59:59-12:00 cannot even be converted to UTC).
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from poster.errors import InputError
from poster.i18n import _, ngettext

# The range a sidecar `at` may take: wide enough for any real release date (and a date in the
# past, which means "as soon as possible"), narrow enough that adding a target's delay,
# converting to any time zone and writing it as ISO 8601 can never overflow.
AT_MIN = datetime(2000, 1, 1, tzinfo=UTC)
AT_MAX = datetime(3000, 1, 1, tzinfo=UTC)


class Sidecar(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    title: str = Field("", max_length=500)
    caption: str = Field("", max_length=20000)
    tags: tuple[str, ...] = Field((), max_length=100)
    alt: str | tuple[str, ...] = ""
    rating: Literal["general", "r18", "r18g"] = "general"
    targets: tuple[str, ...] | None = None
    at: datetime | None = None
    ai_generated: bool | None = None  # None: not stated (pixiv's AI flag is only set when told)
    link: str | None = Field(None, pattern=r"^https?://\S+$", max_length=2000)  # for link_back targets

    @field_validator("at", mode="before")
    @classmethod
    def _written_as_a_date(cls, v: object) -> object:
        # pydantic would read a number as seconds since 1970: nobody writes a date that way
        if isinstance(v, bool | int | float):
            raise ValueError(_("write a date-time with its UTC offset, e.g. 2026-11-22T19:00:00+09:00"))
        return v

    @field_validator("at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return v
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError(_("needs a UTC offset, e.g. 2026-11-22T19:00:00+09:00"))
        try:
            in_range = AT_MIN <= v.astimezone(UTC) < AT_MAX
        except OverflowError:  # e.g. 9999-12-31T23:59:59-12:00 is in the year 10000 in UTC
            in_range = False
        if not in_range:
            raise ValueError(
                _("{value} is out of range: use a date between {first} and {last} (UTC)").format(
                    value=v.isoformat(), first="2000-01-01", last="2999-12-31"
                )
            )
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(t.strip().lstrip("#") for t in v if t.strip().lstrip("#"))

    def alt_for(self, idx: int) -> str:
        if isinstance(self.alt, str):
            return self.alt
        return self.alt[idx] if idx < len(self.alt) else ""


KNOWN_KEYS = frozenset(Sidecar.model_fields)


def parse(text: bytes, name: str, *, max_bytes: int) -> tuple[Sidecar, list[str]]:
    """Returns the sidecar and warnings (unknown keys). Raises InputError naming the file."""
    if len(text) > max_bytes:
        # only max_bytes + 1 bytes of a larger file are read: say "over", not a size
        raise InputError(
            _("{file}: sidecar is over the {limit}-byte limit (intake.max_sidecar_bytes)").format(
                file=name, limit=max_bytes
            )
        )
    try:
        data: dict[str, Any] = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(_("{name}: sidecar is not UTF-8 text").format(name=name)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(_("{name}: invalid TOML: {error}").format(name=name, error=exc)) from None
    unknown = sorted(set(data) - KNOWN_KEYS)
    warnings = (
        [
            ngettext(
                "{name}: unknown key ignored: {keys}", "{name}: unknown keys ignored: {keys}", len(unknown)
            ).format(name=name, keys=", ".join(unknown))
        ]
        if unknown
        else []
    )
    try:
        return Sidecar.model_validate(data), warnings
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise InputError(_("{file}: {key}: {problem}").format(file=name, key=loc, problem=msg)) from None
    except (ValueError, TypeError, OverflowError) as exc:  # a value no validator foresaw
        raise InputError(
            _("{file}: invalid value: {problem}").format(file=name, problem=f"{type(exc).__name__}: {exc}")
        ) from None
