from __future__ import annotations

import pytest

from poster.platforms import adapter_class
from poster.platforms.base import Existence, PostStatus
from tests.platforms.conftest import make_post
from tests.servers.misskey import MisskeyServer

TOKEN = "misskey-token-abc"


@pytest.fixture
def mk():
    with MisskeyServer() as server:
        yield server


def adapter(server, tmp_path, token=TOKEN, **settings):
    return adapter_class("misskey")(
        "mk",
        {"adapter": "misskey", "policy": "light", "instance": server.url, **settings},
        {"TOKEN": token},
        data_dir=tmp_path,
    )


def test_posts_note_with_files_and_alt(mk, tmp_path):
    post = make_post(2, rating="r18g")
    result = adapter(mk, tmp_path, visibility="home").post(post)
    assert result.status is PostStatus.POSTED, result.reason
    (note,) = mk.notes.values()
    assert result.url == f"{mk.url}/notes/{note['id']}"
    assert note["visibility"] == "home" and note["cw"] == "R18G"
    assert "#oc #rabbit" in note["text"]
    files = [mk.files[f] for f in note["fileIds"]]
    assert [f["comment"] for f in files] == ["A white rabbit under an orange sky"] * 2
    assert all(f["isSensitive"] for f in files)
    assert files[0]["data"] == post.media[0].data


def test_limits_read_from_server(tmp_path):
    with MisskeyServer(max_file_mb=1) as server:
        caps = adapter(server, tmp_path).effective_capabilities()
    assert caps.max_bytes == 1024 * 1024 and caps.text_length == 3000


def test_oversize_is_fatal(tmp_path):
    with MisskeyServer(max_file_mb=1) as server:
        result = adapter(server, tmp_path).post(make_post(data=b"x" * (1024 * 1024 + 1)))
    assert result.status is PostStatus.FATAL and "bytes" in result.reason


def test_401(mk, tmp_path):
    result = adapter(mk, tmp_path, token="bad-token-zzz").post(make_post())
    assert result.status is PostStatus.FATAL
    assert "poster login mk" in result.reason and "bad-token-zzz" not in result.reason


def test_429_then_retry_at(mk, tmp_path):
    mk.fail(
        "POST",
        "/api/notes/create",
        429,
        times=9,
        headers={"Retry-After": "7200"},
        body={"error": {"code": "RATE_LIMIT_EXCEEDED", "message": "Rate limit exceeded."}},
    )
    result = adapter(mk, tmp_path).post(make_post())
    assert result.status is PostStatus.RETRYABLE and result.retry_at is not None


def test_5xx_then_success(mk, tmp_path):
    mk.fail("POST", "/api/drive/files/create", 502, times=2)
    result = adapter(mk, tmp_path).post(make_post())
    assert result.status is PostStatus.POSTED, result.reason


def test_ambiguous_create_is_resolved_by_lookup(mk, tmp_path):
    # the note is created but the answer is lost (500 after the fact): no duplicate, no guess
    orig = mk.create_note

    def create_then_fail(req, m):
        orig(req, m)
        from tests.servers.base import HttpError

        raise HttpError(500, {"error": "boom"})

    mk.routes = [(meth, rx, create_then_fail if h == orig else h) for meth, rx, h in mk.routes]
    a = adapter(mk, tmp_path)
    post = make_post(key="job-amb")
    result = a.post(post)
    assert result.status is PostStatus.POSTED
    assert len(mk.notes) == 1
    assert a.find_existing(post)[0] is Existence.EXISTS
    assert a.find_existing(make_post(key="job-other")) == (Existence.ABSENT, None)


def test_check(mk, tmp_path):
    assert adapter(mk, tmp_path).check().ok
    assert not adapter(mk, tmp_path, token="nope-nope").check().ok


def test_ambiguous_create_not_yet_visible_stays_uncertain(mk, tmp_path):
    # the server fails before creating anything, but the client cannot know that: a lookup
    # that finds nothing right away must not lead to an immediate second create
    from tests.servers.base import HttpError

    def fail(req, m):
        raise HttpError(500, {"error": "boom"})

    mk.routes = [(meth, rx, fail if h == mk.create_note else h) for meth, rx, h in mk.routes]
    result = adapter(mk, tmp_path).post(make_post(key="job-amb2"))
    assert result.status is PostStatus.UNCERTAIN
    assert "look again" in (result.reason or "")
    assert len(mk.notes) == 0
