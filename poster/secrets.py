"""Credentials: the OS keyring, with `POSTER_<TARGET>_<FIELD>` environment variables winning
when set (the headless fallback). Nothing here ever logs or returns a secret in a message."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from poster.i18n import _

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


# --------------------------------------------------------------------- `poster login` support
SECRET_FIELD_HINTS = ("SECRET", "PASSWORD", "TOKEN", "SESSION", "KEY")
PUBLIC_FIELDS = ("HANDLE",)


@dataclass(frozen=True)
class LoginField:
    """One value `poster login` asks for."""

    name: str  # e.g. APP_PASSWORD
    prompt: str  # e.g. "Bluesky app password"
    secret: bool  # hidden input, never echoed
    help: str = ""


def login_prompt_fields(adapter_cls: Any) -> list[LoginField]:
    """The fields to prompt for, in order. Adapters may describe them with a
    `credential_help = {"FIELD": "where to find it"}` class attribute and may set
    `login_fields` (e.g. `()` for a mode that needs no account)."""
    fields = getattr(adapter_cls, "login_fields", None)
    if fields is None:
        fields = adapter_cls.credential_fields
    helps: Mapping[str, str] = getattr(adapter_cls, "credential_help", {}) or {}
    out = []
    for name in fields:
        secret = name.upper() not in PUBLIC_FIELDS and any(h in name.upper() for h in SECRET_FIELD_HINTS)
        label = f"{adapter_cls.name} {name.lower().replace('_', ' ')}"
        out.append(LoginField(name, label, secret, helps.get(name, "")))
    return out


def keyring_status() -> tuple[bool, str]:
    """Whether a usable keyring backend exists, and its name or the reason it doesn't."""
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring):
            return False, _("no keyring backend is available on this system")
        priority = getattr(backend, "priority", 1)
        if isinstance(priority, int | float) and priority <= 0:
            return False, _("the keyring backend {backend} is not usable").format(
                backend=type(backend).__name__
            )
        return True, type(backend).__name__
    except Exception as exc:
        return False, f"keyring error: {type(exc).__name__}"


def credential_sources(target: str, fields: Iterable[str]) -> dict[str, str | None]:
    """Where each field would come from: "env", "keyring" or None (missing). No values."""
    out: dict[str, str | None] = {}
    for field in fields:
        if os.environ.get(env_name(target, field)):
            out[field] = "env"
        elif _keyring_get(target, field):
            out[field] = "keyring"
        else:
            out[field] = None
    return out


def delete(target: str, fields: Iterable[str]) -> None:
    import keyring
    from keyring.errors import PasswordDeleteError

    for field in fields:
        with contextlib.suppress(PasswordDeleteError):
            keyring.delete_password(KEYRING_SERVICE, f"{target}:{field}")
