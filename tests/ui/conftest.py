"""A real poster home and the web app over it, called in-process (Starlette's TestClient)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

from poster import config
from poster.ui.app import UIState, create_app
from tests.conftest import artwork

PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
SECRET = "test-secret-0123456789"


def png_bytes(size: tuple[int, int] = (640, 480), seed: int = 0) -> bytes:
    buf = io.BytesIO()
    artwork(size, seed=seed).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def make_state(cfg: config.Config) -> UIState:
    return UIState(config_path=cfg.path, secret=SECRET, host="127.0.0.1", port=PORT)


class Client(TestClient):
    """A logged-in browser: session cookie set, and the headers a browser sends with a
    same-origin form post."""

    state: UIState

    def csrf(self) -> str:
        nonce = self.state.session_nonce(self.cookies.get("poster_session"))
        assert nonce is not None
        return self.state.csrf_token(nonce)

    def post_form(self, url: str, data: dict | None = None, **kw: object) -> object:
        data = {"csrftoken": self.csrf(), **(data or {})}
        headers = {"Sec-Fetch-Site": "same-origin", **kw.pop("headers", {})}  # type: ignore[arg-type]
        return self.post(url, data=data, headers=headers, **kw)  # type: ignore[arg-type]


@pytest.fixture
def ui_state(home: config.Config) -> UIState:
    return make_state(home)


@pytest.fixture
def anon(ui_state: UIState) -> Iterator[TestClient]:
    with TestClient(create_app(ui_state), base_url=BASE, follow_redirects=False) as c:
        yield c


@pytest.fixture
def client(ui_state: UIState) -> Iterator[Client]:
    with Client(create_app(ui_state), base_url=BASE, follow_redirects=False) as c:
        c.state = ui_state
        r = c.get(f"/?token={SECRET}")
        assert r.status_code == 303
        yield c


def set_top_level(path: Path, key: str, value: str) -> None:
    """Set a top-level key of a config file (`value` as TOML), replacing its line if it has one."""
    import re

    text = path.read_text(encoding="utf-8")
    line = f"{key} = {value}"
    new, n = re.subn(rf"^{key} = .*$", line, text, count=1, flags=re.M)
    path.write_text(new if n else line + "\n" + text, encoding="utf-8")


def outbox_files(cfg: config.Config) -> list[Path]:
    return sorted(p for p in cfg.outbox.rglob("*") if p.is_file())
