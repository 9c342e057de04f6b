"""click's own messages (usage errors, prompts) in poster's language."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file

from poster import clicktext, i18n
from poster.cli import main


def _installed_messages() -> set[str | tuple[str, str]]:
    """What the installed click marks for translation in the modules poster patches."""
    found: set[str | tuple[str, str]] = set()
    for name in clicktext.MODULES:
        path = importlib.import_module(name).__file__
        assert path is not None
        for _lineno, message, _comments, _context in extract_from_file(
            "python", path, keywords={"_": None, "ngettext": (1, 2)}
        ):
            found.add(message if isinstance(message, str) else tuple(message))
    return found


def test_the_list_is_the_installed_clicks_messages() -> None:
    """A click upgrade that adds, changes or drops a message fails here (list it, translate
    it) rather than showing English to a Japanese user."""
    listed: set[str | tuple[str, str]] = set(clicktext.MESSAGES) | set(clicktext.PLURALS)
    installed = _installed_messages()
    assert sorted(map(str, installed - listed)) == []
    assert sorted(map(str, listed - installed)) == []


def test_every_listed_message_has_a_japanese_translation() -> None:
    ja = i18n.translations("ja")
    for message in clicktext.MESSAGES:
        assert ja.gettext(message) != message, message
    for singular, plural in clicktext.PLURALS:
        assert ja.ngettext(singular, plural, 2) != plural, plural


@pytest.mark.parametrize(
    ("args", "ja", "en"),
    [
        (["status", "--bogus"], "オプション '--bogus' はありません", "No such option '--bogus'"),
        (["trace"], "引数が足りません: 'IMAGES...'", "Missing argument 'IMAGES...'"),
        (["no-such-command"], "コマンド 'no-such-command' はありません", "No such command"),
        (["status", "--limit", "abc"], "'--limit' の値が正しくありません", "Invalid value for '--limit'"),
    ],
)
def test_usage_errors_in_the_users_language(
    args: list[str],
    ja: str,
    en: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for lang, want, other in (("ja_JP.UTF-8", ja, en), ("C.UTF-8", en, ja)):
        for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("LANG", lang)
        with pytest.raises(SystemExit) as exit_:
            main(args)
        err = capsys.readouterr().err
        assert exit_.value.code == 2, err
        assert want in err and other not in err, err
        assert ("使い方:" in err) == (lang.startswith("ja")), err


def test_a_user_at_a_terminal_reads_japanese(tmp_path: Path) -> None:
    """The real entry point in a subprocess, as a user meets it."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "ja_JP.UTF-8", "HOME": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-m", "poster", "status", "--bogus"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "エラー: オプション '--bogus' はありません。" in r.stderr, r.stderr
    assert "ヘルプは 'poster status --help' で表示できます。" in r.stderr, r.stderr
