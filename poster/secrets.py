"""Credentials: the OS keyring, with `POSTER_<TARGET>_<FIELD>` environment variables winning
when set (the headless fallback). Nothing here ever logs or returns a secret in a message."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

KEYRING_SERVICE = "poster"


def env_name(target: str, field: str) -> str:
    return f"POSTER_{re.sub(r'[^A-Za-z0-9]', '_', target).upper()}_{field.upper()}"


def _keyring_get(target: str, field: str) -> str | None:
    try:
        import keyring
        from keyring.errors import KeyringError

        try:
            return keyring.get_password(KEYRING_SERVICE, f"{target}:{field}")
        except KeyringError:
            return None
    except Exception:  # no usable backend (headless server): env vars are the fallback
        return None


def credentials(target: str, fields: Iterable[str]) -> dict[str, str]:
    """The credentials found for `target`; missing fields are simply absent."""
    found: dict[str, str] = {}
    for field in fields:
        value = os.environ.get(env_name(target, field)) or _keyring_get(target, field)
        if value:
            found[field] = value
    return found


def store(target: str, values: Mapping[str, str]) -> None:
    import keyring

    for field, value in values.items():
        keyring.set_password(KEYRING_SERVICE, f"{target}:{field}", value)


def mask(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret (of 4+ characters) in `text` with ***."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
