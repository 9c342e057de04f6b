"""The web app: security in front of everything, one route table, rendering.

Security, in the order a request meets it (see DESIGN.md, "The local web UI"):
1. Host: the Host header must name the bound host (or, when bound to loopback, another
   loopback name): a page on another site that rebinds its DNS name to 127.0.0.1 is refused.
2. Login: `?token=SECRET` (the per-launch secret `poster ui` printed) is compared with
   `hmac.compare_digest`; it sets a signed HttpOnly, SameSite=Strict session cookie and
   redirects to the same URL without the token. Without a valid cookie: 401.
3. State-changing requests (anything but GET/HEAD): same-origin only (`Sec-Fetch-Site:
   same-origin|none`, else `Origin` equal to the Host), and a CSRF token bound to the session
   (a form field or the `X-CSRF-Token` header), checked before the view runs. Request bodies
   are capped (`max_body`), counted as they arrive.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from poster import i18n, store
from poster.config import Config
from poster.errors import ConfigError
from poster.i18n import _, ngettext
from poster.ui.tasks import Tasks

log = logging.getLogger("poster.ui")
SESSION_COOKIE = "poster_session"
LANGUAGE_COOKIE = "poster_lang"
CSRF_FIELD = "csrftoken"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_host(value: str) -> tuple[str, int | None]:
    """'127.0.0.1:8000' → ('127.0.0.1', 8000); '[::1]:80' → ('::1', 80); IPv6 brackets go."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _sep, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _sep, port = value.partition(":")
    try:
        return host, int(port) if port else None
    except ValueError:
        return host, -1


@dataclass
class UIState:
    """What the app needs for its life: the config file, the secret, the bound address."""

    config_path: Path
    secret: str
    host: str = "127.0.0.1"
    port: int | None = None  # None: any port (in-process tests)
    daemon: str = "none"  # "inside" (this process posts), "outside" (another poster run), "none"
    kick: Callable[[], None] | None = None  # run a daemon tick now (after an upload)
    tasks: Tasks = field(default_factory=Tasks)
    _config: Config | None = None
    _mtime: float = 0.0
    _problem: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.key = hashlib.sha256(b"poster-ui-session\0" + self.secret.encode()).digest()

    def config(self) -> Config:
        """The config, read again whenever the file changed (the settings page, an editor).
        While the file is invalid the last good config is kept and the problem shown."""
        from poster import config as config_mod

        with self._lock:
            try:
                mtime = self.config_path.stat().st_mtime
            except OSError:
                mtime = 0.0
            if self._config is None or mtime != self._mtime:
                try:
                    self._config = config_mod.load(self.config_path)
                    self._problem = None
                except ConfigError as exc:
                    if self._config is None:
                        raise
                    self._problem = str(exc)
                self._mtime = mtime
            return self._config

    @property
    def config_problem(self) -> str | None:
        return self._problem

    # -- the session ------------------------------------------------------------------
    def check_secret(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.secret.encode())

    def new_session(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._sign('session', nonce)}"

    def _sign(self, purpose: str, value: str) -> str:
        return hmac.new(self.key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    def session_nonce(self, cookie: str | None) -> str | None:
        """The session's nonce if the cookie carries a valid signature, else None."""
        if not cookie or "." not in cookie:
            return None
        nonce, _sep, sig = cookie.partition(".")
        return nonce if hmac.compare_digest(sig, self._sign("session", nonce)) else None

    def csrf_token(self, nonce: str) -> str:
        return self._sign("csrf", nonce)

    def host_allowed(self, header: str) -> bool:
        host, port = split_host(header)
        if self.port is not None and port not in (self.port, None):
            return False
        if port is None and self.port not in (None, 80):
            return False
        bound = self.host.strip("[]").lower()
        if host == bound:
            return True
        return is_loopback(bound) and host in LOOPBACK_NAMES


def _plain(status: int, text: str) -> Response:
    return PlainTextResponse(text + "\n", status_code=status, headers=SECURITY_HEADERS)


SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# the evidence report is a finished, script-free document with its own inline styles
REPORT_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"


class BodyTooLarge(Exception):
    pass


class Guard:
    """Host check, login, same-origin, body cap, language, security headers (pure ASGI)."""

    def __init__(self, app: ASGIApp, state: UIState, max_body: Callable[[], int]) -> None:
        self.app = app
        self.state = state
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        st = self.state
        if not st.host_allowed(request.headers.get("host", "")):
            await _plain(403, _("poster ui: wrong Host header (only the address poster ui printed works)"))(
                scope, receive, send
            )
            return
        token = request.query_params.get("token")
        if token is not None:
            if not st.check_secret(token):
                await _plain(401, _("poster ui: wrong or expired link; use the one poster ui printed"))(
                    scope, receive, send
                )
                return
            rest = [(k, v) for k, v in parse_qsl(request.url.query, keep_blank_values=True) if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
            response.set_cookie(SESSION_COOKIE, st.new_session(), httponly=True, samesite="strict", path="/")
            await response(scope, receive, send)
            return
        nonce = st.session_nonce(request.cookies.get(SESSION_COOKIE))
        if nonce is None:
            await _plain(
                401, _("poster ui: not logged in; open the link (with its token) that `poster ui` printed")
            )(scope, receive, send)
            return
        if request.method not in SAFE_METHODS and not same_origin(request):
            await _plain(403, _("poster ui: refused a request from another site"))(scope, receive, send)
            return
        scope.setdefault("state", {})
        scope["state"]["csrf"] = st.csrf_token(nonce)
        language = choose_language(request, st)
        scope["state"]["language"] = language

        limit = self.max_body()
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            await _plain(413, _("poster ui: upload larger than {limit} bytes").format(limit=limit))(
                scope, receive, send
            )
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        started = False

        async def with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _v in headers}
                is_report = request.url.path.startswith("/reports/")
                for k, v in SECURITY_HEADERS.items():
                    if k.lower().encode() not in have:
                        if is_report and k == "Content-Security-Policy":
                            v = REPORT_CSP
                        if is_report and k == "X-Frame-Options":
                            v = "SAMEORIGIN"
                        headers.append((k.encode(), v.encode()))
                if b"cache-control" not in have:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        with i18n.using(language):
            try:
                await self.app(scope, counted, with_headers)
            except BodyTooLarge:
                if not started:
                    await _plain(413, _("poster ui: upload larger than {limit} bytes").format(limit=limit))(
                        scope, receive, send
                    )


def same_origin(request: Request) -> bool:
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False  # a browser sends one of the two with every POST; anything else is refused
    return origin.lower() == f"{request.url.scheme}://{request.headers.get('host', '')}".lower()


def choose_language(request: Request, st: UIState) -> str:
    """The page switch's cookie, else config `language`, else Accept-Language."""
    chosen = i18n.normalise(request.cookies.get(LANGUAGE_COOKIE))
    if chosen:
        return chosen
    try:
        configured = st.config().language
    except ConfigError:
        configured = ""
    return i18n.normalise(configured) or i18n.negotiate(request.headers.get("accept-language"))


# -- rendering --------------------------------------------------------------------------------
def format_datetime(value: datetime | None, kind: str = "short") -> str:
    """A date-time in the page's language (Babel's CLDR patterns)."""
    from babel.dates import format_date, format_skeleton, format_time
    from babel.dates import format_datetime as babel_dt

    if value is None:
        return ""
    lang = i18n.current()
    if kind == "time":
        return format_time(value, "short", locale=lang)
    if kind == "day":
        return format_skeleton("MMMEd", value, locale=lang)
    if kind == "date":
        return format_date(value, "medium", locale=lang)
    if kind == "week":
        return format_skeleton("yMMMd", value, locale=lang)
    if kind == "long":
        return babel_dt(value, "medium", locale=lang)
    day = format_skeleton("MMMEd", value, locale=lang)
    return f"{day} {format_time(value, 'short', locale=lang)}"


def _date_filter(value: date) -> str:
    from babel.dates import format_skeleton

    return format_skeleton("MMMEd", value, locale=i18n.current())


def make_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("poster.ui", "templates"),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # old-style callables: our messages use `{name}` placeholders filled with .format(),
    # the same convention as in Python code
    env.install_gettext_callables(gettext=_, ngettext=ngettext, newstyle=False)  # type: ignore[attr-defined]
    env.filters["dt"] = format_datetime
    env.filters["day"] = _date_filter
    from poster.actions import describe_method, policy_label

    env.globals["describe_method"] = describe_method
    env.globals["policy_label"] = policy_label
    return env


ENV = make_environment()


class Rq:
    """One request as a view sees it."""

    def __init__(self, request: Request, state: UIState, form: FormData | None = None) -> None:
        self.request = request
        self.state = state
        self.form = form
        self.csrf: str = request.scope["state"]["csrf"]
        self.language: str = request.scope["state"]["language"]
        self._conn: Any = None

    @property
    def config(self) -> Config:
        return self.state.config()

    @property
    def db(self) -> Any:
        if self._conn is None:
            self._conn = store.connect(self.config.db_path)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    @property
    def partial(self) -> bool:
        return self.request.headers.get("x-partial") == "1" or self.request.query_params.get("partial") == "1"

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        page = ENV.get_template(template).render(
            lang=self.language,
            csrf=self.csrf,
            csrf_field=CSRF_FIELD,
            path=self.request.url.path,
            daemon=self.state.daemon,
            config_problem=self.state.config_problem,
            **context,
        )
        return HTMLResponse(page, status_code=status)

    def back(self, url: str, message: str | None = None, error: str | None = None) -> Response:
        """After a form: back to a page, with the outcome shown once there (in the URL: the
        app keeps no per-user state besides the session)."""
        params = {k: v for k, v in (("msg", message), ("err", error)) if v}
        sep = "&" if "?" in url else "?"
        return RedirectResponse(url + (sep + urlencode(params) if params else ""), status_code=303)


View = Callable[[Rq], Response]


def _run(view: View, rq: Rq) -> Response:
    """In the worker thread: the view, then its connection closed (SQLite connections stay
    in the thread that made them)."""
    try:
        return view(rq)
    finally:
        rq.close()


def page(view: View) -> Callable[[Request], Awaitable[Response]]:
    """A GET view: runs in a worker thread (SQLite and image work block)."""

    async def endpoint(request: Request) -> Response:
        return await run_in_threadpool(_run, view, Rq(request, request.app.state.ui))

    endpoint.__name__ = view.__name__
    return endpoint


def action(view: View) -> Callable[[Request], Awaitable[Response]]:
    """A state-changing view: the form is parsed (size-capped), the CSRF token checked, and
    only then the view runs. Every POST route in the table goes through here."""

    async def endpoint(request: Request) -> Response:
        state: UIState = request.app.state.ui
        form = await request.form(max_files=100, max_fields=1000, max_part_size=1024 * 1024)
        given = request.headers.get("x-csrf-token") or str(form.get(CSRF_FIELD) or "")
        if not hmac.compare_digest(given.encode(), request.scope["state"]["csrf"].encode()):
            await form.close()
            return _plain(403, _("poster ui: missing or wrong CSRF token; reload the page and try again"))
        try:
            return await run_in_threadpool(_run, view, Rq(request, state, form))
        finally:
            await form.close()

    endpoint.__name__ = view.__name__
    endpoint.checks_csrf = True  # type: ignore[attr-defined]
    return endpoint


def create_app(state: UIState) -> Starlette:
    from poster.ui import views

    static = Path(__file__).with_name("static")
    routes = [
        Route("/", page(views.home)),
        Route("/queue", page(views.queue_partial)),
        Route("/upload", action(views.upload), methods=["POST"]),
        Route("/jobs/{job_id:int}/{verb}", action(views.job_action), methods=["POST"]),
        Route("/artworks/{artwork_id:int}", page(views.artwork)),
        Route("/artworks/{artwork_id:int}/{verb}", action(views.artwork_action), methods=["POST"]),
        Route("/media/original/{artwork_id:int}/{idx:int}", page(views.media_original)),
        Route("/media/thumb/{artwork_id:int}/{idx:int}", page(views.media_thumb)),
        Route("/media/variant/{job_id:int}/{idx:int}", page(views.media_variant)),
        Route("/calendar", page(views.calendar)),
        Route("/trace", page(views.trace_page)),
        Route("/trace", action(views.trace_start), methods=["POST"]),
        Route("/tasks/{task_id}", page(views.task_partial)),
        Route("/reports/{task_id}/{n:int}/{name}", page(views.report_file)),
        Route("/ledger", page(views.ledger_page)),
        Route("/ledger/export.{fmt}", page(views.ledger_export)),
        Route("/ledger/verify", action(views.ledger_verify), methods=["POST"]),
        Route("/ledger/{post_id:str}/proof", action(views.ledger_proof), methods=["POST"]),
        Route("/settings", page(views.settings_page)),
        Route("/settings", action(views.settings_save), methods=["POST"]),
        Route("/settings/credentials/{target}", action(views.credentials_save), methods=["POST"]),
        Route("/health", page(views.health_page)),
        Route("/health/check", action(views.health_check), methods=["POST"]),
        Route("/backup", action(views.backup_start), methods=["POST"]),
        Route("/language", action(views.language), methods=["POST"]),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        state.tasks.shutdown()

    async def too_large(_request: Request, _exc: Exception) -> Response:
        return _plain(413, _("poster ui: upload too large"))

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={BodyTooLarge: too_large})
    app.state.ui = state

    def max_body() -> int:
        try:
            return state.config().intake.max_file_bytes * 4 + (1 << 20)
        except ConfigError:
            return 1 << 20

    return Guard(app, state, max_body)  # type: ignore[return-value]
