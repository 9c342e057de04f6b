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


def test_a_one_key_override_keeps_the_built_in_steps_and_verify_list(tmp_path: Path) -> None:
    """The issue's case: a [policies.heavy] table naming one key must not drop X's re-encode
    checks (it used to replace the whole built-in)."""
    cfg = cfg_with(tmp_path, "[policies.heavy]\njpeg_quality = 85\n")
    p = policies.build(cfg, "heavy")
    assert p.jpeg_quality == 85
    assert p.verify == ((2048, 85), (1200, 85))
    assert [s.name for s in p.steps] == ["fit", "noise", "watermark", "signature", "metadata"]
    assert p.steps[0].params.max_edge == 2048  # type: ignore[attr-defined]


def test_a_step_table_changes_only_that_step(tmp_path: Path) -> None:
    cfg = cfg_with(
        tmp_path,
        '[policies.heavy.signature]\nfont = "/fonts/mine.ttc"\nopacity = 0.5\n'
        '[policies.heavy.watermark]\nlook = "subtle"\n'
        "[policies.heavy.noise]\nenabled = false\n",
    )
    p = policies.build(cfg, "heavy")
    steps = {s.name: s.describe() for s in p.steps}
    assert list(steps) == ["fit", "watermark", "signature", "metadata"]  # noise removed
    assert steps["signature"]["font"] == "/fonts/mine.ttc" and steps["signature"]["opacity"] == 0.5
    assert steps["watermark"]["look"] == "subtle" and steps["watermark"]["density"] == 0.06
    assert p.verify == ((2048, 85), (1200, 85)) and p.format == "jpeg"


def test_a_step_table_adds_a_step_in_its_place(tmp_path: Path) -> None:
    cfg = cfg_with(tmp_path, '[targets.p]\nadapter = "local"\n[policies.light.watermark]\nlook = "subtle"\n')
    names = [s.name for s in policies.build(cfg, "light").steps]
    assert names == ["fit", "noise", "watermark", "signature", "metadata"]


def test_render_defaults_fill_the_steps_and_a_step_value_wins(tmp_path: Path) -> None:
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"")  # existence is what config checks; the step reads it at render
    cfg = cfg_with(
        tmp_path,
        '[render]\nlogo = "logo.png"\nwatermark_look = "strong"\nsignature_position = "bottom-left"\n'
        'signature_margin = 0.05\n[policies.light.signature]\nposition = "top-right"\n',
    )
    heavy = {s.name: s.describe() for s in policies.build(cfg, "heavy").steps}
    assert heavy["watermark"]["image"] == str(logo) and heavy["watermark"]["look"] == "strong"
    assert heavy["signature"]["position"] == "bottom-left" and heavy["signature"]["margin"] == 0.05
    light = {s.name: s.describe() for s in policies.build(cfg, "light").steps}
    assert light["signature"]["position"] == "top-right"


def test_a_new_policy_without_steps_is_the_bare_fit(tmp_path: Path) -> None:
    cfg = cfg_with(tmp_path, '[policies.bare]\nformat = "png"\n')
    p = policies.build(cfg, "bare")
    assert [s.name for s in p.steps] == ["fit"] and p.format == "png" and p.verify == ()


def test_a_new_policy_can_start_from_a_built_in(tmp_path: Path) -> None:
    cfg = cfg_with(tmp_path, '[policies.soft]\nbase = "heavy"\n[policies.soft.watermark]\nlook = "subtle"\n')
    p = policies.build(cfg, "soft")
    assert p.verify == ((2048, 85), (1200, 85)) and "watermark" in [s.name for s in p.steps]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[policies.heavy.blur]\nradius = 2\n", r"policies\.heavy\.blur: unknown step"),
        ("[policies.heavy.noise]\nenabled = 1\n", r"policies\.heavy\.noise\.enabled: must be true or false"),
        ('[policies.mine]\nbase = "medium"\n', r"policies\.mine\.base: unknown built-in policy 'medium'"),
        ("[policies.heavy]\nspeed = 3\n", r"speed: unknown key"),
    ],
)
def test_merge_errors_name_the_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        policies.check(cfg_with(tmp_path, extra))
