from __future__ import annotations

import json

import pytest
import requests

from poster.errors import ConfigError
from poster.platforms import adapter_class
from poster.platforms.base import Existence, PostStatus
from poster.platforms.xfolio import XfolioAdapter
from tests.platforms.conftest import make_post
from tests.servers.xfolio import XfolioServer


@pytest.fixture
def xf():
    with XfolioServer() as server:
        yield server


def test_handoff_prepares_files_and_opens_upload_page(xf, tmp_path, monkeypatch):
    opened = []

    def browser(url):  # what a browser would do: load the page
        opened.append(requests.get(url, timeout=5).status_code)
        return True

    monkeypatch.setattr(XfolioAdapter, "opener", staticmethod(browser))
    a = adapter_class("xfolio")(
        "xfolio",
        {
            "adapter": "xfolio",
            "policy": "light",
            "api_base": xf.url,
            "upload_url": f"{xf.url}/portfolio/artist/works/new",
        },
        {},
        data_dir=tmp_path,
    )
    post = make_post(options={"ai_generated": False})
    result = a.post(post)
    assert result.status is PostStatus.UNCERTAIN
    assert "poster confirm" in result.reason and "opened in the browser" in result.reason
    assert opened == [200]
    folder = a.folder(post)
    assert (folder / "01-rabbit-0.png").read_bytes() == post.media[0].data  # bytes untouched
    assert "#oc #rabbit" in (folder / "caption.txt").read_text()
    info = json.loads((folder / "post.json").read_text())
    assert info["rating"] == "general" and info["ai_generated"] is False
    assert a.find_existing(post) == (Existence.UNKNOWN, None)
    assert a.check().ok


def test_no_browser_still_hands_off(tmp_path, monkeypatch):
    monkeypatch.setattr(XfolioAdapter, "opener", staticmethod(lambda url: False))
    a = adapter_class("xfolio")("xf", {"adapter": "xfolio", "policy": "light"}, {}, data_dir=tmp_path)
    result = a.post(make_post())
    assert result.status is PostStatus.UNCERTAIN and "open https://xfolio.jp/" in result.reason


def test_web_mode_is_refused_with_reason(tmp_path):
    with pytest.raises(ConfigError, match=r"mode.*handoff"):
        adapter_class("xfolio")(
            "xf", {"adapter": "xfolio", "policy": "light", "mode": "web"}, {}, data_dir=tmp_path
        )
