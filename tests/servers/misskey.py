"""Stand-in Misskey: /api/meta, /api/i, drive/files/create|find|attached-notes,
notes/create — the documented shapes, token in the `i` field."""

from __future__ import annotations

import itertools

from tests.servers.base import HttpError, StandInServer


def error(status, code, message):
    raise HttpError(status, {"error": {"message": message, "code": code, "id": "x", "kind": "client"}})


class MisskeyServer(StandInServer):
    def __init__(self, token="misskey-token-abc", max_file_mb=10):
        super().__init__()
        self.token = token
        self.max_file_mb = max_file_mb
        self.files: dict[str, dict] = {}
        self.notes: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self.route("POST", r"/api/meta", lambda r, m: {"maxNoteTextLength": 3000, "name": "stand-in"})
        self.route("POST", r"/api/i", self.me)
        self.route("POST", r"/api/drive/files/create", self.create_file)
        self.route("POST", r"/api/drive/files/find", self.find_file)
        self.route("POST", r"/api/drive/files/attached-notes", self.attached)
        self.route("POST", r"/api/notes/create", self.create_note)

    def _auth(self, token):
        if not token:
            error(401, "CREDENTIAL_REQUIRED", "Credential required.")
        if token != self.token:
            error(401, "AUTHENTICATION_FAILED", "Authentication failed. Please ensure your token is correct.")

    def me(self, req, m):
        self._auth((req.json or {}).get("i"))
        return {"id": "u1", "username": "artist", "policies": {"maxFileSizeMb": self.max_file_mb}}

    def create_file(self, req, m):
        self._auth(req.field("i"))
        files = req.files.get("file")
        if not files:
            error(400, "INVALID_PARAM", "Invalid param: file")
        f = files[0]
        if len(f.data) > self.max_file_mb * 1024 * 1024:
            error(413, "FILE_TOO_LARGE", "Cannot upload the file because it exceeds the maximum file size.")
        fid = f"f{next(self._ids)}"
        self.files[fid] = {
            "id": fid,
            "name": req.field("name") or f.filename,
            "comment": req.field("comment"),
            "isSensitive": req.field("isSensitive") == "true",
            "data": f.data,
            "type": f.content_type,
        }
        return {k: v for k, v in self.files[fid].items() if k != "data"}

    def find_file(self, req, m):
        body = req.json or {}
        self._auth(body.get("i"))
        return [
            {k: v for k, v in f.items() if k != "data"}
            for f in self.files.values()
            if f["name"] == body.get("name")
        ]

    def attached(self, req, m):
        body = req.json or {}
        self._auth(body.get("i"))
        return [n for n in self.notes.values() if body.get("fileId") in n["fileIds"]]

    def create_note(self, req, m):
        body = req.json or {}
        self._auth(body.get("i"))
        ids = body.get("fileIds") or []
        if not 1 <= len(ids) <= 16 and not body.get("text"):
            error(400, "INVALID_PARAM", "Invalid param")
        for fid in ids:
            if fid not in self.files:
                error(400, "NO_SUCH_FILE", "Some files are not found.")
        if body.get("visibility") not in (None, "public", "home", "followers", "specified"):
            error(400, "INVALID_PARAM", "Invalid param: visibility")
        nid = f"n{next(self._ids)}"
        self.notes[nid] = {
            "id": nid,
            "text": body.get("text"),
            "fileIds": ids,
            "cw": body.get("cw"),
            "visibility": body.get("visibility", "public"),
        }
        return {"createdNote": self.notes[nid]}
