"""Answers to a create call that leave open whether the post exists (issue 13, item 2).

The request reached the platform; what came back is not JSON, JSON without the post's id,
or longer than any answer can be. The post may exist, so the job must never be `failed`
(a failed job can be retried: a second post): the adapter looks it up where it can and
answers `posted` (found) or `uncertain` (the user or a later look-up decides)."""

from __future__ import annotations

import pytest

from poster.platforms.base import PostStatus
from poster.platforms.http import ANSWER_LIMITS
from poster.platforms.pixiv import PixivAdapter
from tests.platforms.conftest import make_post
from tests.platforms.standins import PLATFORMS
from tests.servers.base import Response


@pytest.fixture(autouse=True)
def quick_pixiv(monkeypatch):
    monkeypatch.setattr(PixivAdapter, "progress_poll_interval", 0.0)


def unreadable(kind: str) -> Response:
    if kind == "not-json":
        return Response(200, "<html><body>Something went wrong</body></html>")
    if kind == "no-id":
        return Response(200, {"ok": True})
    if kind == "not-an-object":
        return Response(200, ["created"])
    if kind == "too-long":  # a JSON-looking answer longer than any API answer
        size = ANSWER_LIMITS["api"] + 1
        return Response(200, chunks=iter([b'{"id": "' + b"9" * size + b'"}']), length=size + 10)
    raise AssertionError(kind)


KINDS = ["not-json", "no-id", "not-an-object", "too-long"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(PLATFORMS))
def test_unreadable_answer_without_a_post_is_uncertain(name, kind, tmp_path):
    """The platform did not create the post (the answer came instead of the handler): the
    adapters that can look it up find nothing yet, the others cannot tell — uncertain."""
    platform = PLATFORMS[name]
    with platform.server() as server:
        call = platform.create
        server.fail(call.method, call.path, 200)
        server.failures[-1][3] = unreadable(kind)
        result = platform.adapter(server, tmp_path).post(make_post())
        assert platform.created(server) == 0
    assert result.status is PostStatus.UNCERTAIN, result
    wording = "not visible yet" if platform.lookup else "may or may not exist"
    assert wording in result.reason


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(PLATFORMS))
def test_unreadable_answer_after_the_post_was_made(name, kind, tmp_path):
    """The platform created the post and then answered garbage: found by the adapters that
    can look it up (recorded with its real id), uncertain for the others; never a second."""
    platform = PLATFORMS[name]
    with platform.server() as server:
        call = platform.create
        server.answer_after(call.method, call.path, response=unreadable(kind))
        result = platform.adapter(server, tmp_path).post(make_post())
        assert platform.created(server) == 1
        assert len(server.calls(call.method, call.path)) == 1
        if platform.lookup:
            assert result.status is PostStatus.POSTED, result.reason
            assert result.remote_id and "elsewhere" not in result.remote_id
            store = server.notes if name == "misskey" else server.records
            assert any(key in result.remote_id for key in store)
        else:
            assert result.status is PostStatus.UNCERTAIN, result.reason
            assert "check the" in result.reason


@pytest.mark.parametrize(
    "answer",
    [
        Response(200, "<html>maintenance</html>"),
        Response(200, {"error": False, "message": ""}),  # no body, no illustId
        Response(401, {"error": True, "message": "Unauthorized", "body": []}),
    ],
    ids=["not-json", "no-body", "session-gone"],
)
def test_pixiv_progress_poll_failing_after_the_work_was_taken_is_uncertain(answer, tmp_path):
    platform = PLATFORMS["pixiv"]
    with platform.server() as server:
        server.fail("GET", r"/ajax/work/create/illustration/progress", answer.status, times=99)
        server.failures[-1][3] = answer
        result = platform.adapter(server, tmp_path).post(make_post())
        assert len(server.works) == 1
    assert result.status is PostStatus.UNCERTAIN, result.reason
    assert "pixiv accepted the work" in result.reason or "still processing" in result.reason


def test_pixiv_saying_conversion_failed_is_still_a_clear_failure(tmp_path):
    platform = PLATFORMS["pixiv"]
    with platform.server() as server:
        server.fail(
            "GET",
            r"/ajax/work/create/illustration/progress",
            200,
            times=99,
            body={"error": False, "message": "", "body": {"status": "FAILED"}},
        )
        result = platform.adapter(server, tmp_path).post(make_post())
    assert result.status is PostStatus.FATAL and "FAILED" in result.reason


@pytest.mark.parametrize("name", list(PLATFORMS))
def test_a_refusal_of_the_create_call_is_still_a_failure(name, tmp_path):
    """A clear 4xx says nothing was created: no question for the user."""
    platform = PLATFORMS[name]
    with platform.server() as server:
        call = platform.create
        server.fail(call.method, call.path, 400, body={"error": "InvalidRequest", "message": "bad"})
        result = platform.adapter(server, tmp_path).post(make_post())
    assert result.status is PostStatus.FATAL, result
