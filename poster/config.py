"""Load and validate the TOML config. Every error names the file, the key and what is wrong.

A `Config` is a plain value passed to whoever needs it: there is no global config object,
so tests (and two configs in one process) never leak into each other.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from poster.errors import ConfigError

CONFIG_NAME = "config.toml"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IntakeConfig(_Strict):
    stable_seconds: float = Field(5.0, ge=0, le=3600)
    scan_interval: float = Field(30.0, ge=1, le=86400)
    max_sidecar_bytes: int = Field(65536, ge=256, le=10_000_000)
    max_image_pixels: int = Field(100_000_000, ge=1_000_000, le=1_000_000_000)
    max_file_bytes: int = Field(200_000_000, ge=1_000_000)


class RenderConfig(_Strict):
    background: str = "#ffffff"  # alpha is composited on this colour
    jpeg_quality: int = Field(90, ge=50, le=100)

    @field_validator("background")
    @classmethod
    def _colour(cls, v: str) -> str:
        if not _COLOR_RE.match(v):
            raise ValueError("must be a colour like '#ffffff'")
        return v.lower()


class StepConfig(BaseModel):
    """One protection step: `use` names it; the other keys are its parameters, checked by the
    step itself when the policy is built."""

    model_config = ConfigDict(extra="allow", frozen=True)
    use: str

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class PolicyConfig(_Strict):
    steps: tuple[StepConfig, ...] = ()
    format: Literal["auto", "jpeg", "png", "webp"] = "auto"
    jpeg_quality: int | None = Field(None, ge=50, le=100)
    # extra (long edge, JPEG quality) re-encodings the hidden ID must survive, besides the
    # platform's declared ones (checked by poster.policies.build)
    verify: tuple[tuple[int, int], ...] = ()


class TargetConfig(BaseModel):
    """A target is one account on one platform. Adapter-specific keys (e.g. `instance`,
    `visibility`, `mode`) are kept and checked by the adapter."""

    model_config = ConfigDict(extra="allow", frozen=True)
    adapter: str
    policy: str = "light"
    api_base: str | None = None
    enabled: bool = True
    delay_minutes: float = Field(0.0, ge=0, le=7 * 24 * 60)  # stagger cross-posts
    max_attempts: int = Field(5, ge=1, le=100)  # tries before a retryable error fails the job
    # When this target posts (see poster.schedule): slots like "mon-fri 19:00,21:00" in the
    # top-level time zone; empty means "as soon as pacing allows".
    slots: tuple[str, ...] = ()
    min_interval_minutes: float = Field(5.0, ge=0, le=7 * 24 * 60)  # between two posts
    daily_cap: int | None = Field(None, ge=1, le=10_000)  # posts per rolling 24 hours

    @field_validator("slots")
    @classmethod
    def _slots(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from poster.schedule import parse_slot

        for text in v:
            parse_slot(text)  # raises ValueError naming what is wrong
        return v

    def settings(self) -> dict[str, Any]:
        return self.model_dump(mode="python")


# Public RFC 3161 time-stamping authorities used when a config has no [proof] table: free, no
# account. Where trust in each comes from (a shipped root, or a root fetched once and pinned by
# fingerprint) is timestamps.DEFAULT_TSAS, same order; poster/data/tsa/README.md says how each
# was checked. Only SHA-256 hashes are sent to them.
DEFAULT_TSA_URLS: tuple[str, ...] = ("https://freetsa.org/tsr", "http://timestamp.identrust.com")


def _default_tsa_urls() -> tuple[str, ...]:
    return DEFAULT_TSA_URLS  # read when a config is loaded, so tests can switch it off


class ProofConfig(_Strict):
    """RFC 3161 time-stamps for originals and the ledger head (poster.timestamps)."""

    tsa_urls: tuple[str, ...] = Field(default_factory=_default_tsa_urls)  # tried in order; () = off
    tsa_ca_file: Path | None = None  # extra trust anchors (PEM), e.g. a self-hosted TSA's root

    @field_validator("tsa_urls")
    @classmethod
    def _urls(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from urllib.parse import urlsplit

        for url in v:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return v

    @field_validator("tsa_ca_file")
    @classmethod
    def _ca_file(cls, v: Path | None) -> Path | None:
        if v is None:
            return v
        from cryptography import x509

        try:
            found = x509.load_pem_x509_certificates(v.read_bytes())
        except OSError as exc:
            raise ValueError(f"{v}: cannot read: {exc.strerror}") from None
        except ValueError:
            raise ValueError(f"{v}: not a PEM file of certificates") from None
        if not found:
            raise ValueError(f"{v}: no certificates in it")
        return v


class Config(_Strict):
    path: Path
    data_dir: Path
    artist: str = ""
    timezone: str | None = None
    intake: IntakeConfig = IntakeConfig()
    render: RenderConfig = RenderConfig()
    targets: dict[str, TargetConfig]
    policies: dict[str, PolicyConfig] = {}
    proof: ProofConfig = Field(default_factory=ProofConfig)

    @field_validator("targets")
    @classmethod
    def _target_names(cls, v: dict[str, TargetConfig]) -> dict[str, TargetConfig]:
        if not v:
            raise ValueError("define at least one target, e.g. [targets.x]")
        for name in v:
            if not _NAME_RE.match(name):
                raise ValueError(f"target name {name!r}: use letters, digits, '-' and '_'")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r}") from None
        return v or None

    @model_validator(mode="after")
    def _policies_exist(self) -> Config:
        from poster.platforms import adapter_class
        from poster.platforms import names as adapter_names
        from poster.policies import BUILTIN_POLICIES

        known = set(BUILTIN_POLICIES) | set(self.policies)
        adapters = adapter_names()
        for name, target in self.targets.items():
            if target.adapter not in adapters:
                raise ValueError(
                    f"targets.{name}.adapter: unknown adapter {target.adapter!r} "
                    f"(known: {', '.join(adapters)})"
                )
            allowed = adapter_class(target.adapter).settings_keys
            unknown = sorted(set(target.model_extra or {}) - (allowed or set()))
            if allowed is not None and unknown:
                raise ValueError(
                    f"targets.{name}.{unknown[0]}: unknown key for the {target.adapter} adapter "
                    "(a top-level key must come before the first [table])"
                )
            if target.policy not in known:
                raise ValueError(
                    f"targets.{name}.policy: unknown policy {target.policy!r} "
                    f"(known: {', '.join(sorted(known))})"
                )
        return self

    @property
    def db_path(self) -> Path:
        return self.data_dir / "poster.db"

    @property
    def outbox(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def archive(self) -> Path:
        return self.data_dir / "archive"

    def enabled_targets(self) -> dict[str, TargetConfig]:
        return {n: t for n, t in self.targets.items() if t.enabled}


def _loc(err: dict[str, Any]) -> str:
    parts = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "model-"))]
    return ".".join(parts)


def _one_line(path: Path, exc: ValidationError) -> str:
    err = exc.errors()[0]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling against config.example.toml)"
    loc = _loc(err)
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{path}: {loc + ': ' if loc else ''}{msg}{more}"


def parse(path: Path, data: dict[str, Any]) -> Config:
    data = dict(data)
    raw_dir = data.pop("data_dir", "queue")
    if not isinstance(raw_dir, str) or not raw_dir:
        raise ConfigError(f"{path}: data_dir: must be a non-empty string path")
    data_dir = Path(os.path.expanduser(raw_dir))
    if not data_dir.is_absolute():
        data_dir = path.parent / data_dir
    proof = data.get("proof")
    if isinstance(proof, dict) and isinstance(proof.get("tsa_ca_file"), str):
        ca = Path(os.path.expanduser(proof["tsa_ca_file"]))
        data["proof"] = {**proof, "tsa_ca_file": ca if ca.is_absolute() else path.parent / ca}
    try:
        return Config(path=path, data_dir=data_dir.resolve(), **data)
    except ValidationError as exc:
        raise ConfigError(_one_line(path, exc)) from None
    except TypeError as exc:  # e.g. a top-level key that is a reserved field name
        raise ConfigError(f"{path}: {exc}") from None


def load(path: Path) -> Config:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (create one with `poster init DIR`)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if "path" in data:
        raise ConfigError(f"{path}: path: unknown key (check the spelling against config.example.toml)")
    return parse(path.resolve(), data)


def find(explicit: Path | None) -> Path:
    """`--config PATH`, else ./config.toml, else the user's config dir."""
    if explicit is not None:
        return explicit
    local = Path.cwd() / CONFIG_NAME
    if local.exists():
        return local
    from platformdirs import user_config_path

    user = user_config_path("poster") / CONFIG_NAME
    if user.exists():
        return user
    raise ConfigError(
        f"no config found ({local} or {user}): create one with `poster init DIR` "
        "and pass --config DIR/config.toml"
    )
