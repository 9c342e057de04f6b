"""Protection steps: small pure units, image (+ seeded context) in, image out.

No step touches files or the database. Steps are found through a lazy registry so that a
policy naming one step does not import the others. Each step validates its own parameters
(a pydantic model) when the policy is built, so a typo in config fails at load time with the
key named, not halfway through a post.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, ValidationError

from poster.errors import ConfigError
from poster.platforms.base import Capabilities


class StepParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class StepContext:
    """What a step may know besides the image. `seed` is unique per post and step, recorded in
    the ledger, so every random layout can be reproduced."""

    seed: int
    capabilities: Capabilities
    artist: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)


class Step(ABC):
    name: ClassVar[str]
    Params: ClassVar[type[StepParams]] = StepParams
    # False for steps that only configure the encoder (metadata): they never change pixels.
    pixel_step: ClassVar[bool] = True

    def __init__(self, params: StepParams) -> None:
        self.params = params

    @abstractmethod
    def apply(self, image: Image.Image, ctx: StepContext) -> Image.Image:
        """Return the processed image (RGB or RGBA, any size)."""

    def describe(self) -> dict[str, Any]:
        return {"use": self.name, **self.params.model_dump(mode="json")}


_STEPS: dict[str, str] = {
    "fit": "poster.protect.fit:Fit",
    "signature": "poster.protect.signature:Signature",
    "watermark": "poster.protect.watermark:Watermark",
    "noise": "poster.protect.noise:Noise",
    "cloak": "poster.protect.cloak:Cloak",
    "metadata": "poster.protect.metadata:Metadata",
}


def step_names() -> list[str]:
    return sorted(_STEPS)


def build_step(name: str, params: dict[str, Any], where: str) -> Step:
    """Build a step from config; `where` names the config location for error messages."""
    try:
        spec = _STEPS[name]
    except KeyError:
        raise ConfigError(f"{where}.use: unknown step {name!r} (known: {', '.join(step_names())})") from None
    module_name, _, class_name = spec.partition(":")
    cls: type[Step] = getattr(importlib.import_module(module_name), class_name)
    try:
        return cls(cls.Params(**params))
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        msg = "unknown parameter" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(f"{where}.{key}: {msg}") from None
