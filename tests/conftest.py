"""Shared fixtures: a real poster home (config + data folder) in a temp dir, real images.

No global state: every test gets its own config file, data folder, SQLite database and key.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poster import cli, config
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


@pytest.fixture
def home(tmp_path: Path) -> config.Config:
    """`poster init` into a temp dir; returns the loaded config."""
    return config.load(cli.init_home(tmp_path / "home"))


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
