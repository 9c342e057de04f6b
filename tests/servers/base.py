"""A small framework for stand-in servers: routing, request parsing (JSON, form,
multipart), scripted failures (status + headers, N times), scripted answers sent after the
real handler ran (a post created, then an unreadable answer), hostile answers (trickled
byte by byte, or endless), and a record of every request."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class FilePart:
    filename: str | None
    content_type: str
    data: bytes


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    json: Any = None
    form: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[FilePart]] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def field(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list → JSON; str/bytes → as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    # hostile answers: `trickle` seconds between single bytes (from the status line on, or
    # only in the body with `trickle_body`); `chunks` an iterable body sent as it is
    # produced (never held in memory), with `length` as Content-Length (None: no length,
    # the connection is closed at the end)
    trickle: float = 0.0
    trickle_body: bool = False
    chunks: Iterable[bytes] | None = None
    length: int | None = None


class HttpError(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.response = Response(status, body, headers or {})


def parse_multipart(content_type: str, body: bytes) -> tuple[dict, dict]:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    form: dict[str, list[str]] = {}
    files: dict[str, list[FilePart]] = {}
    if not message.is_multipart():
        raise HttpError(400, {"error": "body is not multipart"})
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        if filename is not None:
            files.setdefault(name, []).append(FilePart(filename, part.get_content_type(), payload))
        else:
            form.setdefault(name, []).append(payload.decode("utf-8"))
    return form, files


Handler = Callable[[Request, "re.Match[str]"], Response | dict | list]


def pause(seconds: float) -> None:
    """Sleep in a server thread. Not `time.sleep`: the platform tests replace that with a
    no-op so clients never wait, and a hostile server must still be slow."""
    threading.Event().wait(seconds)


class StandInServer:
    """Subclasses register routes with `self.route(METHOD, regex, handler)`."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[Request] = []
        self.failures: list[list[Any]] = []  # [method, path regex, times, Response]
        self.afters: list[list[Any]] = []  # the same, sent after the real handler ran
        self.sent_body_bytes = 0  # body bytes of hostile answers the client accepted
        self.lock = threading.Lock()
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                outer._dispatch(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> StandInServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- configuration
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern + r"\Z"), handler))

    def fail(
        self,
        method: str,
        pattern: str,
        status: int,
        *,
        times: int = 1,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next `times` matching requests get `status` instead of the real answer."""
        with self.lock:
            self.failures.append(
                [method, re.compile(pattern + r"\Z"), times, Response(status, body, headers or {})]
            )

    def answer_after(
        self,
        method: str,
        pattern: str,
        status: int = 200,
        *,
        times: int = 1,
        body: Any = None,
        headers: dict[str, str] | None = None,
        response: Response | None = None,
    ) -> None:
        """The next `times` matching requests are handled for real (a post is created), and
        then answered with `response` (or `status`, `body`, `headers`) instead."""
        with self.lock:
            self.afters.append(
                [
                    method,
                    re.compile(pattern + r"\Z"),
                    times,
                    response or Response(status, body, headers or {}),
                ]
            )

    def calls(self, method: str, pattern: str) -> list[Request]:
        rx = re.compile(pattern + r"\Z")
        return [r for r in self.requests if r.method == method and rx.match(r.path)]

    # -- internals
    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in h.headers.items()}
        req = Request(h.command, parts.path, parse_qs(parts.query), headers, body)
        try:
            ctype = headers.get("content-type", "")
            if ctype.startswith("application/json") and body:
                try:
                    req.json = json.loads(body)
                except ValueError:
                    raise HttpError(400, {"error": "invalid JSON"}) from None
            elif ctype.startswith("application/x-www-form-urlencoded"):
                req.form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
            elif ctype.startswith("multipart/form-data"):
                req.form, req.files = parse_multipart(ctype, body)
            with self.lock:
                self.requests.append(req)
                failure = self._scripted(self.failures, req)
                after = self._scripted(self.afters, req) if failure is None else None
            response = failure if failure is not None else self._route(req)
            if after is not None:
                response = after
        except HttpError as exc:
            response = exc.response
        except Exception as exc:  # a bug in the stand-in: make it visible
            response = Response(500, {"error": f"stand-in crashed: {exc!r}"})
        self._send(h, response)

    @staticmethod
    def _scripted(table: list[list[Any]], req: Request) -> Response | None:
        for f in table:
            if f[0] == req.method and f[1].match(req.path) and f[2] > 0:
                f[2] -= 1
                return f[3]
        return None

    def _route(self, req: Request) -> Response:
        allowed = False
        for method, rx, handler in self.routes:
            m = rx.match(req.path)
            if m:
                allowed = True
                if method == req.method:
                    out = handler(req, m)
                    return out if isinstance(out, Response) else Response(200, out)
        raise HttpError(405 if allowed else 404, {"error": f"no route {req.method} {req.path}"})

    def _send(self, h: BaseHTTPRequestHandler, r: Response) -> None:
        if r.trickle or r.chunks is not None:
            self._send_hostile(h, r)
            return
        if isinstance(r.body, dict | list):
            payload = json.dumps(r.body).encode()
            ctype = r.content_type or "application/json; charset=utf-8"
        elif isinstance(r.body, str):
            payload = r.body.encode()
            ctype = r.content_type or "text/html; charset=utf-8"
        elif isinstance(r.body, bytes):
            payload = r.body
            ctype = r.content_type or "application/octet-stream"
        else:
            payload = b""
            ctype = r.content_type or "text/plain"
        h.send_response(r.status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(payload)))
        for k, v in r.headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(payload)

    def _send_hostile(self, h: BaseHTTPRequestHandler, r: Response) -> None:
        """Write the answer by hand: byte by byte with pauses, or as an endless-looking stream;
        stop quietly when the client hangs up."""
        if r.chunks is not None:
            body: Iterable[bytes] = r.chunks
        elif isinstance(r.body, dict | list):
            body = [json.dumps(r.body).encode()]
        else:
            body = [r.body.encode() if isinstance(r.body, str) else (r.body or b"")]
        head = [f"HTTP/1.1 {r.status} {'OK' if r.status < 400 else 'Error'}"]
        head += [f"{k}: {v}" for k, v in r.headers.items()]  # first: a cut here leaves no length
        head.append(f"Content-Type: {r.content_type or 'application/json; charset=utf-8'}")
        if r.chunks is None:
            r.length = sum(len(b) for b in body)  # type: ignore[arg-type]
        head.append(f"Content-Length: {r.length}" if r.length is not None else "Connection: close")
        raw_head = ("\r\n".join(head) + "\r\n\r\n").encode()
        h.close_connection = True
        try:
            if r.trickle and not r.trickle_body:
                for i in range(len(raw_head)):
                    h.wfile.write(raw_head[i : i + 1])
                    pause(r.trickle)
            else:
                h.wfile.write(raw_head)
            for chunk in body:
                pieces = [chunk[i : i + 1] for i in range(len(chunk))] if r.trickle else [chunk]
                for piece in pieces:
                    h.wfile.write(piece)
                    with self.lock:
                        self.sent_body_bytes += len(piece)
                    if r.trickle:
                        pause(r.trickle)
        except OSError:  # the client hung up: what a hostile answer is for
            pass
