"""What Mastodon and Misskey targets share: a server of the user's choosing (`instance`), a
post visibility, and lists of age ratings that get a sensitive flag or a content warning."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from poster.errors import ConfigError
from poster.i18n import _
from poster.platforms.base import Capabilities
from poster.platforms.http import HttpAdapter

log = logging.getLogger(__name__)
LIMITS_TTL = 24 * 3600  # servers change their limits rarely; one cheap call a day
_CAPABILITY_FIELDS = frozenset(f.name for f in dataclasses.fields(Capabilities))


class InstanceAdapter(HttpAdapter):
    visibilities: ClassVar[tuple[str, ...]]
    example_instance: ClassVar[str]
    # setting name → default list of ratings (general | r18 | r18g)
    rating_lists: ClassVar[Mapping[str, tuple[str, ...]]] = {"sensitive_for": ("r18", "r18g")}

    def __init__(
        self, target: str, settings: Mapping[str, Any], credentials: Mapping[str, str], *, data_dir: Path
    ) -> None:
        settings = dict(settings)
        instance = settings.get("instance")
        if instance and not settings.get("api_base"):
            if not isinstance(instance, str):
                raise ConfigError(
                    _("targets.{target}.instance: must be a URL like {example}").format(
                        target=target, example=self.example_instance
                    )
                )
            settings["api_base"] = instance if "://" in instance else f"https://{instance}"
        if not settings.get("api_base"):
            raise ConfigError(
                _(
                    "targets.{target}.instance: required for a {platform} target (e.g. instance = "
                    '"{example}")'
                ).format(target=target, platform=self.name, example=self.example_instance)
            )
        super().__init__(target, settings, credentials, data_dir=data_dir)
        vis = self.settings.get("visibility", "public")
        if vis not in self.visibilities:
            raise ConfigError(
                _("targets.{target}.visibility: must be one of {choices}, not {vis!r}").format(
                    target=target, choices=", ".join(self.visibilities), vis=vis
                )
            )
        self.visibility = vis
        self.rating_sets: dict[str, set[str]] = {}
        for key, default in self.rating_lists.items():
            value = self.settings.get(key, list(default))
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(
                    _("targets.{target}.{key}: must be a list of ratings").format(target=target, key=key)
                )
            self.rating_sets[key] = set(value)

    def _fetch_limits(self) -> dict[str, Any]:
        """The server's real limits as Capabilities field values (missing or None: keep the
        declared default)."""
        raise NotImplementedError

    def effective_capabilities(self) -> Capabilities:
        caps = self.capabilities
        cached = self.read_state("limits")
        if not cached or time.time() - cached.get("fetched", 0) > LIMITS_TTL:
            try:
                cached = {**self._fetch_limits(), "fetched": time.time()}
                self.write_state("limits", cached)
            except Exception as exc:  # limits are an optimisation: fall back to the defaults
                log.warning(
                    "%s",
                    _("{target}: cannot read server limits ({error}); using defaults").format(
                        target=self.target, error=self.mask(str(exc))
                    ),
                )
                cached = None
        if cached:
            changes = {
                k: v for k, v in cached.items() if k in _CAPABILITY_FIELDS and isinstance(v, int) and v > 0
            }
            caps = dataclasses.replace(caps, **changes)
        return dataclasses.replace(caps, min_interval=self._min_interval(caps.min_interval))
