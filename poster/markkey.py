"""The hidden-ID key: 32 random bytes in `<data_dir>/mark.key` (mode 0600).

It lives beside the ledger because the two are only useful together: without the key no
posted copy can be traced, so back up the data folder (ledger + key) as one. It is not an
account credential, which is why it is not in the keyring; it is never printed or logged.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from poster.errors import UserError
from poster.i18n import _

KEY_NAME = "mark.key"
KEY_BYTES = 32


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_NAME


def load(data_dir: Path, *, create: bool = False) -> bytes:
    path = key_path(data_dir)
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise UserError(
                _(
                    "{path}: the hidden-ID key is missing; without it no copy can be traced (restore "
                    "it from your backup of the data folder)"
                ).format(path=path)
            ) from None
        from poster.store import ensure_private_dir

        ensure_private_dir(data_dir)
        key = secrets.token_bytes(KEY_BYTES)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key
    if len(key) != KEY_BYTES:
        raise UserError(
            _("{path}: the hidden-ID key is damaged (expected {size} bytes)").format(
                path=path, size=KEY_BYTES
            )
        )
    return key
