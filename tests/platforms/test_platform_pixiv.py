from __future__ import annotations

import pytest

from poster.platforms import adapter_class
from poster.platforms.base import PostStatus
from poster.platforms.pixiv import PixivAdapter
from tests.platforms.conftest import make_post
from tests.servers.pixiv import SESSION, TOKEN, PixivServer


@pytest.fixture
def px(monkeypatch):
    monkeypatch.setattr(PixivAdapter, "progress_poll_interval", 0.0)
    with PixivServer() as server:
        yield server


def adapter(server, tmp_path, session=SESSION, **settings):
    settings = {
        "adapter": "pixiv",
        "policy": "light",
        "api_base": server.url,
        "ai_generated": False,
        **settings,
    }
    return adapter_class("pixiv")("pixiv", settings, {"SESSION": session}, data_dir=tmp_path)


def test_posts_work_with_all_fields(px, tmp_path):
    post = make_post(2, rating="r18", tags=[f"t{i}" for i in range(12)])
    result = adapter(px, tmp_path, restrict="mypixiv").post(post)
    assert result.status is PostStatus.POSTED, result.reason
    (work,) = px.works.values()
    assert result.url == f"{px.url}/artworks/{work['id']}"
    form = work["form"]
    assert form["title"] == "Rabbit" and form["caption"] == "A rabbit at dusk"
    assert form["xRestrict"] == "r18" and "sexual" not in form
    assert form["aiType"] == "notAiGenerated" and form["restrict"] == "mypixiv"
    assert form["tags[]"] == [f"t{i}" for i in range(10)]
    assert work["files"] == [m.data for m in post.media]
    assert px.calls("POST", "/ajax/work/create/illustration")[0].header("x-csrf-token") == TOKEN


def test_ai_flag_never_guessed(px, tmp_path):
    a = adapter_class("pixiv")(
        "pixiv",
        {"adapter": "pixiv", "policy": "light", "api_base": px.url},
        {"SESSION": SESSION},
        data_dir=tmp_path,
    )
    result = a.post(make_post())
    assert result.status is PostStatus.FATAL and "ai_generated" in result.reason
    assert not px.requests  # no network call at all
    ok = a.post(make_post(options={"ai_generated": True}))
    assert ok.status is PostStatus.POSTED
    (work,) = px.works.values()
    assert work["form"]["aiType"] == "aiGenerated"


def test_expired_session(px, tmp_path):
    result = adapter(px, tmp_path, session="expired-session-value").post(make_post())
    assert result.status is PostStatus.FATAL
    assert "session expired" in result.reason and "poster login pixiv" in result.reason
    assert "expired-session-value" not in result.reason


@pytest.mark.parametrize("layout", ["changed", "no-token"])
def test_changed_page_says_so(px, tmp_path, layout):
    px.layout = layout
    result = adapter(px, tmp_path).post(make_post())
    assert result.status is PostStatus.FATAL
    assert "upload page has changed" in result.reason
    assert not px.works
    check = adapter(px, tmp_path).check()
    assert not check.ok and "changed" in check.message


def test_429_with_retry_after(px, tmp_path):
    px.fail("GET", "/illustration/create", 429, times=9, headers={"Retry-After": "3600"})
    result = adapter(px, tmp_path).post(make_post())
    assert result.status is PostStatus.RETRYABLE and result.retry_at is not None


def test_5xx_then_success(px, tmp_path):
    px.fail("GET", "/illustration/create", 503, times=2)
    result = adapter(px, tmp_path).post(make_post())
    assert result.status is PostStatus.POSTED, result.reason


def test_captcha_cooldown_is_retryable(px, tmp_path):
    px.fail(
        "POST",
        "/ajax/work/create/illustration",
        400,
        body={"error": True, "message": "", "body": {"errors": {"gRecaptchaResponse": "required"}}},
    )
    result = adapter(px, tmp_path).post(make_post())
    assert result.status is PostStatus.RETRYABLE and "captcha" in result.reason


def test_oversize(px, tmp_path):
    result = adapter(px, tmp_path).post(make_post(data=b"x" * (32 * 1024 * 1024 + 1)))
    assert result.status is PostStatus.FATAL and "bytes" in result.reason


def test_check(px, tmp_path):
    assert adapter(px, tmp_path).check().ok
    assert not adapter(px, tmp_path, session="nope-nope").check().ok
