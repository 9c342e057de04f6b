"""Lazy adapter registry: a name maps to "module:Class"; the module is imported on first use,
so starting poster never imports every platform (or its dependencies)."""

from __future__ import annotations

import importlib

from poster.errors import ConfigError
from poster.i18n import _
from poster.platforms.base import Adapter

_REGISTRY: dict[str, str] = {
    "local": "poster.platforms.local:LocalAdapter",
    "x": "poster.platforms.x:XAdapter",
    "pixiv": "poster.platforms.pixiv:PixivAdapter",
    "xfolio": "poster.platforms.xfolio:XfolioAdapter",
    "bluesky": "poster.platforms.bluesky:BlueskyAdapter",
    "misskey": "poster.platforms.misskey:MisskeyAdapter",
    "mastodon": "poster.platforms.mastodon:MastodonAdapter",
}


def names() -> list[str]:
    return sorted(_REGISTRY)


def adapter_class(name: str) -> type[Adapter]:
    try:
        spec = _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            _("unknown adapter {name!r} (known: {known})").format(name=name, known=", ".join(names()))
        ) from None
    module_name, _sep, class_name = spec.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise TypeError(f"{spec} is not an Adapter")
    return cls
