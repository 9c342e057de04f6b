"""Launching `poster ui`: a free or given port on loopback, a per-launch secret in the one URL
printed, the browser opened, and the daemon run in-process when no other `poster run` holds
the data folder (one run lock per data folder, as for `poster run`)."""

from __future__ import annotations

import contextlib
import logging
import secrets
import signal
import socket
import threading
import webbrowser
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from poster import config as config_mod
from poster import jobs, store
from poster.errors import UserError
from poster.i18n import _
from poster.ui.app import UIState, create_app, is_loopback

log = logging.getLogger("poster.ui")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UserError(
            _("cannot listen on {host}:{port}: {reason} (try --port 0 for any free port)").format(
                host=host, port=port, reason=exc.strerror
            )
        ) from None
    sock.listen(64)
    sock.set_inheritable(False)
    return sock


def url_for(host: str, port: int, secret: str) -> str:
    shown = f"[{host.strip('[]')}]" if ":" in host.strip("[]") else host
    return f"http://{shown}:{port}/?token={secret}"


class Launch:
    """Everything one `poster ui` owns: the socket, the state, the in-process daemon."""

    def __init__(
        self,
        config_path: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        daemon: bool = True,
        allow_remote: bool = False,
        warn: Callable[[str], None] = lambda s: None,
    ) -> None:
        cfg = config_mod.load(config_path)
        if not is_loopback(host.strip("[]")):
            if not allow_remote:
                raise UserError(
                    _(
                        "{host} is not a loopback address: anyone on that network could reach poster "
                        "ui (the link's secret is its only guard, sent without encryption); add "
                        "--allow-remote if you really mean it"
                    ).format(host=host)
                )
            warn(
                _(
                    "warning: poster ui listens on {host}, reachable from other computers; "
                    "keep the link secret"
                ).format(host=host)
            )
        self.socket = bind(host, port)
        self.port = self.socket.getsockname()[1]
        self.secret = secrets.token_urlsafe(32)
        self.state = UIState(config_path=cfg.path, secret=self.secret, host=host.strip("[]"), port=self.port)
        self.state.config()
        self._stop = threading.Event()
        self._exit = contextlib.ExitStack()
        self._thread: threading.Thread | None = None
        self._kicks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="poster-ui-kick")
        if daemon:
            self._start_daemon(cfg)
        else:
            from poster import daemon as daemon_mod

            self.state.daemon = "outside" if daemon_mod.is_running(cfg) else "none"
        self.app = create_app(self.state)
        self.server: Any = None
        self.url = url_for(host, self.port, self.secret)

    def _start_daemon(self, cfg: config_mod.Config) -> None:
        from poster import daemon as daemon_mod
        from poster import schedule

        try:
            self._exit.enter_context(daemon_mod.run_lock(cfg))
        except UserError:
            self.state.daemon = "outside"  # a `poster run` of its own posts; the UI only shows
            return
        conn = store.connect(cfg.db_path)
        try:
            for job in jobs.recover(conn):
                log.warning(
                    "%s",
                    _("uncertain job {job} ({name} → {target}): {reason}").format(
                        job=job.id, name=job.name, target=job.target, reason=job.reason
                    ),
                )
        finally:
            conn.close()
        tick = daemon_mod.make_tick(self.state.config)
        self.state.daemon = "inside"
        self.state.kick = lambda: self._kicks.submit(tick, self._stop) and None
        self._thread = threading.Thread(
            target=schedule.run_daemon,
            args=(cfg, tick),
            kwargs={"install_signals": False, "stop": self._stop},
            name="poster-daemon",
            daemon=True,
        )
        self._thread.start()

    def serve(self, *, open_browser: bool = False) -> None:
        """Serve until SIGINT/SIGTERM (uvicorn handles them), then stop the daemon cleanly."""
        import uvicorn

        self.server = server = uvicorn.Server(
            uvicorn.Config(
                self.app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5
            )
        )
        if open_browser:
            threading.Timer(0.5, webbrowser.open, args=(self.url,)).start()
        # uvicorn stops on SIGINT/SIGTERM and then re-raises the signal to the handler it found:
        # make that handler a quiet one, so a stop is a clean exit (status 0), as for `poster run`
        old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, lambda *_a: None)
        try:
            server.run(sockets=[self.socket])
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            self.close()

    def stop(self) -> None:
        """Ask a serving launch to stop (what SIGINT does); `serve` then returns."""
        if self.server is not None:
            self.server.should_exit = True

    def close(self) -> None:
        self._stop.set()
        self._kicks.shutdown(wait=True, cancel_futures=True)
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.state.tasks.shutdown()
        self._exit.close()
        with contextlib.suppress(OSError):
            self.socket.close()
