"""Protection steps: small pure units, image (+ seeded context) in, image out.

No step touches the database or knows a platform: the destination's limits arrive as plain
numbers (`Limits`), filled in by render from the adapter's capabilities. Steps are found
through a lazy registry so that a policy naming one step does not import the others. Each
step validates its own parameters (a pydantic model) when the policy is built, so a typo in
config fails at load time with the key named, not halfway through a post.

A step may note what it decided (the font it found, where the signature went, that pixel
art was left without noise) in `ctx.record`; render stores that with the step's parameters
in the ledger's render info.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, ValidationError

from poster.errors import ConfigError
from poster.i18n import _


class StepParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Limits:
    """The largest image the destination accepts, as plain numbers (None: no limit)."""

    max_edge: int | None = None  # longest edge, px
    max_pixels: int | None = None


@dataclass(frozen=True)
class StepContext:
    """What a step may know besides the image. `seed` is unique per post and step, recorded in
    the ledger, so every random layout can be reproduced.

    `pixel_grid`: for pixel art, how many image pixels one art pixel covers now (render
    detects pixel art on the original and follows the grid through the steps); None for
    other art. Steps that would blur the grid adapt or skip."""

    seed: int
    limits: Limits = Limits()
    artist: str = ""
    background: str = "#ffffff"
    pixel_grid: int | None = None
    # The art as fitted, before noise and overlays (same size as the image): what a step that
    # looks at the picture (the signature's quiet-spot search) should see, not the marks.
    art: Image.Image | None = None
    record: dict[str, Any] = field(default_factory=dict)  # what the step decided, for the ledger

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)


# -- seeds: the layout of an artwork's posts is fixed when it is taken in ---------------------
def layout_seed(key: bytes, original_sha256: str) -> int:
    """The layout seed of one original, fixed at intake and recorded (`originals.layout_seed`).

    Derived from the original's bytes with the hidden-ID key, so `poster preview` gives the
    same signature spot, watermark layout and noise before intake as after, while nobody
    without the key can predict a layout. 63 bits: it fits an SQLite INTEGER."""
    digest = hmac.new(key, b"poster layout seed\0" + bytes.fromhex(original_sha256), hashlib.sha256)
    return int.from_bytes(digest.digest()[:8], "big") >> 1


def post_seed(layout: int, target: str) -> int:
    """The render seed of one original for one target: each target gets its own layout (the
    layout itself tells the posts apart), the same one every time it is rendered."""
    digest = hashlib.sha256(f"{layout}:{target}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


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
        raise ConfigError(
            _("{where}.use: unknown step {name!r} (known: {known})").format(
                where=where, name=name, known=", ".join(step_names())
            )
        ) from None
    module_name, _sep, class_name = spec.partition(":")
    cls: type[Step] = getattr(importlib.import_module(module_name), class_name)
    try:
        return cls(cls.Params(**params))
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        msg = _("unknown parameter") if err["type"] == "extra_forbidden" else err["msg"]
        msg = str(msg).removeprefix("Value error, ")
        raise ConfigError(_("{where}.{key}: {problem}").format(where=where, key=key, problem=msg)) from None
