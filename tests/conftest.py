"""Shared fixtures: a real poster home (config + data folder) in a temp dir, real images.

No global state: every test gets its own config file, data folder, SQLite database and key.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poster import cli, config
from tests.servers import tsa as tsa_server
from tests.synthetic import painting

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


def data_path(name: str) -> Path:
    """A test image committed under tests/data/ (small copies of real art, credited in
    tests/data/CREDITS.md). The suite reads nothing outside the repository, so it runs from a
    fresh clone; new images go there too, with their credit."""
    path = DATA / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such test image (tests/data/CREDITS.md lists them)")
    return path


SLOW_REASON = "slow test: run with --slow (CI=true runs it)"


def _run_slow(config: pytest.Config) -> bool:
    return bool(config.getoption("--slow")) or os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="also run the tests marked slow (CI=true does)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: crash campaigns, fuzzing, a real PDS, the longest end-to-end scenarios; "
        "skipped locally unless --slow or CI=true",
    )
    config.addinivalue_line("markers", "pds: needs a real Bluesky PDS (node + npm); slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _run_slow(config):
        return
    skip = pytest.mark.skip(reason=SLOW_REASON)
    for item in items:
        if item.get_closest_marker("slow") or item.get_closest_marker("pds"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    n = sum(1 for r in terminalreporter.stats.get("skipped", []) if SLOW_REASON in str(r.longrepr))
    if n:
        terminalreporter.write_line(
            f"{n} slow tests skipped (crash campaigns, fuzzing, the real Bluesky PDS, the longest "
            "scenarios): `python -m pytest --slow` runs them; CI=true runs everything",
            yellow=True,
        )


PUBLIC_TSA_URLS = config.DEFAULT_TSA_URLS  # what a user's config gets, kept for the tests of it


@pytest.fixture(scope="session", autouse=True)
def _no_public_tsa() -> Iterator[None]:
    """No test may reach (or wait on) a public time-stamping authority: a config without
    [proof] gets no TSA, and `poster init` (the `home` fixture, and every home a test makes
    with `cli.init_home`, including those a `poster run` subprocess reads) writes
    `tsa_urls = []`. Tests that time-stamp point a config at the local TSA (`tsa` fixture)."""
    real_init = cli.init_home

    def offline_init(directory: Path) -> Path:
        path = real_init(directory)
        text = path.read_text(encoding="utf-8")
        path.write_text(re.sub(r"(?m)^tsa_urls = .*$", "tsa_urls = []", text), encoding="utf-8")
        return path

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config, "DEFAULT_TSA_URLS", ())
        mp.setattr(cli, "init_home", offline_init)
        yield


@pytest.fixture(autouse=True)
def _own_cache_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test (and the `poster` subprocesses it starts) has a cache folder of its own: the
    config snapshots `poster status` reads (poster.configsnap) never reach the user's
    ~/.cache nor another test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def home(tmp_path: Path) -> config.Config:
    """`poster init` into a temp dir; returns the loaded config."""
    return config.load(cli.init_home(tmp_path / "home"))


@pytest.fixture(scope="session")
def tsa_pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[tsa_server.Pki, tsa_server.Pki]:
    """Two PKIs made by `openssl` once per session: the local TSA's (trusted through
    `tsa_ca_file`) and a rogue one whose root no config trusts."""
    base = tmp_path_factory.mktemp("tsa-pki")
    return tsa_server.make_pki(base / "local", "local"), tsa_server.make_pki(base / "rogue", "rogue")


@pytest.fixture
def tsa(tsa_pki: tuple[tsa_server.Pki, tsa_server.Pki]) -> Iterator[tsa_server.TsaServer]:
    """A real RFC 3161 TSA on 127.0.0.1 (`openssl ts -reply` behind HTTP)."""
    with tsa_server.TsaServer(*tsa_pki) as server:
        yield server  # type: ignore[misc]


def use_tsa(cfg: config.Config, pki: tsa_server.Pki, *urls: str) -> config.Config:
    """Point `cfg` (a `poster init` home) at `urls`, trusting `pki`'s root (`tsa_ca_file`);
    returns the reloaded config."""
    text = re.sub(r"(?m)^tsa_ca_file = .*\n", "", cfg.path.read_text(encoding="utf-8"))
    listed = ", ".join(f'"{u}"' for u in urls)
    roots = tsa_server.ca_bundle(cfg.path.parent, pki)
    text = re.sub(r"(?m)^tsa_urls = .*$", f'tsa_urls = [{listed}]\ntsa_ca_file = "{roots}"', text)
    cfg.path.write_text(text, encoding="utf-8")
    return config.load(cfg.path)


def artwork(size: tuple[int, int] = (640, 480), *, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """A synthetic painting-like image: smooth gradients, shapes and texture."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = painting(size, seed)
    if mode == "RGBA":
        alpha = np.where((x - w / 2) ** 2 / (w / 2.2) ** 2 + (y - h / 2) ** 2 / (h / 2.2) ** 2 < 1, 255, 0)
        rgba = rgb.convert("RGBA")
        rgba.putalpha(Image.fromarray(alpha.astype(np.uint8), "L"))
        return rgba
    return rgb.convert(mode) if mode != "RGB" else rgb


@pytest.fixture
def drop(home: config.Config) -> Callable[..., Path]:
    """Put a file into the outbox, aged so it counts as stable."""

    def _drop(name: str, data: bytes | Image.Image, *, fmt: str = "PNG", age: float = 3600) -> Path:
        path = home.outbox / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Image.Image):
            data.save(path, fmt)
        else:
            path.write_bytes(data)
        old = time.time() - age
        os.utime(path, (old, old))
        return path

    return _drop


def run_cli(*args: str, cfg: config.Config | None = None) -> tuple[int, str, str]:
    """Run the CLI in-process like a user would; returns (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    runner = CliRunner()
    argv = ["--config", str(cfg.path), *args] if cfg else list(args)
    result = runner.invoke(cli.cli, argv, catch_exceptions=False, standalone_mode=True)
    return result.exit_code, result.stdout, result.stderr


def unprivileged() -> list[str]:
    """A command prefix that makes a permission error real: root reads any file whatever its
    mode, so drop the capabilities that allow that (CI runs as root). Skips the test if it
    cannot."""
    if os.geteuid() != 0:
        return []
    import shutil

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def stamped_home(
    folder: Path, pki: tsa_server.Pki, rogue: tsa_server.Pki, *, artworks: int = 1
) -> config.Config:
    """A home whose outbox had `artworks` artworks, each posted to the three default targets
    by a real `poster run --once --now` with the local TSA: originals and ledger heads are
    time-stamped. The TSA is stopped afterwards (checking tokens needs only its root)."""
    cfg = config.load(cli.init_home(folder))
    with tsa_server.TsaServer(pki, rogue) as server:
        cfg = use_tsa(cfg, pki, server.tsr_url)  # type: ignore[attr-defined]
        for n in range(artworks):
            path = cfg.outbox / f"art{n}.png"
            artwork((400, 300), seed=100 + n).save(path)
            os.utime(path, (time.time() - 3600, time.time() - 3600))
            code, out, err = run_cli("run", "--once", "--now", cfg=cfg)
            assert code == 0, out + err
    return cfg


def copy_home(cfg: config.Config, dest: Path) -> config.Config:
    """A copy of a home (config, database, archive, variants) to change freely."""
    import shutil

    shutil.copytree(cfg.path.parent, dest)
    return config.load(dest / cfg.path.name)
