"""Font discovery: the selection logic on generated fonts (whatever the machine has), the
fontconfig path through a private fontconfig setup, and the clear error."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from poster import fonts
from poster.errors import RenderError
from tests.protect.cjk_font import build


def test_language_of_text() -> None:
    assert fonts.language_of("Taro Yamada") == ""
    assert fonts.language_of("さくら") == "ja"
    assert fonts.language_of("山田 太郎") == "ja"  # Han alone: taken as Japanese
    assert fonts.language_of("김민수") == "ko"
    assert fonts.language_of("© サクラ") == "ja"


def test_latin_names_use_the_built_in_font(tmp_path: Path) -> None:
    assert fonts.choose("Taro Yamada", folders=[tmp_path]) is None


def test_folder_scan_finds_a_font_with_every_character(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    build(tmp_path / "a" / "PosterTestCJK.ttf")
    (tmp_path / "broken.ttf").write_bytes(b"not a font")  # skipped, not fatal
    found = fonts.choose("山田 太郎", folders=[tmp_path])
    assert found == fonts.FontFile(str(tmp_path / "a" / "PosterTestCJK.ttf"), 0)
    assert not fonts.missing_glyphs(fonts.load(found, 40), "山田太郎")


def test_preferred_files_come_first(tmp_path: Path) -> None:
    # two fonts that both cover the text: the one named like Yu Gothic wins over "aaa"
    build(tmp_path / "aaa.ttf")
    build(tmp_path / "YuGothB.ttf")
    assert Path(fonts.choose("ウサギ", folders=[tmp_path]).path).name == "YuGothB.ttf"  # type: ignore[union-attr]


def test_no_font_with_the_characters_is_a_clear_error(tmp_path: Path) -> None:
    build(tmp_path / "cjk.ttf")
    with pytest.raises(RenderError, match=r"no installed font can draw '漢'.*\[render\] font"):
        fonts.choose("山田 漢", folders=[tmp_path])


def test_a_configured_font_must_cover_the_text(tmp_path: Path) -> None:
    font = build(tmp_path / "cjk.ttf")
    assert fonts.choose("山田", str(font)) == fonts.FontFile(str(font))
    with pytest.raises(RenderError, match="cannot draw '漢'"):
        fonts.choose("漢", str(font))
    assert fonts.parse(f"{font}#2") == fonts.FontFile(str(font), 2)


@pytest.mark.skipif(shutil.which("fc-list") is None, reason="fontconfig is not installed")
def test_fontconfig_answers_from_its_own_font_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private fontconfig setup that knows only the generated font: fc-list's charset query
    must find it (and nothing else can cover these characters)."""
    fonts_dir = tmp_path / "fonts"
    fonts_dir.mkdir()
    build(fonts_dir / "PosterTestCJK.ttf")
    conf = tmp_path / "fonts.conf"
    conf.write_text(
        f'<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        f"<dir>{fonts_dir}</dir><cachedir>{tmp_path / 'cache'}</cachedir></fontconfig>",
        encoding="utf-8",
    )
    monkeypatch.setenv("FONTCONFIG_FILE", str(conf))
    # the closest-font search for the error message scans the system folders: only ours
    monkeypatch.setattr(fonts, "system_folders", lambda: [fonts_dir])
    fonts._find.cache_clear()
    try:
        # fontconfig itself lists the font for these characters (its charset query)
        listed = list(fonts._fontconfig_candidates("ウサギ", "ja"))
        assert [Path(f.path) for f in listed] == [fonts_dir / "PosterTestCJK.ttf"]
        found = fonts.choose("ウサギ")
        assert found is not None and Path(found.path) == fonts_dir / "PosterTestCJK.ttf"
        with pytest.raises(RenderError, match="no installed font can draw"):
            fonts.choose("漢字")
    finally:
        fonts._find.cache_clear()
    assert os.environ["FONTCONFIG_FILE"] == str(conf)
