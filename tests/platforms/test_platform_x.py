from __future__ import annotations

import time

import pytest

from poster.platforms import adapter_class
from poster.platforms.base import PostStatus
from tests.platforms.conftest import image_bytes, make_post
from tests.servers.x import CREDS, XServer


@pytest.fixture
def x_server():
    with XServer() as server:
        yield server


def adapter(server, tmp_path, creds=CREDS, **settings):
    return adapter_class("x")(
        "x", {"adapter": "x", "policy": "heavy", "api_base": server.url, **settings}, creds, data_dir=tmp_path
    )


def test_posts_images_with_alt_text(x_server, tmp_path):
    post = make_post(2)
    result = adapter(x_server, tmp_path, username="artist").post(post)
    assert result.status is PostStatus.POSTED, result.reason
    (tweet,) = x_server.tweets.values()
    assert result.url == f"https://x.com/artist/status/{tweet['id']}"
    assert len(tweet["media_ids"]) == 2
    for mid in tweet["media_ids"]:
        media = x_server.media[mid]
        assert media["alt"] == "A white rabbit under an orange sky"
        assert media["data"] == post.media[0].data
        assert media["category"] == "tweet_image"
    assert tweet["text"] == "A rabbit at dusk\n\n#oc #rabbit"


def test_chunked_upload_for_large_files(x_server, tmp_path, monkeypatch):
    monkeypatch.setattr("poster.platforms.x.time.sleep", lambda s: None)
    data = image_bytes("PNG", size=(300, 300))
    post = make_post(data=data)
    result = adapter(x_server, tmp_path, chunk_threshold=1000, chunk_size=1000).post(post)
    assert result.status is PostStatus.POSTED, result.reason
    (tweet,) = x_server.tweets.values()
    media = x_server.media[tweet["media_ids"][0]]
    assert media["data"] == data and media.get("finalized")
    assert len(x_server.calls("POST", r"/2/media/upload/\d+/append")) == -(-len(data) // 1000)
    assert x_server.calls("GET", "/2/media/upload")  # STATUS polled


def test_caption_trimmed_to_weighted_280(x_server, tmp_path, caplog):
    post = make_post(caption="あ" * 200, tags=())
    result = adapter(x_server, tmp_path).post(post)
    assert result.status is PostStatus.POSTED
    (tweet,) = x_server.tweets.values()
    assert len(tweet["text"]) == 140 and tweet["text"].endswith("…")
    assert "trimmed" in caplog.text


def test_link_only_when_asked(x_server, tmp_path):
    post = make_post(options={"link": "https://www.pixiv.net/artworks/1"})
    adapter(x_server, tmp_path).post(post)
    adapter(x_server, tmp_path, link_back=True).post(make_post(caption="second", options=post.options))
    texts = [t["text"] for t in x_server.tweets.values()]
    assert "pixiv" not in texts[0] and texts[1].endswith("https://www.pixiv.net/artworks/1")


def test_401_bad_keys(x_server, tmp_path):
    creds = dict(CREDS, ACCESS_TOKEN_SECRET="wrong-secret-1")
    result = adapter(x_server, tmp_path, creds=creds).post(make_post())
    assert result.status is PostStatus.FATAL
    assert "401" in result.reason and "poster login x" in result.reason
    assert "wrong-secret-1" not in result.reason


def test_429_with_reset(x_server, tmp_path):
    reset = int(time.time()) + 3600
    x_server.fail(
        "POST",
        "/2/tweets",
        429,
        times=5,
        headers={"x-rate-limit-reset": str(reset)},
        body={"title": "Too Many Requests", "detail": "Too Many Requests"},
    )
    result = adapter(x_server, tmp_path).post(make_post())
    assert result.status is PostStatus.RETRYABLE
    assert int(result.retry_at.timestamp()) == reset
    assert not x_server.tweets


def test_429_short_reset_is_waited_in_place(x_server, tmp_path, fast_http):
    x_server.fail("POST", "/2/tweets", 429, times=1, headers={"retry-after": "2"})
    result = adapter(x_server, tmp_path).post(make_post())
    assert result.status is PostStatus.POSTED
    assert fast_http.calls and 1.0 <= fast_http.calls[-1] <= 2.0


def test_usage_capped_and_24h_limit(x_server, tmp_path):
    reset = int(time.time()) + 80000
    x_server.fail(
        "POST",
        "/2/tweets",
        429,
        times=5,
        body={
            "title": "UsageCapExceeded",
            "detail": "Usage cap exceeded: Monthly product cap",
            "type": "https://api.twitter.com/2/problems/usage-capped",
        },
        headers={
            "x-rate-limit-reset": str(int(time.time()) + 900),
            "x-user-limit-24hour-remaining": "0",
            "x-user-limit-24hour-reset": str(reset),
        },
    )
    result = adapter(x_server, tmp_path).post(make_post())
    assert result.status is PostStatus.RETRYABLE
    assert "usage cap" in result.reason
    assert int(result.retry_at.timestamp()) == reset


def test_duplicate_is_fatal_with_clear_reason(x_server, tmp_path):
    a = adapter(x_server, tmp_path)
    assert a.post(make_post(key="a")).status is PostStatus.POSTED
    result = a.post(make_post(key="b"))
    assert result.status is PostStatus.FATAL and "duplicate" in result.reason


def test_5xx_then_success_on_upload(x_server, tmp_path):
    x_server.fail("POST", "/2/media/upload", 500, times=2)
    result = adapter(x_server, tmp_path).post(make_post())
    assert result.status is PostStatus.POSTED, result.reason


def test_5xx_on_create_is_not_blindly_retried(x_server, tmp_path):
    x_server.fail("POST", "/2/tweets", 500, times=1)
    result = adapter(x_server, tmp_path).post(make_post())
    assert result.status is PostStatus.UNCERTAIN  # may exist: the user confirms
    assert len(x_server.calls("POST", "/2/tweets")) == 1


def test_oversize_input(x_server, tmp_path):
    big = make_post(data=b"\x89PNG\r\n\x1a\n" + b"0" * 5_000_001)
    result = adapter(x_server, tmp_path).post(big)
    assert result.status is PostStatus.FATAL and "5000000 bytes" in result.reason
    assert not x_server.media


def test_check(x_server, tmp_path):
    ok = adapter(x_server, tmp_path).check()
    assert ok.ok and "@artist" in ok.message
