"""Message catalogs for the CLI and the UI (gettext; catalogs in poster/locale/).

Every user-facing string is marked where it is written:

    from poster.i18n import _
    raise UserError(_("{file}: not an image").format(file=name))

Placeholders are named (`{file}`), never f-strings inside `_()`, so a translator can move
them and the extractor sees one fixed message. `N_()` marks a string for extraction where it
is defined (a table, a constant) and `_()` translates it where it is shown.

The language lives in a context variable, not a global: the CLI sets it once (config
`language`, else `LANG`), the web UI sets it per request (cookie, then Accept-Language), and
two requests in different languages never see each other's.
"""

from __future__ import annotations

import gettext
import io
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

DOMAIN = "poster"
LANGUAGES = ("en", "ja")  # English is the source language
DEFAULT = "en"
LOCALE_DIR = Path(__file__).with_name("locale")

_current: ContextVar[str] = ContextVar("poster_language", default=DEFAULT)


def normalise(tag: str | None) -> str | None:
    """'ja_JP.UTF-8', 'ja-JP', 'JA' → 'ja'; None for a language poster has no catalog for."""
    if not tag:
        return None
    base = tag.strip().split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower()
    return base if base in LANGUAGES else None


def from_environment(environ: dict[str, str] | None = None) -> str:
    """The language gettext would pick from the environment (LANGUAGE, LC_ALL, LC_MESSAGES,
    LANG, in that order), limited to the languages poster has."""
    env = os.environ if environ is None else environ
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var)
        if not value:
            continue
        for part in value.split(":"):
            if part in ("C", "POSIX") or part.startswith(("C.", "POSIX.")):
                return DEFAULT
            found = normalise(part)
            if found:
                return found
        return DEFAULT
    return DEFAULT


def negotiate(accept_language: str | None) -> str:
    """The best of poster's languages for an HTTP Accept-Language header."""
    if not accept_language:
        return DEFAULT
    ranked: list[tuple[float, int, str]] = []
    for i, item in enumerate(accept_language.split(",")):
        tag, _sep, params = item.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            name, _eq, value = p.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        lang = normalise(tag)
        if lang and q > 0:
            ranked.append((-q, i, lang))
    return sorted(ranked)[0][2] if ranked else DEFAULT


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalog for `language` (English: the identity). An installed wheel has the `.mo`
    compiled at build time; a checkout (an editable install) may have only the `.po`, or a
    `.mo` older than it: then the `.po` is compiled in memory, so a source tree always shows
    its current translations."""
    if language == DEFAULT:
        return gettext.NullTranslations()
    folder = LOCALE_DIR / language / "LC_MESSAGES"
    mo, po = folder / f"{DOMAIN}.mo", folder / f"{DOMAIN}.po"
    try:
        if po.exists() and (not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime):
            return _compile_in_memory(po, language)
    except Exception as exc:  # a broken .po must not stop poster: fall back to English
        logging.getLogger(__name__).warning("%s: cannot read the catalog: %s", po, exc)
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[language], fallback=True)


def _compile_in_memory(po: Path, language: str) -> gettext.GNUTranslations:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as fh:
        catalog = read_po(fh, locale=language, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def set_language(language: str | None) -> str:
    """Make `language` (or English, for anything poster has no catalog for) current in this
    context; returns the language chosen."""
    chosen = normalise(language) or DEFAULT
    _current.set(chosen)
    return chosen


def current() -> str:
    return _current.get()


@contextmanager
def using(language: str | None) -> Iterator[str]:
    token = _current.set(normalise(language) or DEFAULT)
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def _(message: str) -> str:
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark for extraction only; translate with `_()` where it is shown."""
    return message
