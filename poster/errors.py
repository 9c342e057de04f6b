"""The one user-facing error type.

Commands raise `UserError` (or a subclass) for anything the user can fix; the CLI turns it
into a one-line message on stderr and a non-zero exit status. Anything else is a bug and is
shown as a traceback only with `--debug`.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can act on. `str()` is the whole one-line message."""

    exit_code = 2


class ConfigError(UserError):
    """The config file (or a sidecar) is missing, unreadable or invalid."""


class InputError(UserError):
    """An input file cannot be posted: unreadable, unsupported, hostile, too large."""


class RenderError(UserError):
    """A protected variant could not be produced (e.g. the hidden ID would not survive)."""
