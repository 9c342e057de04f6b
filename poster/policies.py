"""Policies: an ordered list of protection steps with parameters, built from config.

`heavy` is for platforms whose terms let them train AI on posts (X since 2024-11-15);
`light` for platforms whose terms forbid it (pixiv, Xfolio). A `[policies.NAME]` table in
config with the same name replaces the built-in one entirely.

The hidden ID is not a step: render always adds it after the last pixel step and checks it
(it cannot be switched off or reordered by config). `verify` lists extra simulated
re-encodings (long edge, JPEG quality) the ID must survive besides the platform's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from poster.config import Config, PolicyConfig, StepConfig
from poster.errors import ConfigError
from poster.protect import Step, build_step

BUILTIN_POLICIES: dict[str, PolicyConfig] = {
    "heavy": PolicyConfig(
        steps=(
            StepConfig(use="fit", max_edge=2048),
            StepConfig(use="noise", psnr=38.0),
            StepConfig(use="watermark", density=0.2),
            StepConfig(use="signature"),
            StepConfig(use="metadata"),
        ),
        format="jpeg",
        jpeg_quality=90,
        # X-like timeline pipelines: the image X serves at 2048 ("large") and at ~1200
        # ("medium") with JPEG 85, on top of whatever the adapter declares.
        verify=((2048, 85), (1200, 85)),
    ),
    "light": PolicyConfig(
        steps=(
            StepConfig(use="fit"),
            StepConfig(use="noise", psnr=46.0),
            StepConfig(use="signature", opacity=0.55),
            StepConfig(use="metadata"),
        ),
        format="auto",
        jpeg_quality=92,
    ),
}


@dataclass(frozen=True)
class Policy:
    name: str
    steps: tuple[Step, ...]
    format: str
    jpeg_quality: int
    verify: tuple[tuple[int, int], ...] = ()

    def describe(self) -> dict[str, Any]:
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
                f"{where}[{i}]: need [long edge 256..65535, JPEG quality 1..100], got {[edge, quality]}"
            )
    return tuple(dict.fromkeys(pairs))


def build(config: Config, name: str) -> Policy:
    spec = config.policies.get(name) or BUILTIN_POLICIES[name]
    where = f"{config.path}: policies.{name}"
    steps = tuple(build_step(s.use, s.params(), f"{where}.steps[{i}]") for i, s in enumerate(spec.steps))
    if not any(s.name == "fit" for s in steps):  # the platform fit is not optional
        steps = (build_step("fit", {}, where), *steps)
    return Policy(
        name=name,
        steps=steps,
        format=spec.format,
        jpeg_quality=spec.jpeg_quality or config.render.jpeg_quality,
        verify=_checked_verify(spec.verify, f"{where}.verify"),
    )
