"""Every request has an overall deadline and every answer a size cap (issue 13, item 3).

`timeout` used to be a per-read timeout: a server sending one byte before each read timed
out held a run for minutes, and a 100 MB answer was read whole into memory. Here stand-in
servers trickle their status line, headers or body, or stream an answer far longer than any
real one; the request must end near its deadline and stop reading at the cap. (Wall-time
bounds are generous: they separate "cut off" from "held for the whole trickle".)"""

from __future__ import annotations

import itertools
import time

import pytest

from poster.platforms.base import PostStatus
from poster.platforms.http import (
    ANSWER_LIMITS,
    Ambiguous,
    AnswerTooLarge,
    DeadlineExceeded,
    HttpClient,
)
from tests.platforms.conftest import SleepRecorder, make_post
from tests.platforms.standins import PLATFORMS
from tests.servers.base import Response, StandInServer, pause

TRICKLE = 0.2  # seconds per byte: always within a per-read timeout, never finished soon
DEADLINE = 2  # the target's `timeout`
BOUND = 10.0  # seconds: well above the deadline, far below the trickle's own length


def trickled(**kw) -> Response:
    body = {"id": "f1", "createdNote": {"id": "n1"}, "padding": "x" * 100}
    return Response(200, body, trickle=TRICKLE, **kw)


@pytest.fixture
def mk():
    with PLATFORMS["misskey"].server() as server:
        yield server


def post_with(server, tmp_path):
    adapter = PLATFORMS["misskey"].adapter(server, tmp_path, timeout=DEADLINE)
    t0 = time.monotonic()
    result = adapter.post(make_post())
    return result, time.monotonic() - t0


@pytest.mark.parametrize("where", ["status line and headers", "body"])
def test_a_trickled_answer_to_an_upload_ends_at_the_deadline_and_is_retryable(mk, tmp_path, where):
    mk.fail("POST", r"/api/drive/files/create", 200)
    mk.failures[-1][3] = trickled(trickle_body=where == "body")
    result, took = post_with(mk, tmp_path)
    assert took < BOUND, f"held for {took:.1f} s"
    assert result.status is PostStatus.RETRYABLE, result
    assert "within 2 s" in result.reason
    assert len(mk.calls("POST", r"/api/drive/files/create")) == 1  # not repeated in place


@pytest.mark.parametrize("where", ["status line and headers", "body"])
def test_a_trickled_answer_to_the_create_call_is_uncertain(mk, tmp_path, where):
    mk.fail("POST", r"/api/notes/create", 200)
    mk.failures[-1][3] = trickled(trickle_body=where == "body")
    result, took = post_with(mk, tmp_path)
    assert took < BOUND, f"held for {took:.1f} s"
    assert result.status is PostStatus.UNCERTAIN, result
    assert "within 2 s" in result.reason and "not visible yet" in result.reason
    assert len(mk.calls("POST", r"/api/notes/create")) == 1


def test_a_create_that_was_made_and_then_trickled_is_found(mk, tmp_path):
    mk.answer_after("POST", r"/api/notes/create", response=trickled())
    result, took = post_with(mk, tmp_path)
    assert took < BOUND
    assert result.status is PostStatus.POSTED and result.remote_id in mk.notes
    assert len(mk.notes) == 1


@pytest.fixture
def hostile():
    s = StandInServer()
    s.route("GET", r"/trickle", lambda r, m: trickled())
    s.route("POST", r"/trickle", lambda r, m: trickled())
    s.route("GET", r"/silent", lambda r, m: pause(30) or {})
    # the status line and the first headers come at once; the cut falls inside a header
    s.route(
        "GET",
        r"/mid-headers",
        lambda r, m: Response(200, {"a": 1}, headers={"X-Padding": "p" * 500}, trickle=0.02),
    )
    with s:
        yield s


def client(server, **kw):
    return HttpClient(server.url, sleep=SleepRecorder(), timeout=(5.0, 5.0), deadline=DEADLINE, **kw)


@pytest.mark.parametrize("path", ["/trickle", "/silent", "/mid-headers"])
def test_the_deadline_covers_connect_send_and_the_whole_answer(hostile, path):
    """Also when the cut falls inside the headers: http.client would take the closed
    socket for their end and hand back a complete-looking, empty 200."""
    t0 = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="within 2 s"):
        client(hostile).get(path)
    assert time.monotonic() - t0 < BOUND
    assert len(hostile.calls("GET", path)) == 1


def test_a_deadline_hit_on_a_create_call_is_ambiguous(hostile):
    t0 = time.monotonic()
    with pytest.raises(Ambiguous, match="within 2 s"):
        client(hostile).post("/trickle", json={"a": 1})
    assert time.monotonic() - t0 < BOUND


def test_an_upload_gets_time_for_its_size(hostile):
    """A large body is not cut at the bare deadline: it gets `size / UPLOAD_FLOOR_RATE` more."""
    hostile.route("POST", r"/upload", lambda r, m: pause(DEADLINE + 1) or {"n": len(r.body)})
    body = b"x" * (256 * 1024)  # 4 more seconds at the floor rate
    r = client(hostile).post("/upload", data=body, idempotent=True)
    assert r.json() == {"n": len(body)}


CHUNK = b"0123456789abcdef" * 4096  # 64 KiB
TOTAL = 64 * 1024 * 1024


def endless(declared: bool) -> Response:
    chunks = itertools.repeat(CHUNK, TOTAL // len(CHUNK))
    return Response(200, chunks=chunks, length=TOTAL if declared else None)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "no-length"])
def test_a_huge_answer_stops_at_the_cap(hostile, declared):
    hostile.route("GET", r"/huge", lambda r, m: endless(declared))
    with pytest.raises(AnswerTooLarge, match=str(ANSWER_LIMITS["api"])):
        client(hostile).get("/huge")
    pause(0.5)  # let the server notice the hang-up
    assert hostile.sent_body_bytes < TOTAL // 8, hostile.sent_body_bytes


def test_a_huge_answer_to_a_create_call_is_ambiguous(hostile):
    hostile.route("POST", r"/huge", lambda r, m: endless(False))
    with pytest.raises(Ambiguous, match="more than"):
        client(hostile).post("/huge", json={})
    pause(0.5)
    assert hostile.sent_body_bytes < TOTAL // 8


def test_a_web_page_may_be_larger_than_an_api_answer(hostile):
    page = "<html>" + "a" * (ANSWER_LIMITS["api"] + 10) + "</html>"
    hostile.route("GET", r"/page", lambda r, m: Response(200, page))
    assert len(client(hostile).get("/page", answer="page").text) == len(page)
    with pytest.raises(AnswerTooLarge):
        client(hostile).get("/page")
