"""The one HTTP seam: retries with backoff, 429 handling, ambiguity of non-idempotent
requests, the token-refresh hook, secret masking; plus the text and media helpers."""

from __future__ import annotations

import io
import socket
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from poster.platforms.http import (
    Ambiguous,
    HttpClient,
    NetworkFailure,
    RateLimited,
    parse_retry_at,
)
from poster.platforms.media import has_metadata, strip_metadata
from poster.platforms.text import (
    bluesky_facets,
    compose,
    grapheme_length,
    x_weighted_length,
)
from tests.platforms.conftest import SleepRecorder, image_bytes
from tests.servers.base import Response, StandInServer


@pytest.fixture
def server():
    s = StandInServer()
    s.route("GET", r"/ok", lambda r, m: {"ok": True})
    s.route("POST", r"/create", lambda r, m: {"created": True})
    s.route(
        "GET",
        r"/private",
        lambda r, m: Response(200 if r.header("authorization") == "Bearer fresh-token" else 401, {}),
    )
    with s:
        yield s


def client(server, **kw):
    kw.setdefault("sleep", SleepRecorder())
    return HttpClient(server.url, backoff=0.01, max_retries=3, **kw)


NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "headers,expected",
    [
        ({"Retry-After": "120"}, NOW + timedelta(seconds=120)),
        ({"Retry-After": "Sun, 22 Nov 2026 13:00:00 GMT"}, NOW + timedelta(hours=1)),
        (
            {"x-rate-limit-reset": str(int((NOW + timedelta(minutes=15)).timestamp()))},
            NOW + timedelta(minutes=15),
        ),
        ({"X-RateLimit-Reset": "2026-11-22T12:05:00.000Z"}, NOW + timedelta(minutes=5)),
        ({"ratelimit-reset": "30"}, NOW + timedelta(seconds=30)),
        ({}, None),
    ],
)
def test_parse_retry_at(headers, expected):
    assert parse_retry_at(headers, now=NOW) == expected


def test_5xx_retried_with_backoff_then_success(server):
    server.fail("GET", "/ok", 503, times=2)
    sleep = SleepRecorder()
    r = client(server, sleep=sleep).get("/ok")
    assert r.status_code == 200 and len(sleep.calls) == 2
    assert sleep.calls[0] <= sleep.calls[1] * 2  # exponential, jittered


def test_5xx_gives_up_after_bounded_retries(server):
    server.fail("GET", "/ok", 500, times=10)
    with pytest.raises(NetworkFailure, match="after 4 attempts"):
        client(server).get("/ok")
    assert len(server.calls("GET", "/ok")) == 4


def test_non_idempotent_500_is_ambiguous_not_retried(server):
    server.fail("POST", "/create", 500, times=1)
    with pytest.raises(Ambiguous) as err:
        client(server).post("/create", json={})
    assert err.value.ambiguous and len(server.calls("POST", "/create")) == 1


def test_non_idempotent_503_is_retried(server):
    server.fail("POST", "/create", 503, times=1)
    assert client(server).post("/create", json={}).status_code == 200


def test_connection_refused_is_retried_even_for_post():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    sleep = SleepRecorder()
    c = HttpClient(
        f"http://127.0.0.1:{port}", sleep=sleep, max_retries=2, backoff=0.01, secrets=["tok-secret-123"]
    )
    with pytest.raises(NetworkFailure) as err:
        c.post("/create?token=tok-secret-123", json={})
    assert len(sleep.calls) == 2 and "tok-secret-123" not in str(err.value)


def test_429_short_wait_in_place_long_wait_raised(server):
    server.fail("GET", "/ok", 429, times=1, headers={"Retry-After": "1"})
    sleep = SleepRecorder()
    assert client(server, sleep=sleep, max_inline_wait=5).get("/ok").status_code == 200
    assert 0 < sleep.calls[0] <= 1
    server.fail("GET", "/ok", 429, times=1, headers={"Retry-After": "600"})
    with pytest.raises(RateLimited) as err:
        client(server, max_inline_wait=5).get("/ok")
    assert err.value.retry_at > datetime.now(UTC) + timedelta(seconds=500)


def test_refresh_hook_on_401(server):
    calls = []

    def refresh(c):
        calls.append(1)
        c.session.headers["Authorization"] = "Bearer fresh-token"
        return True

    c = client(server, on_unauthorized=refresh, headers={"Authorization": "Bearer old"})
    assert c.get("/private").status_code == 200 and calls == [1]


def test_masking(server):
    c = client(server, secrets=["hunter2-secret"])
    c.add_secret("csrf-abcdef")
    assert c.mask("a hunter2-secret b csrf-abcdef") == "a *** b ***"


# ------------------------------------------------------------------------------ text
def test_graphemes_and_weights():
    assert grapheme_length("👩‍👩‍👧‍👦🇯🇵é") == 3  # ZWJ family, flag, e + combining accent
    assert x_weighted_length("abc") == 3
    assert x_weighted_length("あいう") == 6
    assert x_weighted_length("see https://example.com/a/very/long/path") == 4 + 23


def test_compose_drops_tags_then_trims():
    text, trimmed = compose("hello", ["a", "b"], limit=100)
    assert text == "hello\n\n#a #b" and not trimmed
    text, trimmed = compose("hello", ["toolongtag"], limit=8)
    assert text == "hello" and trimmed
    text, trimmed = compose("x" * 50, [], limit=10)
    assert len(text) == 10 and text.endswith("…") and trimmed
    text, _ = compose("art #oc", ["oc", "new"], limit=None)
    assert text == "art #oc\n\n#new"


def test_bluesky_facets_use_utf8_byte_offsets():
    text = "うさぎ #兎 https://example.com"
    facets = bluesky_facets(text)
    raw = text.encode()
    tag = next(f for f in facets if f["features"][0]["$type"].endswith("#tag"))
    link = next(f for f in facets if f["features"][0]["$type"].endswith("#link"))
    assert raw[tag["index"]["byteStart"] : tag["index"]["byteEnd"]].decode() == "#兎"
    assert tag["features"][0]["tag"] == "兎"
    assert raw[link["index"]["byteStart"] : link["index"]["byteEnd"]] == b"https://example.com"


# ----------------------------------------------------------------------------- media
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_strip_metadata_is_lossless(fmt):
    data = image_bytes(fmt, exif=True)
    assert has_metadata(data)
    clean = strip_metadata(data)
    assert b"SecretCam" not in clean
    with Image.open(io.BytesIO(data)) as a, Image.open(io.BytesIO(clean)) as b:
        assert a.size == b.size
        assert a.convert("RGB").tobytes() == b.convert("RGB").tobytes()
        assert not b.getexif()
