"""Policies: built-in defaults, replacement from config, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from poster import config, policies
from poster.errors import ConfigError


def cfg_with(tmp_path: Path, extra: str) -> config.Config:
    path = tmp_path / "config.toml"
    path.write_text('[targets.x]\nadapter = "local"\npolicy = "heavy"\n' + extra, encoding="utf-8")
    return config.load(path)


def test_builtin_heavy_and_light(home: config.Config) -> None:
    heavy = policies.build(home, "heavy")
    assert [s.name for s in heavy.steps] == ["fit", "noise", "watermark", "signature", "metadata"]
    assert heavy.steps[0].params.max_edge == 2048  # type: ignore[attr-defined]
    assert heavy.format == "jpeg" and (2048, 85) in heavy.verify and (1200, 85) in heavy.verify
    light = policies.build(home, "light")
    assert "watermark" not in [s.name for s in light.steps]
    assert light.steps[0].params.max_edge is None  # type: ignore[attr-defined]
    noise = {p.name: p.steps[1].params.psnr for p in (heavy, light)}  # type: ignore[attr-defined]
    assert noise["heavy"] < noise["light"]  # heavy is stronger


def test_config_replaces_a_builtin_policy(tmp_path: Path) -> None:
    cfg = cfg_with(
        tmp_path,
        '[policies.heavy]\nformat = "png"\nverify = [[1600, 80]]\n'
        '[[policies.heavy.steps]]\nuse = "watermark"\ndensity = 0.5\ntext = "mine"\n',
    )
    p = policies.build(cfg, "heavy")
    assert [s.name for s in p.steps] == ["fit", "watermark"]  # the platform fit is always there
    assert p.format == "png" and p.verify == ((1600, 80),)
    assert p.describe()["steps"][1]["density"] == 0.5


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            '[[policies.heavy.steps]]\nuse = "blur"\n',
            r"policies\.heavy\.steps\[0\]\.use: unknown step 'blur'",
        ),
        ('[[policies.heavy.steps]]\nuse = "noise"\npsnr = 5\n', r"policies\.heavy\.steps\[0\]\.psnr"),
        ('[[policies.heavy.steps]]\nuse = "noise"\npnsr = 40\n', r"steps\[0\]\.pnsr: unknown parameter"),
        ("[policies.heavy]\nverify = [[2048, 850]]\n", r"policies\.heavy\.verify\[0\]"),
    ],
)
def test_policy_errors_name_the_key(tmp_path: Path, extra: str, message: str) -> None:
    if extra.startswith("[[") and "[policies.heavy]" not in extra:
        extra = "[policies.heavy]\n" + extra
    cfg = cfg_with(tmp_path, extra)
    with pytest.raises(ConfigError, match=message):
        policies.build(cfg, "heavy")
