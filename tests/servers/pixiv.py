"""Stand-in pixiv web: the upload page with its __NEXT_DATA__ token, the multipart create
request and the progress poll, as observed from the web app (see PLATFORMS.md)."""

from __future__ import annotations

import html
import itertools
import json

from tests.servers.base import HttpError, Response, StandInServer

SESSION = "12345678_AbCdEfGhSessionValue"
TOKEN = "csrf-token-0123456789abcdef"

REQUIRED = [
    "title",
    "caption",
    "allowTagEdit",
    "xRestrict",
    "restrict",
    "original",
    "allowComment",
    "responseAutoAccept",
    "aiType",
    "tweet",
]


class PixivServer(StandInServer):
    def __init__(self, session=SESSION, token=TOKEN):
        super().__init__()
        self.session = session
        self.token = token
        self.layout = "current"  # "current" | "changed" (no __NEXT_DATA__) | "no-token"
        self.works: dict[str, dict] = {}
        self.pending: dict[str, str] = {}
        self.progress_polls = 0
        self._ids = itertools.count(130_000_001)
        self.route("GET", r"/illustration/create", self.page)
        self.route("POST", r"/ajax/work/create/illustration", self.create)
        self.route("GET", r"/ajax/work/create/illustration/progress", self.progress)
        self.route("GET", r"/artworks/(\d+)", lambda r, m: Response(200, f"<html>work {m.group(1)}</html>"))

    def _logged_in(self, req) -> bool:
        cookie = req.header("cookie") or ""
        return f"PHPSESSID={self.session}" in [c.strip() for c in cookie.split(";")]

    def page(self, req, m):
        if not self._logged_in(req):
            return Response(
                302, "", {"Location": "https://accounts.pixiv.net/login?return_to=%2Fillustration%2Fcreate"}
            )
        if self.layout == "changed":
            return Response(
                200, "<html><body><div id='root'></div><script src='/app.js'></script></body></html>"
            )
        state = {"api": {"token": self.token if self.layout != "no-token" else None}, "user": {"id": "1"}}
        next_data = {
            "props": {"pageProps": {"serverSerializedPreloadedState": json.dumps(state)}},
            "page": "/illustration/create",
        }
        return Response(
            200,
            '<html><head></head><body><script id="__NEXT_DATA__" type="application/json">'
            + html.escape(json.dumps(next_data), quote=False)
            + "</script></body></html>",
        )

    def create(self, req, m):
        if not self._logged_in(req):
            return Response(401, {"error": True, "message": "Unauthorized", "body": []})
        if req.header("x-csrf-token") != self.token:
            return Response(400, {"error": True, "message": "Invalid CSRF token", "body": []})
        missing = [f for f in REQUIRED if req.field(f) is None]
        files = req.files.get("files[]") or []
        if missing or not files:
            return Response(
                400, {"error": True, "message": f"missing {missing or 'files'}", "body": {"errors": {}}}
            )
        if len(req.field("title")) > 32:
            return Response(
                400, {"error": True, "message": "title too long", "body": {"errors": {"title": "too long"}}}
            )
        if req.field("aiType") not in ("notAiGenerated", "aiGenerated"):
            return Response(
                400, {"error": True, "message": "aiType", "body": {"errors": {"aiType": "required"}}}
            )
        if req.field("xRestrict") not in ("general", "r18", "r18g"):
            return Response(400, {"error": True, "message": "xRestrict", "body": {"errors": {}}})
        for i in range(len(files)):
            if req.field(f"imageOrder[{i}][type]") != "newFile" or req.field(
                f"imageOrder[{i}][fileKey]"
            ) != str(i):
                return Response(400, {"error": True, "message": "imageOrder", "body": {"errors": {}}})
        key = f"ck{next(self._ids)}"
        work = {
            "form": {k: v if len(v) > 1 else v[0] for k, v in req.form.items()},
            "files": [f.data for f in files],
            "id": None,
        }
        self.pending[key] = json.dumps(len(self.works))
        self.works[key] = work
        return {"error": False, "message": "", "body": {"convertKey": key}}

    def progress(self, req, m):
        if not self._logged_in(req):
            raise HttpError(401, {"error": True, "message": "Unauthorized", "body": []})
        key = (req.query.get("convertKey") or [""])[0]
        work = self.works.get(key)
        if not work:
            return {"error": True, "message": "unknown convertKey", "body": []}
        self.progress_polls += 1
        if self.progress_polls % 2 == 1:  # first poll: still converting
            return {"error": False, "message": "", "body": {"status": "CONVERTING"}}
        work["id"] = work["id"] or str(next(self._ids))
        return {"error": False, "message": "", "body": {"status": "COMPLETE", "illustId": int(work["id"])}}
