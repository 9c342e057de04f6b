"""Where the config file is: light to import (`poster --help` reads the file's `language`
before anything else loads; poster.config, which brings pydantic, re-exports these)."""

from __future__ import annotations

from pathlib import Path

from poster.errors import ConfigError
from poster.i18n import _

CONFIG_NAME = "config.toml"


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
        _(
            "no config found ({local} or {user}): create one with `poster init DIR` and pass "
            "--config DIR/config.toml"
        ).format(local=local, user=user)
    )
