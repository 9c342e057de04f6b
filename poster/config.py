"""Load and validate the TOML config. Every error names the file, the key and what is wrong.

A `Config` is a plain value passed to whoever needs it: there is no global config object,
so tests (and two configs in one process) never leak into each other.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tomllib
from collections.abc import Callable
from functools import cache
from importlib import resources
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

from poster.configfile import CONFIG_NAME, find  # noqa: F401  (re-exported: poster.config.find)
from poster.configsnap import DataFolder
from poster.errors import ConfigError
from poster.i18n import N_, _
from poster.slots import parse_slot

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IntakeConfig(_Strict):
    stable_seconds: float = Field(5.0, ge=0, le=3600)
    scan_interval: float = Field(30.0, ge=1, le=86400)
    max_sidecar_bytes: int = Field(65536, ge=256, le=10_000_000)
    max_image_pixels: int = Field(100_000_000, ge=1_000_000, le=1_000_000_000)
    max_file_bytes: int = Field(200_000_000, ge=1_000_000)


SIGNATURE_POSITIONS = ("auto", "bottom-right", "bottom-left", "top-right", "top-left")
WATERMARK_LOOKS = ("subtle", "standard", "strong")


class RenderConfig(_Strict):
    background: str = "#ffffff"  # alpha is composited on this colour
    jpeg_quality: int = Field(90, ge=50, le=100)
    # Defaults for every policy's signature and watermark steps (a step's own key wins).
    font: Path | None = None  # None: an installed font that has every character (poster.fonts)
    logo: Path | None = None  # the artist's logo (PNG with alpha): the watermark's motif
    watermark_look: Literal["subtle", "standard", "strong"] = "standard"
    signature_position: Literal["auto", "bottom-right", "bottom-left", "top-right", "top-left"] = "auto"
    signature_margin: float = Field(0.03, ge=0.0, le=0.25)  # fraction of the short edge
    workers: int = Field(0, ge=0, le=64)  # render processes; 0: one per core, 1: no pool

    @field_validator("background")
    @classmethod
    def _colour(cls, v: str) -> str:
        if not _COLOR_RE.match(v):
            raise ValueError(_("must be a colour like '#ffffff'"))
        return v.lower()

    @field_validator("font", "logo")
    @classmethod
    def _file(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(_("no such file: {path}").format(path=v))
        return v


class StepConfig(BaseModel):
    """One protection step: `use` names it; the other keys are its parameters, checked by the
    step itself when the policy is built."""

    model_config = ConfigDict(extra="allow", frozen=True)
    use: str

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class PolicyConfig(BaseModel):
    """A `[policies.NAME]` table. For a built-in name (or with `base`), only the keys it names
    change: `steps` and `verify` replace the built-in lists when given, and a table named
    after a step (`[policies.heavy.watermark]`) changes that step's parameters, adds the step
    if the policy lacks it, or removes it with `enabled = false` (merged by poster.policies)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    base: str | None = None  # start from this built-in policy (default: the one of this name)
    steps: tuple[StepConfig, ...] | None = None
    format: Literal["auto", "jpeg", "png", "webp"] | None = None
    jpeg_quality: int | None = Field(None, ge=50, le=100)
    # extra (long edge, JPEG quality) re-encodings the hidden ID must survive, besides the
    # platform's declared ones (checked by poster.policies.build)
    verify: tuple[tuple[int, int], ...] | None = None

    @model_validator(mode="after")
    def _step_tables(self) -> PolicyConfig:
        for name, value in (self.model_extra or {}).items():
            if not isinstance(value, dict):
                raise ValueError(
                    _("{key}: unknown key (a step's parameters go in a [policies.NAME.{key}] table)").format(
                        key=name
                    )
                )
        return self

    def step_tables(self) -> dict[str, dict[str, Any]]:
        """`[policies.NAME.STEP]` tables: step name → the parameters they set."""
        return {k: dict(v) for k, v in (self.model_extra or {}).items()}


@cache
def builtin_policies() -> dict[str, PolicyConfig]:
    """The built-in policies (`poster/data/policies.toml`, the same syntax as a config)."""
    text = resources.files("poster").joinpath("data/policies.toml").read_text(encoding="utf-8")
    return {name: PolicyConfig(**table) for name, table in tomllib.loads(text).items()}


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
    approve: bool | None = None  # None: the top-level `approve`

    @field_validator("slots")
    @classmethod
    def _slots(cls, v: tuple[str, ...]) -> tuple[str, ...]:
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
                raise ValueError(_("{url!r} is not an http:// or https:// URL").format(url=url))
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
            raise ValueError(_("{file}: cannot read: {reason}").format(file=v, reason=exc.strerror)) from None
        except ValueError:
            raise ValueError(_("{file}: not a PEM file of certificates").format(file=v)) from None
        if not found:
            raise ValueError(_("{file}: no certificates in it").format(file=v))
        return v


class Config(_Strict, DataFolder):
    path: Path
    data_dir: Path
    artist: str = ""
    timezone: str | None = None
    language: str = ""  # "" (LANG / the browser decides), "en" or "ja"
    # Nothing posts until the artist approves the rendered copy (in `poster ui` or with
    # `poster approve JOB`); a target's own `approve` wins.
    approve: bool = False
    intake: IntakeConfig = IntakeConfig()
    render: RenderConfig = RenderConfig()
    targets: dict[str, TargetConfig]
    policies: dict[str, PolicyConfig] = {}
    proof: ProofConfig = Field(default_factory=ProofConfig)
    # Where to say that something needs the artist (poster.notify): apprise URLs, and
    # "desktop" for the desktop's own notifications where available.
    notify: tuple[str, ...] = ("desktop",)

    @field_validator("targets")
    @classmethod
    def _target_names(cls, v: dict[str, TargetConfig]) -> dict[str, TargetConfig]:
        if not v:
            raise ValueError(_("define at least one target, e.g. [targets.x]"))
        for name in v:
            if not NAME_RE.match(name):
                raise ValueError(
                    _("target name {name!r}: use letters, digits, '-' and '_'").format(name=name)
                )
        return v

    @field_validator("notify")
    @classmethod
    def _notify_urls(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for i, url in enumerate(v):
            if url.startswith("secret:"):
                if not NAME_RE.match(url.removeprefix("secret:")):
                    msg = _('[{index}]: "secret:NAME" takes a name of letters, digits, "-" and "_"')
                    raise ValueError(msg.format(index=i))
            elif url != "desktop" and "://" not in url:
                # never echo the value: a notification URL can carry a token
                msg = _(
                    '[{index}]: not a notification URL (like "discord://..."), "secret:NAME" nor "desktop"'
                )
                raise ValueError(msg.format(index=i))
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(_("unknown time zone {value!r}").format(value=v)) from None
        return v or None

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        from poster.i18n import LANGUAGES

        if v and v not in LANGUAGES:
            raise ValueError(
                _("unknown language {value!r} (known: {known}, or empty)").format(
                    value=v, known=", ".join(LANGUAGES)
                )
            )
        return v

    @model_validator(mode="after")
    def _policies_exist(self) -> Config:
        from poster.platforms import adapter_class
        from poster.platforms import names as adapter_names

        known = set(builtin_policies()) | set(self.policies)
        adapters = adapter_names()
        for name, target in self.targets.items():
            if target.adapter not in adapters:
                raise ValueError(
                    _("targets.{name}.adapter: unknown adapter {adapter!r} (known: {known})").format(
                        name=name, adapter=target.adapter, known=", ".join(adapters)
                    )
                )
            allowed = adapter_class(target.adapter).settings_keys
            unknown = sorted(set(target.model_extra or {}) - (allowed or set()))
            if allowed is not None and unknown:
                raise ValueError(
                    _(
                        "targets.{name}.{key}: unknown key for the {adapter} adapter (a top-level key "
                        "must come before the first [table])"
                    ).format(name=name, key=unknown[0], adapter=target.adapter)
                )
            if target.policy not in known:
                raise ValueError(
                    _("targets.{name}.policy: unknown policy {policy!r} (known: {known})").format(
                        name=name, policy=target.policy, known=", ".join(sorted(known))
                    )
                )
        for name, spec in self.policies.items():
            if spec.base is not None and spec.base not in builtin_policies():
                raise ValueError(
                    _("policies.{name}.base: unknown built-in policy {base!r} (known: {known})").format(
                        name=name, base=spec.base, known=", ".join(sorted(builtin_policies()))
                    )
                )
        return self

    def enabled_targets(self) -> dict[str, TargetConfig]:
        return {n: t for n, t in self.targets.items() if t.enabled}

    def needs_approval(self, target: str) -> bool:
        tc = self.targets.get(target)
        own = tc.approve if tc is not None else None
        return self.approve if own is None else own


def _loc(err: dict[str, Any]) -> str:
    parts = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "model-"))]
    return ".".join(parts)


# pydantic's own messages in the words of a config file's user (the CLI's one-line error and
# the settings page's error beside each field); other kinds keep pydantic's English words
ERROR_WORDS = {
    "greater_than_equal": N_("must be at least {ge}"),
    "greater_than": N_("must be more than {gt}"),
    "less_than_equal": N_("must be at most {le}"),
    "int_parsing": N_("must be a whole number"),
    "int_from_float": N_("must be a whole number"),
    "float_parsing": N_("must be a number"),
    "bool_parsing": N_("must be on or off"),
    "missing": N_("is required"),
}


def error_text(err: dict[str, Any]) -> str:
    """One pydantic error as the user reads it, in the current language where poster has
    the words for it."""
    words = ERROR_WORDS.get(str(err.get("type")))
    if words:
        ctx = {
            k: int(v) if isinstance(v, float) and v.is_integer() else v
            for k, v in (err.get("ctx") or {}).items()
        }
        return _(words).format(**ctx)
    return str(err.get("msg", "")).removeprefix("Value error, ")


def _one_line(path: Path, exc: ValidationError) -> str:
    err = exc.errors()[0]
    msg = error_text(err)
    if err["type"] == "extra_forbidden":
        msg = _("unknown key (check the spelling against config.example.toml)")
    loc = _loc(err)
    more = _(" (and {count} more)").format(count=exc.error_count() - 1) if exc.error_count() > 1 else ""
    if loc:
        return _("{file}: {key}: {problem}").format(file=path, key=loc, problem=msg + more)
    return _("{path}: {error}").format(path=path, error=msg + more)


def field_errors(path: Path, data: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every problem with `data` as (dotted key, pydantic error type, error dict), for forms
    that show each error beside its field; [] when `data` is a valid config."""
    try:
        parse(path, data)
    except ConfigError:
        pass
    else:
        return []
    data = _relative_files(path, dict(data))
    data.pop("data_dir", None)
    try:
        Config(path=path, data_dir=path.parent, **data)
    except ValidationError as exc:
        return [(_loc(e), str(e["type"]), dict(e)) for e in exc.errors()]
    except TypeError as exc:
        return [("", "type_error", {"msg": str(exc)})]
    return [("data_dir", "value_error", {"msg": _("must be a non-empty string path")})]


def _relative_files(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """Files named in the config are relative to the config file; "" (the example config's
    value) means not set. Shared by `parse` and `field_errors` so a form sees the same rules."""
    proof = data.get("proof")
    if isinstance(proof, dict) and isinstance(proof.get("tsa_ca_file"), str):
        ca = Path(os.path.expanduser(proof["tsa_ca_file"]))
        data["proof"] = {**proof, "tsa_ca_file": ca if ca.is_absolute() else path.parent / ca}
    render = data.get("render")
    if isinstance(render, dict):  # font and logo files are relative to the config file
        render = dict(render)
        for key in ("font", "logo"):
            value = render.get(key)
            if value == "":
                del render[key]  # "" in the example config: not set
            elif isinstance(value, str):
                render[key] = (path.parent / os.path.expanduser(value)).resolve()
        data["render"] = render
    return data


def parse(path: Path, data: dict[str, Any]) -> Config:
    data = dict(data)
    raw_dir = data.pop("data_dir", "queue")
    if not isinstance(raw_dir, str) or not raw_dir:
        raise ConfigError(_("{path}: data_dir: must be a non-empty string path").format(path=path))
    data_dir = Path(os.path.expanduser(raw_dir))
    if not data_dir.is_absolute():
        data_dir = path.parent / data_dir
    data = _relative_files(path, data)
    try:
        return Config(path=path, data_dir=data_dir.resolve(), **data)
    except ValidationError as exc:
        raise ConfigError(_one_line(path, exc)) from None
    except TypeError as exc:  # e.g. a top-level key that is a reserved field name
        raise ConfigError(_("{path}: {error}").format(path=path, error=exc)) from None


def load(path: Path) -> Config:
    try:
        content = path.read_bytes()
        data = tomllib.loads(content.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            _("{path}: no such config file (create one with `poster init DIR`)").format(path=path)
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_("{path}: not valid TOML: {error}").format(path=path, error=exc)) from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8; a file saved as Shift_JIS comes here
        raise ConfigError(
            _("{path}: not UTF-8 text (byte {offset}): save it as UTF-8").format(path=path, offset=exc.start)
        ) from None
    except OSError as exc:
        raise ConfigError(_("{path}: cannot read: {reason}").format(path=path, reason=exc.strerror)) from None
    if "path" in data:
        raise ConfigError(
            _("{path}: path: unknown key (check the spelling against config.example.toml)").format(path=path)
        )
    config = parse(path.resolve(), data)
    from poster import configsnap

    configsnap.remember(config, content)  # `poster status` starts without pydantic next time
    return config


class Watcher:
    """The daemon's view of its config file: `poll()` (once per tick) returns the config to
    use, reloading the file when its content changed. A changed file is validated by the
    same `load`; a broken one is reported once (one line, through `report`) and the config
    in use is kept; a changed `data_dir` is not switched to while running (the run lock,
    the database and the log belong to the folder the daemon started with): that is
    reported once too and the whole change waits for a restart."""

    def __init__(self, config: Config, report: Callable[[int, str], None]) -> None:
        self.config = config
        self._report = report
        self._seen = _content(config.path)
        self._missing_once = False

    def poll(self) -> Config:
        path = self.config.path
        content = _content(path)
        if content == self._seen:
            self._missing_once = False
            return self.config
        if content is None and not self._missing_once:
            self._missing_once = True  # an editor replacing the file: look again next tick
            return self.config
        self._missing_once = False
        self._seen = content
        try:
            new = load(path)
        except ConfigError as exc:
            self._report(
                logging.ERROR,
                _(
                    "config not reloaded: {error}; posting goes on with the configuration loaded before"
                ).format(error=exc),
            )
            return self.config
        if new.data_dir != self.config.data_dir:
            self._report(
                logging.ERROR,
                _(
                    "{file}: data_dir changed to {new}: restart `poster run` to use it; until then it keeps "
                    "{old} and the configuration loaded before"
                ).format(file=path, new=new.data_dir, old=self.config.data_dir),
            )
            return self.config
        self.config = new
        self._report(
            logging.INFO,
            _("{file}: configuration reloaded (targets: {targets})").format(
                file=path, targets=", ".join(new.enabled_targets()) or "-"
            ),
        )
        return new


def _content(path: Path) -> bytes | None:
    """The file's SHA-256 (None if it cannot be read): a change of content, whatever the
    editor did to the time stamps or the inode."""
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None
