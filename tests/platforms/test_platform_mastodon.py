from __future__ import annotations

from poster.platforms import adapter_class
from poster.platforms.base import PostStatus
from tests.platforms.conftest import make_post

TOKEN = "mastodon-token-123"


def adapter(server, tmp_path, token=TOKEN, **settings):
    cls = adapter_class("mastodon")
    return cls(
        "masto",
        {"adapter": "mastodon", "policy": "light", "instance": server.url, **settings},
        {"TOKEN": token} if token else {},
        data_dir=tmp_path,
    )


def test_posts_image_with_alt_and_idempotency_key(mastodon_server, tmp_path, post):
    result = adapter(mastodon_server, tmp_path).post(post)
    assert result.status is PostStatus.POSTED, result.reason
    assert result.url.startswith(mastodon_server.url + "/@artist/")
    (status,) = mastodon_server.statuses.values()
    assert status["key"] == post.key
    assert "A rabbit at dusk" in status["request"]["status"]
    assert "#oc #rabbit" in status["request"]["status"]
    (media,) = mastodon_server.media.values()
    assert media["description"] == "A white rabbit under an orange sky"
    assert media["data"] == post.media[0].data


def test_repeat_with_same_key_does_not_duplicate(mastodon_server, tmp_path, post):
    a = adapter(mastodon_server, tmp_path)
    first = a.post(post)
    second = a.post(post)
    assert first.remote_id == second.remote_id
    assert len(mastodon_server.statuses) == 1


def test_401_is_fatal_with_plain_words(mastodon_server, tmp_path, post):
    result = adapter(mastodon_server, tmp_path, token="wrong-token-999").post(post)
    assert result.status is PostStatus.FATAL
    assert "poster login masto" in result.reason
    assert "wrong-token-999" not in result.reason


def test_429_long_reset_is_retryable_with_retry_at(mastodon_server, tmp_path, post):
    mastodon_server.fail(
        "POST",
        "/api/v2/media",
        429,
        times=10,
        headers={"X-RateLimit-Reset": "2099-01-01T00:00:00.000Z"},
        body={"error": "Too many requests"},
    )
    result = adapter(mastodon_server, tmp_path).post(post)
    assert result.status is PostStatus.RETRYABLE
    assert result.retry_at is not None and result.retry_at.year == 2099


def test_5xx_then_success(mastodon_server, tmp_path, post, fast_http):
    mastodon_server.fail("POST", "/api/v2/media", 503, times=2)
    mastodon_server.fail("POST", "/api/v1/statuses", 502, times=1)
    result = adapter(mastodon_server, tmp_path).post(post)
    assert result.status is PostStatus.POSTED, result.reason
    assert len(fast_http.calls) == 3  # three backoff waits, none real
    assert len(mastodon_server.statuses) == 1


def test_async_processing_is_awaited(tmp_path, post, monkeypatch):
    from poster.platforms.mastodon import MastodonAdapter
    from tests.servers.mastodon import MastodonServer

    monkeypatch.setattr(MastodonAdapter, "media_poll_interval", 0.0)
    with MastodonServer(process_async=True) as server:
        result = adapter(server, tmp_path).post(post)
    assert result.status is PostStatus.POSTED, result.reason


def test_oversize_is_fatal_and_limits_are_read(tmp_path):
    from tests.servers.mastodon import MastodonServer

    with MastodonServer(image_size_limit=1000) as server:
        a = adapter(server, tmp_path)
        assert a.effective_capabilities().max_bytes == 1000
        big = make_post(data=b"\x89PNG\r\n\x1a\n" + b"0" * 5000)
        result = a.post(big)
    assert result.status is PostStatus.FATAL
    assert "size" in result.reason


def test_missing_credentials(mastodon_server, tmp_path, post):
    result = adapter(mastodon_server, tmp_path, token=None).post(post)
    assert result.status is PostStatus.FATAL
    assert "POSTER_MASTO_TOKEN" in result.reason and "poster login masto" in result.reason


def test_check(mastodon_server, tmp_path):
    assert adapter(mastodon_server, tmp_path).check().ok
    bad = adapter(mastodon_server, tmp_path, token="nope-nope").check()
    assert not bad.ok and "token" in bad.message
