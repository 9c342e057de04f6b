# ruff: noqa: E501
"""Stand-in X API v2: media upload (simple and chunked), media metadata, POST /2/tweets,
GET /2/users/me. Every request's OAuth 1.0a HMAC-SHA1 signature is verified."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
from urllib.parse import quote, unquote

from oauthlib.oauth1.rfc5849 import signature as oauth_sig

from tests.servers.base import HttpError, Request, Response, StandInServer

CREDS = {
    "CONSUMER_KEY": "ck-abcdef123",
    "CONSUMER_SECRET": "cs-secret-456789",
    "ACCESS_TOKEN": "at-1-token-7890",
    "ACCESS_TOKEN_SECRET": "ats-secret-0000",
}
MAX_IMAGE = 5 * 1000 * 1000


def problem(status, title, detail, kind="about:blank", headers=None):
    raise HttpError(status, {"title": title, "detail": detail, "type": kind, "status": status}, headers)


class XServer(StandInServer):
    def __init__(self, creds=CREDS):
        super().__init__()
        self.creds = dict(creds)
        self.media: dict[str, dict] = {}
        self.tweets: dict[str, dict] = {}
        self._ids = itertools.count(1_880_000_000_000_000_000)
        self.route("POST", r"/2/media/upload", self.simple_upload)
        self.route("GET", r"/2/media/upload", self.status)
        self.route("POST", r"/2/media/upload/initialize", self.initialize)
        self.route("POST", r"/2/media/upload/(\d+)/append", self.append)
        self.route("POST", r"/2/media/upload/(\d+)/finalize", self.finalize)
        self.route("POST", r"/2/media/metadata", self.metadata)
        self.route("POST", r"/2/tweets", self.create_tweet)
        self.route("GET", r"/2/users/me", self.me)

    # -- OAuth 1.0a verification (RFC 5849, HMAC-SHA1)
    def _auth(self, req: Request) -> None:
        header = req.header("authorization") or ""
        if not header.startswith("OAuth "):
            problem(401, "Unauthorized", "Unauthorized", "about:blank")
        params = dict(
            oauth_sig.collect_parameters(headers={"Authorization": header}, exclude_oauth_signature=False)
        )
        if (
            params.get("oauth_consumer_key") != self.creds["CONSUMER_KEY"]
            or params.get("oauth_token") != self.creds["ACCESS_TOKEN"]
        ):
            problem(401, "Unauthorized", "Unauthorized")
        query = "&".join(f"{k}={v}" for k, vs in req.query.items() for v in vs)
        body = None
        if (req.header("content-type") or "").startswith("application/x-www-form-urlencoded"):
            body = req.body.decode()
        collected = oauth_sig.collect_parameters(
            uri_query=query, body=body, headers={"Authorization": header}
        )
        normalized = oauth_sig.normalize_parameters(collected)
        uri = oauth_sig.base_string_uri(f"http://{req.header('host')}{req.path}")
        base = oauth_sig.signature_base_string(req.method, uri, normalized)
        key = f"{quote(self.creds['CONSUMER_SECRET'], safe='~')}&{quote(self.creds['ACCESS_TOKEN_SECRET'], safe='~')}"
        expected = base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()).decode()
        if unquote(params.get("oauth_signature", "")) != expected:
            problem(401, "Unauthorized", "Unauthorized (bad signature)")

    def _new_media(self, data: bytes, mime: str, category: str) -> dict:
        if len(data) > MAX_IMAGE:
            problem(
                400,
                "Invalid Request",
                f"File size exceeds {MAX_IMAGE} bytes",
                "https://api.x.com/2/problems/invalid-request",
            )
        if mime not in ("image/jpeg", "image/png", "image/gif", "image/webp"):
            problem(400, "Invalid Request", f"media_type {mime} is not supported")
        mid = str(next(self._ids))
        self.media[mid] = {
            "id": mid,
            "data": data,
            "media_type": mime,
            "category": category,
            "alt": None,
            "chunks": {},
        }
        return self.media[mid]

    def simple_upload(self, req, m):
        self._auth(req)
        files = req.files.get("media")
        if not files:
            problem(400, "Invalid Request", "The `media` field is required")
        media = self._new_media(
            files[0].data, req.field("media_type") or files[0].content_type, req.field("media_category") or ""
        )
        return {
            "data": {
                "id": media["id"],
                "media_key": f"3_{media['id']}",
                "size": len(media["data"]),
                "expires_after_secs": 86400,
            }
        }

    def initialize(self, req, m):
        self._auth(req)
        body = req.json or {}
        if not body.get("media_type") or not body.get("total_bytes"):
            problem(400, "Invalid Request", "media_type and total_bytes are required")
        if body["total_bytes"] > MAX_IMAGE:
            problem(400, "Invalid Request", f"File size exceeds {MAX_IMAGE} bytes")
        media = self._new_media(b"", body["media_type"], body.get("media_category", ""))
        media["total"] = body["total_bytes"]
        return {"data": {"id": media["id"], "media_key": f"3_{media['id']}", "expires_after_secs": 86400}}

    def append(self, req, m):
        self._auth(req)
        media = self.media.get(m.group(1)) or problem(404, "Not Found", "no such media")
        seg = req.field("segment_index")
        files = req.files.get("media")
        if seg is None or not files:
            problem(400, "Invalid Request", "segment_index and media are required")
        media["chunks"][int(seg)] = files[0].data
        return Response(200, {"data": {"expires_at": 0}})

    def finalize(self, req, m):
        self._auth(req)
        media = self.media.get(m.group(1)) or problem(404, "Not Found", "no such media")
        data = b"".join(media["chunks"][i] for i in sorted(media["chunks"]))
        if len(data) != media["total"]:
            problem(400, "Invalid Request", "total_bytes does not match the appended segments")
        media["data"] = data
        media["finalized"] = True
        return {
            "data": {
                "id": media["id"],
                "media_key": f"3_{media['id']}",
                "size": len(data),
                "processing_info": {"state": "pending", "check_after_secs": 1},
            }
        }

    def status(self, req, m):
        self._auth(req)
        if req.query.get("command") != ["STATUS"]:
            problem(400, "Invalid Request", "command=STATUS required")
        mid = (req.query.get("media_id") or [""])[0]
        if mid not in self.media:
            problem(404, "Not Found", "no such media")
        return {"data": {"id": mid, "processing_info": {"state": "succeeded", "progress_percent": 100}}}

    def metadata(self, req, m):
        self._auth(req)
        body = req.json or {}
        media = self.media.get(str(body.get("id")))
        if not media:
            problem(400, "Invalid Request", "unknown media id")
        alt = ((body.get("metadata") or {}).get("alt_text") or {}).get("text")
        if alt is None or len(alt) > 1000:
            problem(400, "Invalid Request", "alt_text.text is required, up to 1000 characters")
        media["alt"] = alt
        return {"data": {"id": media["id"], "associated_metadata": True}}

    def create_tweet(self, req, m):
        self._auth(req)
        body = req.json or {}
        text = body.get("text", "")
        ids = (body.get("media") or {}).get("media_ids") or []
        if len(ids) > 4:
            problem(400, "Invalid Request", "Your media IDs are invalid.")
        for mid in ids:
            if mid not in self.media:
                problem(400, "Invalid Request", "Your media IDs are invalid.")
        if any(t["text"] == text for t in self.tweets.values()):
            problem(403, "Forbidden", "You are not allowed to create a Tweet with duplicate content.")
        tid = str(next(self._ids))
        self.tweets[tid] = {"id": tid, "text": text, "media_ids": ids}
        return Response(201, {"data": {"id": tid, "text": text, "edit_history_tweet_ids": [tid]}})

    def me(self, req, m):
        self._auth(req)
        return {"data": {"id": "42", "name": "Artist", "username": "artist"}}
