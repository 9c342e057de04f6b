"""`poster --help` and every command's help in the user's language: config `language`, else
LANG — real `poster` subprocesses, as a user runs them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from poster import cli, i18n
from tests.ui.conftest import set_top_level

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def _help(tmp_path: Path, lang: str, *args: str) -> str:
    # cwd and HOME without a config: the help must not need one
    env = {"PATH": "/usr/bin:/bin", "LANG": lang, "HOME": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-m", "poster", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def _command_lines(text: str) -> dict[str, str]:
    """The `Commands:` section of a help page: {name: description}."""
    section = re.split(r"^\S.*:\s*$", text, flags=re.M)[-1]
    return dict(re.findall(r"^  (\S+)\s+(.+)$", section, flags=re.M))


def test_poster_help_is_japanese_under_a_japanese_locale(tmp_path: Path) -> None:
    text = _help(tmp_path, "ja_JP.UTF-8", "--help")
    lines = _command_lines(text)
    assert set(lines) == set(cli.cli.commands)
    for name, description in lines.items():
        assert JAPANESE.search(description), (name, description)
    assert "作品を投稿先ごとに保護し" in text  # the group's own help
    assert "このヘルプを表示して終了します。" in text  # click's own option, from our catalog
    assert "コマンド:" in text and "使い方:" in text
    assert "Post art with" not in text and "Show this message" not in text


def test_poster_help_is_english_otherwise(tmp_path: Path) -> None:
    for lang in ("en_US.UTF-8", "C.UTF-8", "fr_FR.UTF-8"):
        text = _help(tmp_path, lang, "--help")
        assert not JAPANESE.search(text), (lang, text)
        lines = _command_lines(text)
        assert set(lines) == set(cli.cli.commands)
        assert lines["run"].startswith("Watch the outbox"), lines["run"]
        assert "Post art with per-platform protection" in text


def test_a_commands_help_and_its_options_follow_the_language(tmp_path: Path) -> None:
    ja = _help(tmp_path, "ja_JP.UTF-8", "run", "--help")
    assert "投稿フォルダを見張り" in ja
    assert "投稿フォルダを受け付け、時刻になったものを投稿して終了する" in ja  # --once
    assert "設定ファイル（全体の --config と同じ）" in ja  # the --config every command takes
    assert "Watch the outbox" not in ja
    sub = _help(tmp_path, "ja_JP.UTF-8", "ledger", "--help")
    assert JAPANESE.search(_command_lines(sub)["verify"])
    en = _help(tmp_path, "en_US.UTF-8", "run", "--help")
    assert "take in the outbox, post what is due, then exit" in en
    assert not JAPANESE.search(en)


def test_the_configs_language_wins_over_lang_for_help(home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    set_top_level(home.path, "language", '"ja"')
    for args in (("--config", str(home.path), "--help"), ("status", "--config", str(home.path), "--help")):
        text = _help(tmp_path, "en_US.UTF-8", *args)
        assert JAPANESE.search(text), (args, text)
        assert "Show this message" not in text
    set_top_level(home.path, "language", '"en"')
    text = _help(tmp_path, "ja_JP.UTF-8", f"--config={home.path}", "--help")
    assert not JAPANESE.search(text), text


def test_a_broken_config_still_shows_the_help_in_langs_language(tmp_path: Path) -> None:
    broken = tmp_path / "config.toml"
    broken.write_text('language = "ja"\n[targets\n', encoding="utf-8")
    text = _help(tmp_path, "en_US.UTF-8", "--config", str(broken), "--help")
    assert "Post art with per-platform protection" in text


def _helps(group: click.Group) -> list[str]:
    out = [group.help or ""]
    for command in group.commands.values():
        if isinstance(command, click.Group):
            out += _helps(command)
        else:
            out.append(command.help or "")
        out += [p.help for p in command.params if isinstance(p, click.Option) and p.help]
    return out


def test_every_help_text_has_a_translation() -> None:
    """A command or option added without N_() (or not yet translated) fails here."""
    from babel.messages.pofile import read_po

    with (i18n.LOCALE_DIR / "ja" / "LC_MESSAGES" / "poster.po").open("rb") as fh:
        translated = {m.id for m in read_po(fh) if m.id and m.string and not m.fuzzy}
    assert [h for h in _helps(cli.cli) if h and h not in translated] == []


@pytest.mark.parametrize("language", ["en", "ja"])
def test_rendering_help_leaves_the_commands_in_english(language: str) -> None:
    """Help is translated while it is rendered, not stored: after a Japanese help page the
    command objects still hold the English msgids, so the next page can be English."""
    with i18n.using(language):
        ctx = cli.cli.make_context("poster", [], resilient_parsing=True)
        cli.cli.get_help(ctx)
    assert cli.cli.commands["run"].help.startswith("Watch the outbox")
    once = next(p for p in cli.cli.commands["run"].params if p.name == "once")
    assert once.help == "take in the outbox, post what is due, then exit"
