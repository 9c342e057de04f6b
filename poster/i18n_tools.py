"""Catalog upkeep for translators (a checkout with `pip install -e '.[test]'`):

    python -m poster.i18n_tools extract   # sources → poster/locale/poster.pot
    python -m poster.i18n_tools update    # extract, then merge into every .po (new entries empty)
    python -m poster.i18n_tools compile   # .po → .mo next to them (the wheel build does this too)
    python -m poster.i18n_tools check     # list untranslated and fuzzy entries; exit 1 if any

The same with pybabel (babel.cfg maps Python and the Jinja2 templates):

    pybabel extract -F babel.cfg -k N_ -o poster/locale/poster.pot --no-location --sort-output .
    pybabel update -i poster/locale/poster.pot -d poster/locale -D poster --no-fuzzy-matching
    pybabel compile -d poster/locale -D poster

Installed copies need no compile step: the wheel carries the .mo files, and a checkout whose
.mo is missing or older than its .po is compiled in memory when poster starts (poster.i18n).
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po

from poster.i18n import DOMAIN, LOCALE_DIR

ROOT = LOCALE_DIR.parents[1]  # the checkout: babel.cfg and poster/
POT = LOCALE_DIR / f"{DOMAIN}.pot"


def _pybabel(*args: str) -> None:
    CommandLineInterface().run(["pybabel", "-q", *args])


def extract(output: Path = POT) -> Path:
    _pybabel(
        "extract",
        "-F",
        str(ROOT / "babel.cfg"),
        "-k",
        "N_",
        "-k",
        "NN_:1,2",  # singular/plural pairs marked only (poster.clicktext)
        "-o",
        str(output),
        "--no-location",
        "--sort-output",
        "--project",
        "poster",
        "--msgid-bugs-address",
        "",
        str(ROOT),
    )
    return output


def update() -> None:
    extract()
    _pybabel("update", "-i", str(POT), "-d", str(LOCALE_DIR), "-D", DOMAIN, "--no-fuzzy-matching")


def compile_all() -> None:
    _pybabel("compile", "-d", str(LOCALE_DIR), "-D", DOMAIN)


def problems(po: Path) -> list[str]:
    """Entries of one .po that are untranslated or fuzzy."""
    with po.open("rb") as fh:
        catalog = read_po(fh)
    out = []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple | list) else (message.string,)
        if message.fuzzy:
            out.append(f"fuzzy: {message.id!r}")
        elif not all(strings):
            out.append(f"untranslated: {message.id!r}")
    return out


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "extract":
        print(extract())
    elif command == "update":
        update()
    elif command == "compile":
        compile_all()
    elif command == "check":
        found = [f"{po}: {p}" for po in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/*.po")) for p in problems(po)]
        print("\n".join(found) or "all catalogs complete")
        return 1 if found else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
