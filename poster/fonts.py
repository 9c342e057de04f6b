"""Finding an installed font that draws a given text (the artist's name in any script).

Order of preference:
1. a font the config names (`[render] font`, or a step's `font`) — used as given;
2. Pillow's built-in font, when it has every character (Latin names): the same glyphs on
   every machine, so a posted copy can be rebuilt anywhere;
3. an installed font that has every character, CJK fonts first for CJK text, sans-serif and
   bold first (a signature must read at small sizes).

How installed fonts are found:
- **fontconfig** (`fc-list`/`fc-match`, run as subprocesses) wherever it is installed —
  Linux desktops and servers, and macOS with Homebrew. It is the system's own answer: it
  knows user-installed fonts and the user's family preferences per language, and it answers
  "which fonts have these characters" (`:charset=`) from its cache without opening 20 MB
  font files. It is a C library with no maintained Python binding, hence the subprocess.
- **a scan of the standard font folders** otherwise (Windows, macOS without fontconfig, a
  minimal Linux container): preferred files first (Yu Gothic, Meiryo, MS Gothic on Windows;
  Hiragino on macOS; Noto Sans CJK / Source Han Sans anywhere), each checked glyph by glyph
  with FreeType through Pillow.

Every candidate is checked with Pillow before it is used (a glyph that would come out as an
empty box is missing), and the error when nothing covers the text names the characters.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

from poster.errors import RenderError
from poster.i18n import _

log = logging.getLogger(__name__)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
MAX_SCAN = 600  # font files looked at in a folder scan before giving up
MAX_FACES = 16  # faces tried in one collection (.ttc)

# Substrings of preferred file names (lower case), best first, per script of the text.
PREFERRED_FILES: dict[str, tuple[str, ...]] = {
    "ja": (
        "yugothb", "yugothm", "yugothr", "meiryob", "meiryo", "msgothic",  # Windows
        "ヒラギノ角ゴシック w6", "ヒラギノ角ゴシック w4", "ヒラギノ角ゴシック w3",  # macOS
        "hiraginosans", "hiragino sans", "hiragino kaku",
        "notosanscjk-bold", "notosanscjk", "notosansjp", "sourcehansans", "ipaexg", "ipag",
    ),
    "ko": ("malgunbd", "malgun", "applesdgothicneo", "notosanscjk-bold", "notosanscjk", "notosanskr"),
    "zh": ("msyhbd", "msyh", "simhei", "pingfang", "notosanscjk-bold", "notosanscjk", "notosanssc"),
    "": ("segoeuib", "arialbd", "arial unicode", "helvetica", "dejavusans-bold", "notosans-bold"),
}  # fmt: skip
# Face names that say which CJK region a face of a collection is for (Noto: "… CJK JP").
REGION_TAGS = {"ja": ("JP", "Japanese"), "ko": ("KR", "Korean"), "zh": ("SC", "TC", "HK")}


@dataclass(frozen=True)
class FontFile:
    path: str
    index: int = 0  # the face in a collection (.ttc)

    def __str__(self) -> str:
        return self.path if self.index == 0 else f"{self.path}#{self.index}"


def language_of(text: str) -> str:
    """The CJK language a text needs a font for ('ja', 'ko', 'zh'), '' for other text.
    Kana means Japanese, Hangul Korean; Han characters alone are taken as Japanese
    (poster's artists are mostly Japanese, and Japanese fonts cover the common Han)."""
    han = False
    for ch in text:
        name = unicodedata.name(ch, "")
        if name.startswith(("HIRAGANA", "KATAKANA", "HALFWIDTH KATAKANA")):
            return "ja"
        if name.startswith("HANGUL"):
            return "ko"
        if name.startswith("CJK"):
            han = True
    return "ja" if han else ""


@lru_cache(maxsize=64)
def load(font: FontFile | None, size: int) -> Font:
    """The font at `size` px; None: Pillow's built-in font."""
    if font is None:
        return ImageFont.load_default(size=size)
    try:
        return ImageFont.truetype(font.path, size=size, index=font.index)
    except OSError:
        raise RenderError(
            _("font {path}: cannot be opened as a TrueType/OpenType font").format(path=font)
        ) from None


def missing_glyphs(font: Font, text: str) -> list[str]:
    """Characters the font would draw as its 'missing glyph' box (tofu)."""
    if not isinstance(font, ImageFont.FreeTypeFont):
        return [c for c in dict.fromkeys(text) if ord(c) > 126]
    notdef = bytes(font.getmask("\U000f0000"))  # a private-use code point no font maps
    return [ch for ch in dict.fromkeys(text) if not ch.isspace() and bytes(font.getmask(ch)) == notdef]


def parse(spec: str) -> FontFile:
    """`/path/font.ttc` or `/path/font.ttc#2` (a face of a collection)."""
    path, sep, index = spec.rpartition("#")
    if sep and index.isdigit():
        return FontFile(path, int(index))
    return FontFile(spec)


def choose(
    text: str, configured: str | None = None, *, folders: Iterable[Path] | None = None
) -> FontFile | None:
    """The font to draw `text` with (None: the built-in font), or a RenderError naming the
    characters no installed font has. `configured` (a path, `#N` for a face) is used as given
    and must cover the text; `folders` replaces the system's font folders and fontconfig
    (tests, or a portable setup)."""
    # control and format characters (a zero-width joiner, a direction mark) draw nothing
    glyphs = "".join(
        ch for ch in dict.fromkeys(text) if not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf")
    )
    if configured:
        font = parse(configured)
        missing = missing_glyphs(load(font, 32), glyphs)
        if missing:
            raise RenderError(
                _(
                    "font {font} cannot draw {chars!r}; choose a font that has them, or remove the setting"
                ).format(font=font, chars="".join(missing))
            )
        return font
    if not missing_glyphs(load(None, 32), glyphs):
        return None
    found, missing = _find(glyphs, tuple(str(f) for f in folders) if folders is not None else None)
    if found is None:
        raise RenderError(
            _(
                "no installed font can draw {chars!r}; install one that can (for Japanese: Noto Sans CJK, "
                "e.g. `apt install fonts-noto-cjk`) or set [render] font"
            ).format(chars=missing)
        )
    return found


@lru_cache(maxsize=64)
def _find(glyphs: str, folders: tuple[str, ...] | None) -> tuple[FontFile | None, str]:
    """(the first candidate that has every character, "") or (None, the characters that
    even the closest candidate lacks)."""
    lang = language_of(glyphs)
    if folders is None and shutil.which("fc-list"):
        candidates: Iterator[FontFile] = _fontconfig_candidates(glyphs, lang)
        # fc-list lists only fonts with every character; for the message, the closest of all
        nearest: Iterable[FontFile] = _scan_candidates(glyphs, lang, system_folders())
    else:
        candidates = _scan_candidates(glyphs, lang, [Path(f) for f in folders or system_folders()])
        nearest = ()
    lacking = "".join(missing_glyphs(load(None, 32), glyphs))
    for font in (*candidates, *nearest):
        try:
            missing = missing_glyphs(load(font, 32), glyphs)
        except RenderError:
            continue
        if not missing:
            log.debug("font for %r: %s", glyphs, font)
            return font, ""
        if len(missing) < len(lacking):
            lacking = "".join(missing)
    return None, lacking


# -- fontconfig ------------------------------------------------------------------------------
def _fc(*args: str) -> list[str]:
    try:
        out = subprocess.run(
            args, capture_output=True, text=True, timeout=30, check=False, env={**os.environ, "LC_ALL": "C"}
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("%s failed: %s", args[0], exc)
        return []
    return [line for line in out.splitlines() if line.strip()]


def _fontconfig_candidates(glyphs: str, lang: str) -> Iterator[FontFile]:
    """Fonts that have every character (fc-list :charset=…), in fontconfig's own order of
    preference for a bold sans-serif in the text's language (fc-match -s)."""
    fmt = "%{file}\t%{index}\n"
    charset = " ".join(f"{ord(c):x}" for c in glyphs)
    covering = {
        tuple(line.split("\t")[:2]) for line in _fc("fc-list", "--format", fmt, f":charset={charset}")
    }
    pattern = "sans-serif:weight=bold" + (f":lang={lang}" if lang else "")
    ranked = [tuple(line.split("\t")[:2]) for line in _fc("fc-match", "-s", "--format", fmt, pattern)]
    for path, index in [*[r for r in ranked if r in covering], *sorted(covering - set(ranked))]:
        if index.isdigit():
            yield FontFile(path, int(index))


# -- folder scan -------------------------------------------------------------------------------
def system_folders() -> list[Path]:
    """The standard font folders of this operating system (those that exist)."""
    home = Path.home()
    if sys.platform == "win32":
        windir = Path(os.environ.get("WINDIR", r"C:\Windows"))
        local = Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local"))
        folders = [windir / "Fonts", local / "Microsoft" / "Windows" / "Fonts"]
    elif sys.platform == "darwin":
        folders = [
            Path("/System/Library/Fonts"),
            Path("/System/Library/Fonts/Supplemental"),
            Path("/Library/Fonts"),
            home / "Library" / "Fonts",
        ]
    else:
        data_home = Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share"))
        folders = [
            Path("/usr/share/fonts"),
            Path("/usr/local/share/fonts"),
            data_home / "fonts",
            home / ".fonts",
        ]
    return [f for f in folders if f.is_dir()]


def _font_files(folders: list[Path]) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        for root, _dirs, names in os.walk(folder):
            files.extend(Path(root) / n for n in sorted(names) if n.lower().endswith(FONT_SUFFIXES))
            if len(files) >= MAX_SCAN:
                return files[:MAX_SCAN]
    return files


def _rank(path: Path, lang: str) -> tuple[int, str]:
    name = path.name.lower()
    prefs = PREFERRED_FILES.get(lang, ()) + (PREFERRED_FILES[""] if lang else ())
    for i, pref in enumerate(prefs):
        if pref in name or pref.replace(" ", "") in name.replace(" ", ""):
            return i, name
    return len(prefs), name


def _scan_candidates(glyphs: str, lang: str, folders: list[Path]) -> Iterator[FontFile]:
    for path in sorted(_font_files(folders), key=lambda p: _rank(p, lang)):
        faces = []
        for index in range(MAX_FACES if path.suffix.lower() in (".ttc", ".otc") else 1):
            try:
                family = ImageFont.truetype(str(path), size=16, index=index).getname()[0] or ""
            except OSError:
                break
            faces.append((index, family))
        tags = REGION_TAGS.get(lang, ())
        # in a CJK collection, the face for the text's region first (Noto's "… CJK JP")
        faces.sort(key=lambda f: not any(t in f[1] for t in tags))
        for index, _family in faces:
            yield FontFile(str(path), index)
