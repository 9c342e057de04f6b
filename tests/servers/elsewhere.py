"""The other server: where a hostile, hijacked or misconfigured platform redirects poster.

It records whatever reaches it and answers every request the way each platform answers a
success (a Misskey note, an X post, a Mastodon status, a Bluesky session and record, a pixiv
convertKey — all in one JSON object), so an adapter that followed a redirect here would
believe it had posted. Tests assert that nothing ever arrives.
"""

from __future__ import annotations

from typing import Any

from tests.servers.base import Request, StandInServer

SUCCESS: dict[str, Any] = {
    "createdNote": {"id": "elsewhere-note"},  # misskey notes/create
    "data": {"id": "1999999999999999999", "username": "elsewhere"},  # X
    "id": "1999999",  # mastodon status, misskey drive file
    "url": "http://elsewhere.invalid/status/1999999",
    "uri": "at://did:plc:elsewhere/app.bsky.feed.post/elsewhere",
    "did": "did:plc:elsewhere",  # bluesky createSession
    "handle": "elsewhere.test",
    "accessJwt": "elsewhere-access",
    "refreshJwt": "elsewhere-refresh",
    "blob": {"$type": "blob", "ref": {"$link": "bafkelsewhere"}, "mimeType": "image/png", "size": 1},
    "error": False,  # pixiv ajax
    "body": {"convertKey": "elsewhere", "status": "COMPLETE", "illustId": 1999999},
}


class Elsewhere(StandInServer):
    def __init__(self) -> None:
        super().__init__()
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            self.route(method, r"/.*", lambda req, m: SUCCESS)

    @staticmethod
    def raw(req: Request) -> str:
        """Everything a request carried, as text: path, query, headers and body."""
        headers = "\n".join(f"{k}: {v}" for k, v in req.headers.items())
        return f"{req.method} {req.path} {req.query}\n{headers}\n\n" + req.body.decode("utf-8", "replace")

    def seen(self, secrets: list[str]) -> list[str]:
        """The secrets (whole, or URL-encoded) that reached this server."""
        from urllib.parse import quote, quote_plus

        found = []
        for req in list(self.requests):
            text = self.raw(req)
            for secret in secrets:
                if any(form in text for form in (secret, quote(secret), quote_plus(secret))):
                    found.append(secret)
        return found
