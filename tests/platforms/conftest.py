"""Fixtures for the platform adapter tests: stand-in servers on 127.0.0.1, test images,
posts, and an HTTP seam with no real sleeping."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests.servers` importable however pytest is started
    sys.path.insert(0, str(ROOT))

from poster.platforms.base import MediaItem, Post  # noqa: E402
from poster.platforms.http import HttpAdapter  # noqa: E402


class SleepRecorder:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture(autouse=True)
def fast_http(monkeypatch):
    """No real waiting in tests: backoff sleeps are recorded, not slept."""
    sleeper = SleepRecorder()
    monkeypatch.setattr(
        HttpAdapter,
        "http_options",
        {"sleep": sleeper, "backoff": 0.01, "max_backoff": 0.05, "max_inline_wait": 5.0},
    )
    import poster.platforms.http as http_mod

    monkeypatch.setattr(http_mod.time, "sleep", lambda s: None, raising=False)
    return sleeper


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), exif: bool = False) -> bytes:
    from PIL import Image

    im = Image.new("RGB", size, (200, 80, 40))
    for x in range(size[0]):
        im.putpixel((x, x % size[1]), (x * 3 % 256, 10, 200))
    buf = io.BytesIO()
    kwargs = {}
    if exif:
        ex = Image.Exif()
        ex[0x010F] = "SecretCam"  # Make
        ex[0x8825] = {2: (35.0, 41.0, 0.0)}  # GPSInfo: latitude
        kwargs["exif"] = ex.tobytes()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture
def png():
    return image_bytes("PNG")


def make_post(
    n_images: int = 1,
    *,
    key: str = "job-0001",
    caption: str = "A rabbit at dusk",
    tags=("oc", "rabbit"),
    alt: str = "A white rabbit under an orange sky",
    rating: str = "general",
    fmt: str = "PNG",
    data: bytes | None = None,
    options=None,
) -> Post:
    mime = {"PNG": "image/png", "JPEG": "image/jpeg"}[fmt]
    ext = {"PNG": "png", "JPEG": "jpg"}[fmt]
    media = tuple(
        MediaItem(
            data=data if data is not None else image_bytes(fmt),
            mime=mime,
            filename=f"rabbit-{i}.{ext}",
            width=64,
            height=48,
            alt=alt,
        )
        for i in range(n_images)
    )
    return Post(
        key=key,
        title="Rabbit",
        caption=caption,
        tags=tuple(tags),
        rating=rating,
        media=media,
        options=options or {},
    )


@pytest.fixture
def post():
    return make_post()


@pytest.fixture
def mastodon_server():
    from tests.servers.mastodon import MastodonServer

    with MastodonServer() as server:
        yield server


# ------------------------------------------------------------------ a real Bluesky PDS
PDS_DIR = ROOT / "tests" / "pds"


def _pds_unavailable(reason: str):
    import os

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"real-PDS tests cannot run in CI: {reason}")
    pytest.skip(f"real-PDS tests skipped: {reason}")


@pytest.fixture(scope="session")
def pds(pytestconfig):
    """A real PDS from npm (`@atproto/dev-env` TestNetworkNoAppView) with one account.

    Installs it on first use (tests/pds/install.py: npm's output shown, the install kept in the
    user cache dir for the next run and the next clone), starts `node start.js`, and yields
    {"url", "handle", "password", "did"}. Without node/npm: skipped locally, a failure when
    CI=true.
    """
    import json
    import shutil
    import subprocess
    import threading

    from tests.pds.install import InstallError, ensure

    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _pds_unavailable("node and npm are needed (Node 20)")

    def say(line: str) -> None:
        print(f"tests/pds: {line}", file=sys.stderr, flush=True)

    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    try:
        # on the terminal, not in the captured output: a first install takes minutes
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            ensure(node, npm, say)
    except InstallError as exc:
        _pds_unavailable(str(exc))
    proc = subprocess.Popen(
        [node, "start.js"],
        cwd=PDS_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(120)
    try:
        if not line or not line[0].strip():
            proc.kill()
            err = proc.stderr.read()[-2000:] if proc.stderr else ""
            _pds_unavailable(f"the PDS did not start: {err}")
        info = json.loads(line[0])
        yield info
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.terminate()
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
