"""Policies: an ordered list of protection steps with parameters, built from config.

`heavy` is for platforms whose terms let them train AI on posts (X since 2024-11-15);
`light` for platforms whose terms forbid it (pixiv, Xfolio). A `[policies.NAME]` table in
config with the same name replaces the built-in one entirely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from poster.config import Config, PolicyConfig, StepConfig
from poster.protect import Step, build_step

BUILTIN_POLICIES: dict[str, PolicyConfig] = {
    "heavy": PolicyConfig(
        steps=(
            StepConfig(use="fit", max_edge=2048),
            StepConfig(use="signature"),
        ),
        format="jpeg",
        jpeg_quality=90,
    ),
    "light": PolicyConfig(
        steps=(
            StepConfig(use="fit"),
            StepConfig(use="signature", opacity=0.55),
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

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format": self.format,
            "jpeg_quality": self.jpeg_quality,
            "steps": [s.describe() for s in self.steps],
        }


def build(config: Config, name: str) -> Policy:
    spec = config.policies.get(name) or BUILTIN_POLICIES[name]
    where = f"{config.path}: policies.{name}.steps"
    steps = tuple(build_step(s.use, s.params(), f"{where}[{i}]") for i, s in enumerate(spec.steps))
    if not any(s.name == "fit" for s in steps):  # the platform fit is not optional
        steps = (build_step("fit", {}, where), *steps)
    return Policy(
        name=name,
        steps=steps,
        format=spec.format,
        jpeg_quality=spec.jpeg_quality or config.render.jpeg_quality,
    )
