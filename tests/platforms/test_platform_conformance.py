"""One conformance test over every registered adapter: capabilities declared and sane,
construction makes no network call and needs no credentials, secrets never appear in
results, reprs, logs or doctor messages."""

from __future__ import annotations

import logging
import socket

import pytest

from poster.platforms import adapter_class, names
from poster.platforms.base import Adapter, Capabilities, CheckResult, PostResult, PostStatus
from tests.platforms.conftest import make_post

SECRET = "S3cr3t-Value-Never-Shown"


def settings_for(name: str, api_base: str) -> dict:
    s = {"adapter": name, "policy": "light"}
    if name != "local":
        s["api_base"] = api_base
    if name in ("mastodon", "misskey"):
        s["instance"] = api_base
    if name == "pixiv":
        s["ai_generated"] = False
    if name == "xfolio":
        s["open_browser"] = False
    return s


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("network call during construction")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", names())
def test_capabilities_declared(name):
    cls = adapter_class(name)
    assert issubclass(cls, Adapter)
    caps = cls.capabilities
    assert isinstance(caps, Capabilities)
    assert caps.max_bytes > 0 and caps.images_per_post >= 1
    assert caps.formats and all(f in ("JPEG", "PNG", "WEBP", "GIF") for f in caps.formats)
    assert caps.min_interval >= 0
    assert isinstance(cls.credential_fields, tuple)
    for edge, quality in caps.reencodes:
        assert edge > 0 and 1 <= quality <= 100


@pytest.mark.parametrize("name", names())
def test_construction_needs_no_network_nor_credentials(name, tmp_path, no_network):
    cls = adapter_class(name)
    a = cls("t1", settings_for(name, "http://127.0.0.1:9"), {}, data_dir=tmp_path)
    b = cls(
        "t2",
        settings_for(name, "http://127.0.0.1:9"),
        {f: SECRET for f in cls.credential_fields},
        data_dir=tmp_path,
    )
    assert SECRET not in repr(b) and SECRET not in str(vars(b).get("settings"))
    assert a.target == "t1"


@pytest.mark.parametrize("name", [n for n in names() if adapter_class(n).credential_fields])
def test_missing_credentials_give_a_plain_fatal_result(name, tmp_path):
    cls = adapter_class(name)
    if name == "xfolio":
        pytest.skip("hand-off mode needs no credentials")
    a = cls("my-acct", settings_for(name, "http://127.0.0.1:9"), {}, data_dir=tmp_path)
    result = a.post(make_post())
    assert result.status is PostStatus.FATAL
    assert "poster login my-acct" in result.reason
    assert "POSTER_MY_ACCT_" in result.reason
    check = a.check()
    assert isinstance(check, CheckResult) and not check.ok


@pytest.mark.parametrize("name", names())
def test_secrets_masked_everywhere(name, tmp_path, caplog):
    """Against a server that echoes everything back (including the Authorization header and
    cookies) in error bodies, no secret may reach a result, a log line or a doctor message."""
    from tests.servers.base import Request, Response, StandInServer

    class Echo(StandInServer):
        def _route(self, req: Request) -> Response:
            echoed = f"{req.headers} {req.path} {req.body[:300]!r}"
            return Response(500 if req.method == "POST" else 401, {"error": echoed, "message": echoed})

    cls = adapter_class(name)
    caplog.set_level(logging.DEBUG)
    with Echo() as server:
        a = cls(
            "t",
            settings_for(name, server.url),
            {f: SECRET + f for f in cls.credential_fields},
            data_dir=tmp_path,
        )
        result = a.post(make_post())
        check = a.check()
    assert isinstance(result, PostResult)
    texts = [result.reason or "", result.url or "", check.message, caplog.text, repr(a)]
    for text in texts:
        assert SECRET not in text, text
