"""Notifications through apprise, to a real HTTP receiver on 127.0.0.1 (apprise's json://)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from poster import config, notify
from tests.conftest import artwork, run_cli


class Receiver:
    """A local webhook: records every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.paths.append(self.path)
                outer.bodies.append(json.loads(data or b"{}"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "hook", auth: str = "") -> str:
        return f"json://{auth + '@' if auth else ''}127.0.0.1:{self.port}/{path}"

    def wait(self, n: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.bodies

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def with_notify(cfg: config.Config, urls: list[str], extra: str = "") -> config.Config:
    lines = cfg.path.read_text(encoding="utf-8").splitlines(keepends=True)
    text = "".join(line for line in lines if not line.startswith("notify ="))
    head, rest = text.split("[intake]", 1)
    cfg.path.write_text(head + f"notify = {json.dumps(urls)}\n{extra}\n[intake]" + rest, encoding="utf-8")
    return config.load(cfg.path)


def test_an_event_reaches_the_receiver(home: config.Config, receiver: Receiver) -> None:
    cfg = with_notify(home, [receiver.url()])
    assert notify.event(cfg, "failed", target="x", file="rabbit.png", reason="the platform refused the post")
    (body,) = receiver.wait(1)
    assert body["title"] == "A post failed" and body["type"] == "failure"
    assert "rabbit.png → x" in body["message"] and "refused" in body["message"]
    assert receiver.paths == ["/hook"]


def test_kinds_and_the_approval_hook_for_the_web_ui(home: config.Config, receiver: Receiver) -> None:
    cfg = with_notify(home, [receiver.url()])
    assert notify.event(cfg, "approval", file="rabbit.png", target="pixiv")
    assert notify.event(cfg, "uncertain", file="a.png", target="x", reason="interrupted")
    bodies = receiver.wait(2)
    assert [b["title"] for b in bodies] == ["Artwork waiting for approval", "A post needs checking"]
    assert "poster confirm" in bodies[1]["message"]
    with pytest.raises(ValueError, match="unknown notification kind"):
        notify.event(cfg, "weather")


def test_credential_reasons_are_told_apart() -> None:
    assert (
        notify.kind_of_failure("no credentials for target x: run `poster login x` or set …") == "credentials"
    )
    assert notify.kind_of_failure("pixiv session expired …: run `poster login pixiv`") == "credentials"
    assert notify.kind_of_failure("the hidden ID did not survive") == "failed"


def test_no_services_no_desktop_session_nothing_sent(
    home: config.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert home.notify == ("desktop",)  # the default
    notify.notifier.cache_clear()
    assert notify.event(home, "failed", reason="x") is False
    n = notify.notifier(("desktop",))
    assert n.services == [] and n.unavailable == ["desktop"]


def test_secrets_in_notification_urls_never_reach_the_log(
    home: config.Config, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """poster's log as the CLI sets it up with -vv --debug (file and stderr): apprise's
    records arrive there (masked), and no password or token of a notification URL does."""
    from poster.logs import setup_logging

    secret = "s3cr3t-Passw0rd-77"
    token = "AbCdEf0123456789TOKEN"
    cfg = with_notify(home, [receiver.url(f"{token}", auth=f"me:{secret}")])
    setup_logging(2, True, cfg.data_dir)
    try:
        assert notify.event(cfg, "failed", reason=f"oops {secret}")
        receiver.wait(1)
        # a service that fails: apprise logs the attempt, quoting its URL
        bad = with_notify(home, [f"json://me:{secret}@127.0.0.1:1/{token}"])
        assert notify.event(bad, "failed", reason="x") is False
    finally:
        setup_logging(0, False, None)
    logged = (cfg.data_dir / "poster.log").read_text(encoding="utf-8") + capsys.readouterr().err
    assert "apprise: " in logged, "apprise logged nothing: the test would prove nothing"
    assert secret not in logged and token not in logged
    assert secret not in receiver.bodies[0]["message"]  # a reason quoting one is masked too
    shown = notify.notifier(tuple(cfg.notify)).services
    assert shown and secret not in shown[0] and token not in shown[0]


def test_bad_notify_entries_are_a_config_error_without_echoing_them(home: config.Config) -> None:
    from poster.errors import ConfigError

    with pytest.raises(ConfigError, match=r"notify: \[0\]: not a notification URL") as exc:
        with_notify(home, ["hooks.example/abcdef-secret"])
    assert "abcdef-secret" not in str(exc.value)


def test_run_once_notifies_a_credential_problem(
    home: config.Config, receiver: Receiver, drop: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `poster run --once`: a Mastodon target with no token fails before any request;
    the artist is told to log in again."""
    monkeypatch.delenv("POSTER_MASTO_TOKEN", raising=False)
    cfg = with_notify(
        home,
        [receiver.url()],
    )
    text = cfg.path.read_text(encoding="utf-8")
    text += f'\n[targets.masto]\nadapter = "mastodon"\ninstance = "http://127.0.0.1:{receiver.port}"\n'
    cfg.path.write_text(text, encoding="utf-8")
    import keyring
    from keyring.backends.null import Keyring as NullKeyring

    keyring.set_keyring(NullKeyring())
    drop("a.png", artwork((500, 400), seed=1))
    drop("a.toml", b'targets = ["masto"]\n')
    code, out, _ = run_cli("run", "--once", "--now", cfg=config.load(cfg.path))
    assert code == 1 and "failed" in out
    (body,) = receiver.wait(1)
    assert body["title"] == "Log in again" and "a.png → masto" in body["message"]


def test_config_example_documents_notify() -> None:
    text = (Path(notify.__file__).parent / "data" / "config.example.toml").read_text(encoding="utf-8")
    assert 'notify = ["desktop"]' in text


def test_an_artwork_moved_to_needs_attention_is_notified(
    home: config.Config, receiver: Receiver, drop: Any
) -> None:
    cfg = with_notify(home, [receiver.url()])
    drop("bad.png", artwork((400, 300), seed=2))
    drop("bad.toml", b"title = [unclosed\n")
    code, _out, err = run_cli("run", "--once", "--now", "-q", cfg=cfg)
    assert code == 1 and "held" in err  # -q keeps what needs the artist
    (body,) = receiver.wait(1)
    assert body["title"] == "Artwork needs attention" and "bad.png" in body["message"]


def test_the_daemon_without_a_terminal_asks_for_approval(
    home: config.Config, receiver: Receiver, drop: Any
) -> None:
    """The tick `poster ui` runs (no CLI reporter): an artwork waiting for approval is rendered
    ahead of its time and the artist is told once, not on every tick."""
    import threading

    from poster import daemon

    cfg = with_notify(home, [receiver.url()])
    text = cfg.path.read_text(encoding="utf-8").replace("approve = false", "approve = true", 1)
    cfg.path.write_text(text, encoding="utf-8")
    cfg = config.load(cfg.path)
    assert cfg.approve is True
    drop("a.png", artwork((500, 400), seed=1))
    drop("a.toml", b'targets = ["pixiv"]\n')
    tick = daemon.Ticker(cfg, config_source=lambda: cfg)
    tick(threading.Event())
    (body,) = receiver.wait(1)
    assert body["title"] == "Artwork waiting for approval" and "a.png → pixiv" in body["message"]
    tick(threading.Event())  # already rendered: not told again
    time.sleep(0.5)
    assert len(receiver.bodies) == 1


def test_a_url_kept_as_a_secret_is_named_not_written_in_the_config(
    home: config.Config, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`notify = ["secret:hook"]`: the URL (with its token) comes from the environment or the
    keyring, never from config.toml; a missing one is reported by name, not sent."""
    url = receiver.url("hook-" + "t0ken" * 4)
    cfg = with_notify(home, ["secret:hook"])
    assert "t0ken" not in cfg.path.read_text(encoding="utf-8")
    monkeypatch.setenv("POSTER_NOTIFY_HOOK", url)
    notify.notifier.cache_clear()
    assert notify.event(cfg, "failed", file="a.png", target="x", reason="refused")
    (body,) = receiver.wait(1)
    assert body["title"] == "A post failed"
    monkeypatch.delenv("POSTER_NOTIFY_HOOK")
    import keyring
    from keyring.backends.null import Keyring as NullKeyring

    keyring.set_keyring(NullKeyring())
    notify.notifier.cache_clear()
    n = notify.notifier(("secret:hook",))
    assert n.services == [] and "poster login notify:hook" in n.unavailable[0]
    with pytest.raises(config.ConfigError, match=r"secret:NAME"):
        with_notify(home, ["secret:no spaces"])


def test_login_stores_a_notification_url_in_the_keyring(
    home: config.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from poster import cli, secrets

    stored: dict[str, dict[str, str]] = {}
    monkeypatch.setattr(secrets, "keyring_status", lambda: (True, "TestKeyring"))
    monkeypatch.setattr(secrets, "store", lambda target, values: stored.setdefault(target, {}).update(values))
    result = CliRunner().invoke(
        cli.cli, ["--config", str(home.path), "login", "notify:phone"], input="ntfy://s3cr3t-topic\n"
    )
    assert result.exit_code == 0, result.output
    assert stored == {"notify": {"phone": "ntfy://s3cr3t-topic"}}
    assert "s3cr3t" not in result.output and '"secret:phone"' in result.output
    result = CliRunner().invoke(
        cli.cli, ["--config", str(home.path), "login", "notify:phone"], input="nope\n"
    )
    assert result.exit_code != 0 and stored["notify"]["phone"] == "ntfy://s3cr3t-topic"
