# ruff: noqa: E501
"""Stand-in Mastodon server: the documented shapes of /api/v2/media, /api/v1/media/:id,
/api/v1/statuses (with Idempotency-Key), /api/v2/instance and verify_credentials."""

from __future__ import annotations

import itertools

from tests.servers.base import HttpError, Request, Response, StandInServer


class MastodonServer(StandInServer):
    def __init__(
        self,
        token: str = "mastodon-token-123",
        *,
        process_async: bool = False,
        image_size_limit: int = 16 * 1024 * 1024,
    ):
        super().__init__()
        self.token = token
        self.process_async = process_async
        self.image_size_limit = image_size_limit
        self.media: dict[str, dict] = {}
        self.statuses: dict[str, dict] = {}
        self.idempotency: dict[str, str] = {}
        self._ids = itertools.count(1000)
        self.route("GET", r"/api/v2/instance", self.instance)
        self.route("GET", r"/api/v1/accounts/verify_credentials", self.verify)
        self.route("POST", r"/api/v2/media", self.upload)
        self.route("GET", r"/api/v1/media/(\d+)", self.get_media)
        self.route("POST", r"/api/v1/statuses", self.create_status)

    def _auth(self, req: Request) -> None:
        if req.header("authorization") != f"Bearer {self.token}":
            raise HttpError(401, {"error": "The access token is invalid"})

    def instance(self, req, m):
        return {
            "domain": "127.0.0.1",
            "configuration": {
                "statuses": {"max_characters": 500, "max_media_attachments": 4},
                "media_attachments": {
                    "supported_mime_types": ["image/jpeg", "image/png", "image/webp"],
                    "image_size_limit": self.image_size_limit,
                    "image_matrix_limit": 8294400,
                    "description_limit": 1500,
                },
            },
        }

    def verify(self, req, m):
        self._auth(req)
        return {"id": "1", "username": "artist", "acct": "artist"}

    def upload(self, req, m):
        self._auth(req)
        files = req.files.get("file")
        if not files:
            raise HttpError(422, {"error": "Validation failed: File can't be blank"})
        f = files[0]
        if len(f.data) > self.image_size_limit:
            raise HttpError(422, {"error": "Validation failed: File file size must be less than 16 MB"})
        if f.content_type not in ("image/jpeg", "image/png", "image/webp"):
            raise HttpError(
                422,
                {"error": "Validation failed: File has contents that are not what they are reported to be"},
            )
        mid = str(next(self._ids))
        media = {
            "id": mid,
            "type": "image",
            "url": None
            if self.process_async
            else f"{self.url}/system/media/{mid}.{f.filename.rsplit('.', 1)[-1]}",
            "description": req.field("description"),
            "data": f.data,
        }
        self.media[mid] = media
        public = {k: v for k, v in media.items() if k != "data"}
        return Response(202 if self.process_async else 200, public)

    def get_media(self, req, m):
        self._auth(req)
        media = self.media.get(m.group(1))
        if not media:
            raise HttpError(404, {"error": "Record not found"})
        media["url"] = f"{self.url}/system/media/{media['id']}.png"
        return {k: v for k, v in media.items() if k != "data"}

    def create_status(self, req, m):
        self._auth(req)
        key = req.header("idempotency-key")
        if key and key in self.idempotency:
            return self.statuses[self.idempotency[key]]["public"]
        body = req.json or {}
        ids = body.get("media_ids") or []
        if not body.get("status") and not ids:
            raise HttpError(422, {"error": "Validation failed: Text can't be blank"})
        if len(body.get("status", "")) > 500:
            raise HttpError(422, {"error": "Validation failed: Text character limit of 500 exceeded"})
        if len(ids) > 4:
            raise HttpError(422, {"error": "Validation failed: Too many attachments"})
        for mid in ids:
            if mid not in self.media or self.media[mid]["url"] is None:
                raise HttpError(
                    422,
                    {
                        "error": "Cannot attach files that have not finished processing. Try again in a moment!"
                    },
                )
        sid = str(next(self._ids))
        public = {
            "id": sid,
            "url": f"{self.url}/@artist/{sid}",
            "uri": f"{self.url}/users/artist/statuses/{sid}",
            "content": body.get("status"),
            "visibility": body.get("visibility", "public"),
            "sensitive": bool(body.get("sensitive")),
            "media_attachments": [{k: v for k, v in self.media[i].items() if k != "data"} for i in ids],
        }
        self.statuses[sid] = {"public": public, "request": body, "key": key}
        if key:
            self.idempotency[key] = sid
        return public
