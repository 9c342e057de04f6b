"""Stand-in Bluesky PDS: the XRPC calls the adapter makes, from the AT Protocol lexicons
(com.atproto.server.createSession / refreshSession / getSession, com.atproto.repo.uploadBlob
/ createRecord / getRecord). The real PDS (tests/pds) is the reference; this one exists for
what a real PDS will not do on request: redirect, answer garbage, trickle."""

from __future__ import annotations

import hashlib
import itertools
import secrets

from tests.servers.base import HttpError, Request, StandInServer

HANDLE = "artist.test"
PASSWORD = "app-pass-abcd-efgh"
DID = "did:plc:standinartist"


def xrpc_error(status: int, error: str, message: str) -> None:
    raise HttpError(status, {"error": error, "message": message})


class BlueskyServer(StandInServer):
    def __init__(self, handle: str = HANDLE, password: str = PASSWORD, max_blob: int = 2_000_000) -> None:
        super().__init__()
        self.handle = handle
        self.password = password
        self.max_blob = max_blob
        self.access: set[str] = set()
        self.refresh: set[str] = set()
        self.blobs: dict[str, bytes] = {}
        self.records: dict[str, dict] = {}  # rkey → record
        self._n = itertools.count(1)
        x = "/xrpc/"
        self.route("POST", x + r"com\.atproto\.server\.createSession", self.create_session)
        self.route("POST", x + r"com\.atproto\.server\.refreshSession", self.refresh_session)
        self.route("GET", x + r"com\.atproto\.server\.getSession", self.get_session)
        self.route("POST", x + r"com\.atproto\.repo\.uploadBlob", self.upload_blob)
        self.route("POST", x + r"com\.atproto\.repo\.createRecord", self.create_record)
        self.route("GET", x + r"com\.atproto\.repo\.getRecord", self.get_record)

    def _session(self) -> dict[str, str]:
        access, refresh = f"acc-{secrets.token_hex(8)}", f"ref-{secrets.token_hex(8)}"
        self.access.add(access)
        self.refresh.add(refresh)
        return {"did": DID, "handle": self.handle, "accessJwt": access, "refreshJwt": refresh}

    def _bearer(self, req: Request, tokens: set[str]) -> None:
        auth = req.header("authorization") or ""
        if not auth.startswith("Bearer ") or auth[7:] not in tokens:
            xrpc_error(401, "InvalidToken", "Token could not be verified")

    def create_session(self, req: Request, m):
        body = req.json or {}
        if body.get("identifier") != self.handle or body.get("password") != self.password:
            xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
        return self._session()

    def refresh_session(self, req: Request, m):
        self._bearer(req, self.refresh)
        return self._session()

    def get_session(self, req: Request, m):
        self._bearer(req, self.access)
        return {"did": DID, "handle": self.handle}

    def upload_blob(self, req: Request, m):
        self._bearer(req, self.access)
        if len(req.body) > self.max_blob:
            xrpc_error(400, "BlobTooLarge", f"This file is too large. blob too big (maximum {self.max_blob})")
        cid = "bafk" + hashlib.sha256(req.body).hexdigest()[:40]
        self.blobs[cid] = req.body
        mime = req.header("content-type") or "application/octet-stream"
        return {"blob": {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime, "size": len(req.body)}}

    def create_record(self, req: Request, m):
        self._bearer(req, self.access)
        body = req.json or {}
        if body.get("repo") not in (DID, self.handle):
            xrpc_error(400, "InvalidRequest", "Invalid repo")
        rkey = body.get("rkey") or f"r{next(self._n)}"
        if rkey in self.records:
            xrpc_error(400, "InvalidRequest", "Record already exists")
        self.records[rkey] = body.get("record") or {}
        return {"uri": f"at://{DID}/{body.get('collection')}/{rkey}", "cid": f"bafyrec{rkey}"}

    def get_record(self, req: Request, m):
        rkey = (req.query.get("rkey") or [""])[0]
        collection = (req.query.get("collection") or [""])[0]
        if rkey not in self.records:
            xrpc_error(400, "RecordNotFound", f"Could not locate record: at://{DID}/{collection}/{rkey}")
        return {
            "uri": f"at://{DID}/{collection}/{rkey}",
            "cid": f"bafyrec{rkey}",
            "value": self.records[rkey],
        }
