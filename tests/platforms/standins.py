"""Every HTTP adapter with its stand-in server, described once: how to start the server,
which credentials and settings the adapter needs, which call creates the post, and which
calls carry a secret. The redirect, ambiguous-answer and request-limit tests run over all of
them, so a new adapter is covered by adding one entry here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poster.platforms import adapter_class
from poster.platforms.base import Adapter
from tests.servers import x as x_srv
from tests.servers.base import StandInServer
from tests.servers.bluesky import BlueskyServer
from tests.servers.mastodon import MastodonServer
from tests.servers.misskey import MisskeyServer
from tests.servers.pixiv import SESSION, TOKEN, PixivServer


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # a regex, as StandInServer.fail takes it
    creates: bool = False  # the call that may create the post (or follows it, pixiv's poll)


@dataclass(frozen=True)
class Platform:
    name: str
    server: Callable[[], StandInServer]
    credentials: Callable[[Any], dict[str, str]]
    calls: tuple[Call, ...]  # in the order the adapter makes them; every one carries a secret
    settings: Callable[[Any], dict[str, Any]] = lambda s: {}
    extra_secrets: tuple[str, ...] = ()  # secrets the platform hands out (pixiv's CSRF token)
    lookup: bool = False  # find_existing can prove the post is absent

    @property
    def create(self) -> Call:
        return next(c for c in self.calls if c.creates)

    def adapter(self, server: Any, data_dir: Path, **settings: Any) -> Adapter:
        base = {"adapter": self.name, "policy": "light", "api_base": server.url}
        return adapter_class(self.name)(
            "t",
            {**base, **self.settings(server), **settings},
            self.credentials(server),
            data_dir=data_dir,
        )

    def secrets(self, server: Any) -> list[str]:
        values = [v for k, v in self.credentials(server).items() if k != "HANDLE"]
        return values + list(self.extra_secrets)

    def created(self, server: Any) -> int:
        """How many posts the server holds."""
        for attr in ("notes", "statuses", "tweets", "records", "works"):
            if hasattr(server, attr):
                return len(getattr(server, attr))
        raise AssertionError(f"no posts attribute on {server!r}")


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform(
            "misskey",
            MisskeyServer,
            lambda s: {"TOKEN": s.token},
            (Call("POST", r"/api/drive/files/create"), Call("POST", r"/api/notes/create", creates=True)),
            lookup=True,
        ),
        Platform(
            "mastodon",
            MastodonServer,
            lambda s: {"TOKEN": s.token},
            (Call("POST", r"/api/v2/media"), Call("POST", r"/api/v1/statuses", creates=True)),
        ),
        Platform(
            "x",
            x_srv.XServer,
            lambda s: dict(x_srv.CREDS),
            (Call("POST", r"/2/media/upload"), Call("POST", r"/2/tweets", creates=True)),
        ),
        Platform(
            "bluesky",
            BlueskyServer,
            lambda s: {"HANDLE": s.handle, "APP_PASSWORD": s.password},
            (
                Call("POST", r"/xrpc/com\.atproto\.server\.createSession"),
                Call("POST", r"/xrpc/com\.atproto\.repo\.uploadBlob"),
                Call("POST", r"/xrpc/com\.atproto\.repo\.createRecord", creates=True),
            ),
            lookup=True,
        ),
        Platform(
            "pixiv",
            PixivServer,
            lambda s: {"SESSION": SESSION},
            (
                Call("GET", r"/illustration/create"),
                Call("POST", r"/ajax/work/create/illustration", creates=True),
            ),
            settings=lambda s: {"ai_generated": False},
            extra_secrets=(TOKEN,),
        ),
    )
}
