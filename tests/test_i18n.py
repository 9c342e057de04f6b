"""The message catalogs: complete, in step with the sources, shipped in the wheel, loaded from a
checkout, and chosen from LANG / config (CLI) or the request (UI)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from poster import i18n, i18n_tools
from tests.conftest import REPO
from tests.ui.conftest import set_top_level

PO_FILES = sorted(i18n.LOCALE_DIR.glob("*/LC_MESSAGES/*.po"))
PLACEHOLDER = re.compile(r"\{(\w*)[^{}]*\}")


def _catalog(po: Path):  # type: ignore[no-untyped-def]
    with po.open("rb") as fh:
        return read_po(fh)


def test_there_is_a_japanese_catalog() -> None:
    assert [p.parts[-3] for p in PO_FILES] == ["ja"]
    assert len([m for m in _catalog(PO_FILES[0]) if m.id]) > 150


@pytest.mark.parametrize("po", PO_FILES, ids=lambda p: p.parts[-3])
def test_no_untranslated_or_fuzzy_message(po: Path) -> None:
    assert i18n_tools.problems(po) == []


@pytest.mark.parametrize("po", PO_FILES, ids=lambda p: p.parts[-3])
def test_translations_keep_the_placeholders(po: Path) -> None:
    for m in _catalog(po):
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        want = set(PLACEHOLDER.findall(ids[-1]))
        for s in strings:
            assert set(PLACEHOLDER.findall(s)) == want, (m.id, s)


def test_every_marked_string_in_the_sources_is_in_the_catalog(tmp_path: Path) -> None:
    pot = i18n_tools.extract(tmp_path / "poster.pot")
    extracted = {m.id for m in _catalog(pot) if m.id}
    assert "Add to queue" in extracted  # from a template
    assert "job {job} is already rendered" in extracted  # from Python
    for po in PO_FILES:
        have = {m.id for m in _catalog(po) if m.id}
        missing = sorted(map(str, extracted - have))
        assert not missing, f"{po}: run `python -m poster.i18n_tools update` and translate: {missing[:10]}"


def test_a_checkout_loads_the_po_when_no_mo_is_there() -> None:
    mo = i18n.LOCALE_DIR / "ja" / "LC_MESSAGES" / "poster.mo"
    if mo.exists():
        pytest.skip("a compiled .mo is present in this checkout")
    i18n.translations.cache_clear()
    with i18n.using("ja"):
        assert i18n._("Queue") == "投稿一覧"
        assert i18n.ngettext("{n} row", "{n} rows", 3).format(n=3) == "3件"
    assert i18n._("Queue") == "Queue"


def test_the_wheel_carries_compiled_catalogs(tmp_path: Path) -> None:
    """A wheel without .mo files is a recurring bug elsewhere: build one and read it."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "babel.cfg"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(
        REPO / "poster", src / "poster", ignore=shutil.ignore_patterns("__pycache__", "*.mo", "*.pot")
    )
    out = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            ".",
        ],
        cwd=src,
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert "poster/locale/ja/LC_MESSAGES/poster.mo" in names
        assert "poster/ui/templates/base.html" in names
        assert "poster/ui/static/app.js" in names
        mo = z.read("poster/locale/ja/LC_MESSAGES/poster.mo")
    import gettext
    import io

    assert gettext.GNUTranslations(io.BytesIO(mo)).gettext("Queue") == "投稿一覧"


@pytest.mark.parametrize(
    ("header", "want"),
    [
        ("ja,en-US;q=0.9,en;q=0.8", "ja"),
        ("en-US,en;q=0.9,ja;q=0.8", "en"),
        ("fr-FR,ja;q=0.5", "ja"),
        ("fr", "en"),
        ("", "en"),
        ("ja;q=0", "en"),
    ],
)
def test_accept_language(header: str, want: str) -> None:
    assert i18n.negotiate(header) == want


def test_cli_language_from_lang_then_config(home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A real subprocess, as a user runs it: LANG=ja gives Japanese; config `language = "en"`
    wins over LANG."""
    from poster import store

    store.connect(home.db_path).close()
    env = {"PATH": "/usr/bin:/bin", "LANG": "ja_JP.UTF-8", "HOME": str(tmp_path)}
    argv = [sys.executable, "-m", "poster", "--config", str(home.path), "ui", "--host", "192.0.2.1"]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "ループバック" in r.stderr, r.stderr
    set_top_level(home.path, "language", '"en"')
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "is not a loopback address" in r.stderr, r.stderr


# -- unmarked messages in the sources ------------------------------------------------------------
def _message_kinds() -> set[str]:
    """The exception classes whose message the user reads: UserError's family (the CLI prints
    it) and the adapters' errors (a failed post's reason, in status, the UI and notices)."""
    from poster.errors import UserError
    from poster.platforms import pixiv, x, xfolio  # noqa: F401 (their own subclasses)
    from poster.platforms.http import PlatformError

    names: set[str] = set()
    todo: list[type] = [UserError, PlatformError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    assert {"ConfigError", "InputError", "StorageError", "Fatal", "AuthFailure"} <= names
    return names


def _literal_with_words(node: ast.expr) -> bool:
    """A str literal, f-string or + of them with a letter in its fixed text: English written
    straight into the message. `_("...").format(...)`, a variable or any other call is fine,
    and so is an f-string that only joins translated parts (`f"{target}: {message}"`)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and any(c.isalpha() for c in node.value)
    if isinstance(node, ast.JoinedStr):
        return any(_literal_with_words(v) for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.BinOp):
        return _literal_with_words(node.left) or _literal_with_words(node.right)
    return False


def _unmarked_messages(tree: ast.AST, kinds: set[str]) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
        result = owner == "PostResult" and name in ("fatal", "retryable", "uncertain")
        if name in kinds or name == "say" or result:
            message = node.args[0] if node.args else None
        elif name == "CheckResult":
            message = node.args[1] if len(node.args) > 1 else None
        else:
            continue
        if message is not None and _literal_with_words(message):
            found.append((node.lineno, f"{name}({ast.unparse(message)[:70]})"))
    return found


def test_the_scan_finds_unmarked_messages() -> None:
    """The scan below, on code that it must flag and code that it must let pass."""
    bad = ast.parse(
        'raise UserError(f"{path}: no such file")\n'
        'raise Fatal("X refused")\n'
        'say(f"queued {name}")\n'
        'return PostResult.uncertain("handed off: " + where)\n'
        'CheckResult(True, "nothing to check")\n'
    )
    assert [line for line, _m in _unmarked_messages(bad, {"UserError", "Fatal"})] == [1, 2, 3, 4, 5]
    good = ast.parse(
        'raise UserError(_("{path}: no such file").format(path=p))\n'
        "raise Fatal(str(exc))\n"
        "raise ConfigError(message)\n"
        'say(f"{target}: {verdict}: {message}")\n'
        "say()\n"
        'return PostResult.posted("1", "https://example.invalid/1")\n'
        'CheckResult(True, _("nothing to check"))\n'
        'log.warning("no translation for log lines")\n'
    )
    assert _unmarked_messages(good, {"UserError", "Fatal", "ConfigError"}) == []


def test_no_user_facing_message_is_written_in_english_only() -> None:
    """Every error the user reads, every line the CLI prints (`say`), every adapter result and
    doctor message goes through `_()`: a literal there would stay English under LANG=ja."""
    kinds = _message_kinds()
    found = []
    for path in sorted((REPO / "poster").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [f"{path.relative_to(REPO)}:{line}: {m}" for line, m in _unmarked_messages(tree, kinds)]
    assert found == []
