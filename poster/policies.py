"""Policies: an ordered list of protection steps with parameters, built from config.

`heavy` is for platforms whose terms let them train AI on posts (X since 2024-11-15);
`light` for platforms whose terms forbid it (pixiv, Xfolio). Both are data
(`poster/data/policies.toml`, in config syntax).

A `[policies.NAME]` table in config *changes* the policy of that name (or the built-in named
by `base`) key by key: `format`, `jpeg_quality`, `verify` and `steps` replace the built-in
value only when named, and a table named after a step (`[policies.heavy.watermark]`) changes
that step's parameters (`enabled = false` removes the step; a step the policy lacks is added
in its usual place). A new name without `base` starts empty: only the platform fit.

The `[render]` defaults (font, logo, watermark look, signature position and margin) are
filled into the signature and watermark steps here, unless the step sets its own, so the
effective policy — what `poster preview --json` and the ledger show — names every value used.

The hidden ID is not a step: render always adds it after the last pixel step and checks it
(it cannot be switched off or reordered by config). `verify` lists extra simulated
re-encodings (long edge, JPEG quality) the ID must survive besides the platform's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from poster.config import Config, PolicyConfig, StepConfig, builtin_policies
from poster.errors import ConfigError
from poster.i18n import _
from poster.protect import Step, build_step, step_names

# Where a step named only by a `[policies.NAME.STEP]` table goes: the usual order of layers
# (size first, pixel changes, visible marks on top, the encoder's metadata last).
CANONICAL_ORDER = ("fit", "cloak", "noise", "watermark", "signature", "metadata")


@dataclass(frozen=True)
class Policy:
    name: str
    steps: tuple[Step, ...]
    format: str
    jpeg_quality: int
    verify: tuple[tuple[int, int], ...] = ()

    def describe(self) -> dict[str, Any]:
        """The effective policy: every parameter each step runs with (ledger, preview --json)."""
        return {
            "name": self.name,
            "format": self.format,
            "jpeg_quality": self.jpeg_quality,
            "steps": [s.describe() for s in self.steps],
            "verify": [list(v) for v in self.verify],
        }


def _checked_verify(pairs: tuple[tuple[int, int], ...], where: str) -> tuple[tuple[int, int], ...]:
    for i, (edge, quality) in enumerate(pairs):
        if not 256 <= edge <= 65535 or not 1 <= quality <= 100:
            raise ConfigError(
                _("{where}[{index}]: need [long edge 256..65535, JPEG quality 1..100], got {value}").format(
                    where=where, index=i, value=[edge, quality]
                )
            )
    return tuple(dict.fromkeys(pairs))


def _insert(steps: list[StepConfig], new: StepConfig) -> None:
    """Put `new` before the first step that comes after it in the usual order."""
    rank = CANONICAL_ORDER.index(new.use) if new.use in CANONICAL_ORDER else len(CANONICAL_ORDER)
    for i, s in enumerate(steps):
        if s.use in CANONICAL_ORDER and CANONICAL_ORDER.index(s.use) > rank:
            steps.insert(i, new)
            return
    steps.append(new)


def merged(config: Config, name: str) -> PolicyConfig:
    """The policy `name` as config makes it: the built-in (or `base`) with the config's keys
    and step tables applied."""
    own = config.policies.get(name)
    builtins = builtin_policies()
    base_name = own.base if own is not None and own.base else (name if name in builtins else None)
    base = builtins[base_name] if base_name else PolicyConfig(steps=(), format="auto", verify=())
    if own is None:
        return base
    where = f"{config.path}: policies.{name}"
    steps = list(own.steps if own.steps is not None else base.steps or ())
    for step_name, table in own.step_tables().items():
        if step_name not in step_names():
            raise ConfigError(
                _("{where}.{step}: unknown step (known: {known})").format(
                    where=where, step=step_name, known=", ".join(step_names())
                )
            )
        table = dict(table)
        enabled = table.pop("enabled", True)
        if not isinstance(enabled, bool):
            msg = _("{where}.{step}.enabled: must be true or false")
            raise ConfigError(msg.format(where=where, step=step_name))
        found = [i for i, s in enumerate(steps) if s.use == step_name]
        if not enabled:
            steps = [s for s in steps if s.use != step_name]
        elif found:
            for i in found:
                steps[i] = StepConfig(use=step_name, **{**steps[i].params(), **table})
        else:
            _insert(steps, StepConfig(use=step_name, **table))
    return PolicyConfig(
        steps=tuple(steps),
        format=own.format or base.format or "auto",
        jpeg_quality=own.jpeg_quality if own.jpeg_quality is not None else base.jpeg_quality,
        verify=own.verify if own.verify is not None else base.verify or (),
    )


def _with_render_defaults(config: Config, spec: StepConfig) -> dict[str, Any]:
    """A step's parameters with the `[render]` defaults it did not set itself."""
    params = spec.params()
    r = config.render
    if spec.use == "signature":
        if r.font is not None and "font" not in params and "image" not in params:
            params["font"] = str(r.font)
        params.setdefault("position", r.signature_position)
        params.setdefault("margin", r.signature_margin)
    elif spec.use == "watermark":
        if r.font is not None and "font" not in params:
            params["font"] = str(r.font)
        if r.logo is not None and "image" not in params and "text" not in params:
            params["image"] = str(r.logo)
        params.setdefault("look", r.watermark_look)
    return params


def build(config: Config, name: str) -> Policy:
    spec = merged(config, name)
    where = f"{config.path}: policies.{name}"
    steps = tuple(
        build_step(s.use, _with_render_defaults(config, s), f"{where}.steps[{i}]")
        for i, s in enumerate(spec.steps or ())
    )
    if not any(s.name == "fit" for s in steps):  # the platform fit is not optional
        steps = (build_step("fit", {}, where), *steps)
    return Policy(
        name=name,
        steps=steps,
        format=spec.format or "auto",
        jpeg_quality=spec.jpeg_quality or config.render.jpeg_quality,
        verify=_checked_verify(spec.verify or (), f"{where}.verify"),
    )


def check(config: Config) -> None:
    """Build every policy a target uses, so a bad step parameter is reported when the config
    is loaded (naming the key), not when the first job renders."""
    for name in sorted({t.policy for t in config.targets.values()} | set(config.policies)):
        build(config, name)
