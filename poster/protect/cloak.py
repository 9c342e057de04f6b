"""The slot for a model-based cloak (Glaze/Mist-like adversarial perturbation).

poster ships none: they need large models and a GPU, and evidence shows they work only at
strong, visible settings. A separately installed package can provide one through the entry
point group `poster.cloaks` (name → callable `(image, seed, strength) -> image`); a policy then
uses `{use = "cloak", provider = "NAME", strength = ...}`. Without the provider the policy fails
at build time with a clear message, never by silently posting an uncloaked copy.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from PIL import Image
from pydantic import Field, model_validator

from poster.protect import Step, StepContext, StepParams

GROUP = "poster.cloaks"
Provider = Callable[[Image.Image, int, float], Image.Image]


def providers() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


class CloakParams(StepParams):
    provider: str
    strength: float = Field(0.5, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _installed(self) -> CloakParams:
        if self.provider not in providers():
            known = ", ".join(sorted(providers())) or "none installed"
            raise ValueError(
                f"cloak provider {self.provider!r} is not installed (entry points {GROUP}: {known})"
            )
        return self


class Cloak(Step):
    name = "cloak"
    Params = CloakParams
    params: CloakParams

    def apply(self, image: Image.Image, ctx: StepContext) -> Image.Image:
        run: Provider = providers()[self.params.provider].load()
        out = run(image, ctx.seed, self.params.strength)
        if out.size != image.size:
            raise ValueError(f"cloak {self.params.provider!r} changed the image size")
        return out
