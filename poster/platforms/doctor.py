"""`poster doctor` and `poster login` logic (the CLI only parses and prints).

`check_targets` builds each target's adapter (no network), then makes the adapter's one
cheap authenticated call (`Adapter.check`) and reports, in plain words, what is wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from poster import secrets, store
from poster.errors import UserError
from poster.i18n import _
from poster.platforms import adapter_class
from poster.platforms.base import CheckResult

log = logging.getLogger("poster.platforms.doctor")


@dataclass
class TargetReport:
    target: str
    adapter: str
    ok: bool
    message: str
    credentials: dict[str, str | None] = field(default_factory=dict)  # field → env|keyring|None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_target(name: str, adapter: str, settings: Mapping[str, Any], data_dir: Path) -> TargetReport:
    try:
        cls = adapter_class(adapter)
    except UserError as exc:
        return TargetReport(name, adapter, False, str(exc))
    sources = secrets.credential_sources(name, cls.credential_fields)
    try:
        instance = cls(
            name,
            dict(settings),
            secrets.credentials(name, cls.credential_fields),
            data_dir=data_dir,
        )
        result = instance.check()
    except UserError as exc:  # bad settings
        result = CheckResult(False, str(exc))
    except Exception as exc:  # a bug in an adapter: say so, keep checking the others
        log.debug("doctor: %s crashed", name, exc_info=True)
        result = CheckResult(
            False,
            _("internal error in the {adapter} adapter: {kind}: {error}").format(
                adapter=adapter, kind=type(exc).__name__, error=exc
            ),
        )
    message = secrets.mask(result.message, _known_values(name, cls.credential_fields))
    return TargetReport(name, adapter, result.ok, message, sources)


@dataclass
class DataReport:
    """The data folder's database: does SQLite's full integrity check pass?"""

    ok: bool
    message: str


def check_data(db_path: Path) -> DataReport:
    """SQLite's full integrity check of the database, read-only (works on a read-only or
    full disk). Damage is named in one line with the file; nothing else suggests a backup."""
    try:
        with store.opened(db_path, readonly=True) as conn:
            problem = store.integrity_problem(conn, quick=False)
    except UserError as exc:  # unreadable, damaged beyond opening, another version
        return DataReport(False, str(exc))
    if problem is not None:
        return DataReport(False, str(store.damaged(db_path, problem)))
    return DataReport(True, _("{file}: SQLite integrity check passed").format(file=db_path))


def _known_values(target: str, fields: Iterable[str]) -> list[str]:
    return list(secrets.credentials(target, fields).values())


def check_targets(
    targets: Mapping[str, tuple[str, Mapping[str, Any]]],
    data_dir: Path,
    only: str | None = None,
) -> list[TargetReport]:
    """`targets`: name → (adapter name, settings dict). `only`: one target name."""
    if only is not None and only not in targets:
        raise UserError(
            _("no target named {only!r} in the config (known: {known})").format(
                only=only, known=", ".join(targets)
            )
        )
    names = [only] if only else list(targets)
    return [check_target(n, targets[n][0], targets[n][1], data_dir) for n in names]


def login(
    target: str,
    adapter: str,
    ask: Callable[[secrets.LoginField], str],
) -> list[str]:
    """Prompt for the target's credential fields with `ask` and store them in the keyring.
    Returns the stored field names. Raises UserError when no keyring is usable."""
    cls = adapter_class(adapter)
    fields = secrets.login_prompt_fields(cls)
    if not fields:
        return []
    ok, why = secrets.keyring_status()
    if not ok:
        names = ", ".join(secrets.env_name(target, f.name) for f in fields)
        raise UserError(
            _("cannot store credentials: {why}; set the environment variables {names} instead").format(
                why=why, names=names
            )
        )
    values: dict[str, str] = {}
    for f in fields:
        value = ask(f).strip()
        if not value:
            raise UserError(_("{name} is empty: nothing stored").format(name=f.name))
        values[f.name] = value
    try:
        secrets.store(target, values)
    except Exception as exc:
        raise UserError(
            _("cannot store credentials in the keyring: {kind}").format(kind=type(exc).__name__)
        ) from None
    return list(values)
