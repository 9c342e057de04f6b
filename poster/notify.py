"""Telling the artist when something needs them, while nobody watches the terminal.

Through apprise (one library for Discord, e-mail, ntfy, Slack, Telegram, Pushover, desktop
notifications and ~100 more): `notify = ["discord://…", "mailto://…"]` in config, plus
`"desktop"` for the desktop's own notifications where apprise can reach them (Windows,
macOS, a Linux desktop session with D-Bus); on a server without one it is skipped.

What is worth a notification (`KINDS`):
- `failed`: a post failed for good (the reason is in the message);
- `credentials`: a platform refused or lacks the credentials (every such reason from poster's
  adapters tells the user to run `poster login`, which is how it is recognised);
- `uncertain`: a post may or may not exist and waits for `poster confirm`;
- `approval`: an artwork waits for the artist's approval (sent by the web UI's approval step);
- `held`: an artwork could not be taken in and was moved to needs-attention/ (the reason is
  beside it).

Notification URLs carry tokens, so config.toml should name them rather than hold them:
`"secret:NAME"` is the URL stored with `poster login notify:NAME` in the OS keyring (or the
`POSTER_NOTIFY_NAME` environment variable on a headless machine).

Anyone can send one with `event(config, kind, ...)`. Sending never raises and never blocks a
post for long (apprise's timeout applies); a failure is logged. Notification URLs carry tokens
and passwords: they are registered with the log masker before use, apprise's own log records
are masked and passed to poster's log at debug level, and anything shown uses apprise's
privacy form (`discord://****/****`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from poster import secrets
from poster.i18n import N_, _
from poster.logs import mask_text, register_secret

if TYPE_CHECKING:
    from poster.config import Config

log = logging.getLogger(__name__)

KINDS: dict[str, str] = {
    "failed": N_("A post failed"),
    "credentials": N_("Log in again"),
    "uncertain": N_("A post needs checking"),
    "approval": N_("Artwork waiting for approval"),
    "held": N_("Artwork needs attention"),
}
_LEVEL = {
    "failed": "failure",
    "credentials": "failure",
    "uncertain": "warning",
    "approval": "info",
    "held": "warning",
}


def _register_secrets(url: str) -> None:
    """Every part of a notification URL that can be a secret goes to the log masker."""
    register_secret(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    for value in (parts.password, parts.username):
        register_secret(value)
    for segment in parts.path.split("/"):
        if len(segment) >= 8:  # webhook ids and tokens; short segments are words like "api"
            register_secret(segment)
    for _name, value in parse_qsl(parts.query):
        if len(value) >= 8:
            register_secret(value)
    if parts.scheme in ("discord", "tgram", "pover", "ntfys", "slack", "pbul", "gotify", "matrixs"):
        register_secret(parts.hostname)  # these schemes carry a token where the host would be


class _ToPosterLog(logging.Handler):
    """apprise's log records, masked, into poster's log (debug): they can quote URLs."""

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a log handler must never raise
            log.debug("apprise: %s", mask_text(record.getMessage()))


def _quiet_apprise() -> None:
    alog = logging.getLogger("apprise")
    if not any(isinstance(h, _ToPosterLog) for h in alog.handlers):
        alog.addHandler(_ToPosterLog())
    alog.propagate = False  # every time: a logging setup elsewhere may have turned it back on
    alog.setLevel(logging.DEBUG)


def desktop_url() -> str | None:
    """apprise's URL for this desktop's notifications (None: no desktop session)."""
    if sys.platform == "win32":
        return "windows://"
    if sys.platform == "darwin":
        return "macosx://"
    if os.environ.get("DBUS_SESSION_BUS_ADDRESS") and (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "dbus://"
    return None


SECRET_TARGET = "notify"  # `secret:NAME` lives in the keyring as notify:NAME (or POSTER_NOTIFY_NAME)


def stored_url(name: str) -> str | None:
    """The notification URL kept as a secret under NAME (the environment wins, as for
    credentials), so config.toml names it without holding its token."""
    return secrets.credentials(SECRET_TARGET, [name]).get(name)


class Notifier:
    """The configured services, set up once (an apprise object per URL list)."""

    def __init__(self, urls: Iterable[str]) -> None:
        import apprise  # imported here: commands that never notify do not pay for it

        _quiet_apprise()
        self._apprise = apprise.Apprise()
        self.services: list[str] = []  # shown to the user: privacy form, no secrets
        self.unavailable: list[str] = []
        for url in urls:
            if url.startswith("secret:"):
                name = url.removeprefix("secret:")
                stored = stored_url(name)
                if stored is None:
                    self.unavailable.append(
                        _("{entry} (not set: `poster login notify:{name}`, or {env})").format(
                            entry=url, name=name, env=secrets.env_name(SECRET_TARGET, name)
                        )
                    )
                    continue
                url = stored
            wanted = desktop_url() if url == "desktop" else url
            if url != "desktop":
                _register_secrets(url)
            if wanted is None:
                self.unavailable.append("desktop")
                continue
            before = len(self._apprise)
            if self._apprise.add(wanted) and len(self._apprise) > before:
                self.services.append(mask_text(self._apprise[len(self._apprise) - 1].url(privacy=True)))
            else:
                shown = "desktop" if url == "desktop" else (urlsplit(url).scheme or "?") + "://…"
                self.unavailable.append(shown)

    def send(self, kind: str, title: str, body: str) -> bool:
        """Send to every service; True if at least one took it."""
        if not len(self._apprise):
            return False
        import apprise

        _quiet_apprise()
        level = {
            "failure": apprise.NotifyType.FAILURE,
            "warning": apprise.NotifyType.WARNING,
        }.get(_LEVEL.get(kind, "info"), apprise.NotifyType.INFO)
        try:
            ok = bool(self._apprise.notify(body=body, title=title, notify_type=level))
        except Exception as exc:  # a notification must never stop a post
            log.warning("%s", mask_text(_("notification failed: {error}").format(error=exc)))
            return False
        if not ok:
            log.warning("%s", _("a notification could not be sent (see the log with -vv)"))
        return ok


@lru_cache(maxsize=8)
def notifier(urls: tuple[str, ...]) -> Notifier:
    return Notifier(urls)


def message(
    kind: str, *, target: str = "", file: str = "", reason: str = "", url: str = ""
) -> tuple[str, str]:
    """(title, body) for an event, in the current language."""
    title = _(KINDS[kind])
    where = " → ".join(x for x in (file, target) if x)
    lines = [where] if where else []
    if reason:
        lines.append(reason)
    if url:
        lines.append(url)
    if kind == "uncertain":
        lines.append(_("Check the platform, then `poster confirm JOB --posted URL` or `--not-posted`."))
    return title, mask_text("\n".join(lines))


def event(config: Config, kind: str, **details: Any) -> bool:
    """Tell the artist about `kind` (see KINDS) through the config's `notify` services.
    `details`: target, file, reason, url (all optional strings). Never raises."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r} (known: {', '.join(KINDS)})")
    if not config.notify:
        return False
    try:
        n = notifier(tuple(config.notify))
    except Exception as exc:  # apprise missing or broken: say so once per process in the log
        log.warning("%s", mask_text(_("notifications are off: {error}").format(error=exc)))
        return False
    title, body = message(kind, **{k: str(v) for k, v in details.items() if v is not None})
    return n.send(kind, title, body)


def kind_of_failure(reason: str) -> str:
    """'credentials' when the reason asks for `poster login` (every adapter's wording for a
    refused, expired or missing credential), else 'failed'."""
    return "credentials" if "poster login" in reason else "failed"
