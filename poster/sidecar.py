"""Sidecar files (`NAME.toml`, or `post.toml` inside a multi-image folder): what to say with a
post. Invalid sidecars fail the artwork's jobs with the reason rather than post without the
intended caption or age rating; unknown keys are reported by name."""

from __future__ import annotations

import tomllib
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from poster.errors import InputError


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

    @field_validator("at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-11-22T19:00:00+09:00")
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
        raise InputError(f"{name}: sidecar is {len(text)} bytes, over the {max_bytes}-byte limit")
    try:
        data: dict[str, Any] = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{name}: sidecar is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{name}: invalid TOML: {exc}") from None
    unknown = sorted(set(data) - KNOWN_KEYS)
    warnings = (
        [f"{name}: unknown key{'s' if len(unknown) > 1 else ''} ignored: {', '.join(unknown)}"]
        if unknown
        else []
    )
    try:
        return Sidecar(**data), warnings
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise InputError(f"{name}: {loc}: {msg}") from None
