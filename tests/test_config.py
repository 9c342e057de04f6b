from __future__ import annotations

from pathlib import Path

import pytest

from poster import config
from poster.errors import ConfigError
from tests.conftest import run_cli

BASE = 'data_dir = "queue"\n[targets.x]\nadapter = "local"\npolicy = "heavy"\n'


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_init_config_has_three_local_targets(home: config.Config) -> None:
    assert {n: (t.adapter, t.policy) for n, t in home.targets.items()} == {
        "x": ("local", "heavy"),
        "pixiv": ("local", "light"),
        "xfolio": ("local", "light"),
    }
    assert home.outbox.is_dir()
    assert home.data_dir == home.path.parent / "queue"
    assert (home.data_dir.stat().st_mode & 0o777) == 0o700
    assert (home.data_dir / "mark.key").stat().st_mode & 0o777 == 0o600


def test_example_config_is_the_packaged_template() -> None:
    repo = Path(__file__).resolve().parents[1]
    assert (repo / "config.example.toml").read_text() == (
        repo / "poster" / "data" / "config.example.toml"
    ).read_text()


def test_minimal_contract_config_is_accepted(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, BASE + 'api_base = "https://example.invalid"\n'))
    assert cfg.targets["x"].api_base == "https://example.invalid"
    assert cfg.data_dir == (tmp_path / "queue").resolve()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE + "[intake]\nstable_seconds = -1\n", "intake.stable_seconds: must be at least 0"),
        (BASE + "[intake]\nstable_secs = 3\n", "intake.stable_secs: unknown key"),
        (BASE.replace('"heavy"', '"medium"'), "targets.x.policy: unknown policy 'medium'"),
        (BASE.replace('"local"', '"facebook"'), "targets.x.adapter: unknown adapter 'facebook'"),
        (BASE + '[render]\nbackground = "white"\n', "render.background: must be a colour"),
        ('timezone = "Mars/Olympus"\n' + BASE, "timezone: unknown time zone"),
        (BASE + 'timezone = "Asia/Tokyo"\n', "targets.x.timezone: unknown key for the local adapter"),
        ('data_dir = "q"\n', "targets: is required"),
        (BASE + "[targets\n", "not valid TOML"),
    ],
)
def test_bad_config_gives_one_line_naming_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(path.resolve()) if "TOML" not in expected else str(path))
    assert expected in message


def test_a_config_saved_as_shift_jis_is_one_line_not_a_crash(tmp_path: Path) -> None:
    """Japanese Windows editors may save as Shift_JIS; TOML is UTF-8 (it was a traceback)."""
    path = tmp_path / "config.toml"
    path.write_bytes((BASE + 'artist = "山田"\n').encode("shift_jis"))
    with pytest.raises(ConfigError) as err:
        config.load(path)
    offset = len((BASE + 'artist = "').encode("utf-8"))
    assert str(err.value) == f"{path}: not UTF-8 text (byte {offset}): save it as UTF-8"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE + "[intake]\nstable_seconds = -1\n", "intake.stable_seconds：0 以上にしてください"),
        (BASE.replace('"heavy"', '"medium"'), "targets.x.policy：'medium' という保護設定はありません"),
        (BASE + "[intake]\nstable_secs = 3\n", "intake.stable_secs：不明なキーです"),
        ('timezone = "Mars/Olympus"\n' + BASE, "timezone：'Mars/Olympus' というタイムゾーンはありません"),
    ],
)
def test_bad_config_in_japanese(tmp_path: Path, text: str, expected: str) -> None:
    """The same one line, in Japanese under a Japanese locale or config (pydantic's own
    constraint words included)."""
    from poster import i18n

    path = write(tmp_path, text)
    with i18n.using("ja"), pytest.raises(ConfigError) as err:
        config.load(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path.resolve()))
    assert expected in message


def test_bad_config_through_the_cli_is_one_line_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "[intake]\nscan_interval = 0\n")
    code, out, err = run_cli("--config", str(path), "status")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and "intake.scan_interval" in err and "Traceback" not in err


def test_missing_config_says_how_to_create_one(tmp_path: Path) -> None:
    code, _, err = run_cli("--config", str(tmp_path / "nope.toml"), "status")
    assert code == 2 and "poster init" in err


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    assert run_cli("init", str(tmp_path / "h"))[0] == 0
    code, _, err = run_cli("init", str(tmp_path / "h"))
    assert code == 2 and "already exists" in err


def test_two_configs_in_one_process_do_not_leak(tmp_path: Path) -> None:
    a = config.load(write(tmp_path, 'artist = "A"\n' + BASE))
    (tmp_path / "b").mkdir()
    b = config.load(write(tmp_path / "b", BASE))
    assert a.artist == "A" and b.artist == ""


def test_config_option_works_after_the_command_name_too(home: config.Config) -> None:
    for args in (("status", "--json"), ("ledger", "verify"), ("ledger", "export", "--csv")):
        code, _, err = run_cli(*args, "--config", str(home.path))
        assert code == 0, (args, err)
    code, _, err = run_cli("status", "--config", str(home.path.parent / "missing.toml"))
    assert code == 2 and "missing.toml: no such config file" in err


def test_watcher_reloads_a_changed_file_and_keeps_the_old_config_on_a_broken_one(tmp_path):
    import logging

    from poster import cli

    path = cli.init_home(tmp_path / "home")
    told: list[tuple[int, str]] = []
    start = config.load(path)
    w = config.Watcher(start, lambda level, text: told.append((level, text)))
    assert w.poll() is start and told == []  # unchanged: nothing read twice, nothing said
    text = path.read_text(encoding="utf-8")
    path.write_text(text + '\n[targets.extra]\nadapter = "local"\n', encoding="utf-8")
    new = w.poll()
    assert "extra" in new.targets and told[-1][0] == logging.INFO and "reloaded" in told[-1][1]
    path.write_text(text + "\n[targets.broken\n", encoding="utf-8")
    assert w.poll() is new and w.poll() is new and w.poll() is new
    errors = [t for level, t in told if level == logging.ERROR]
    assert len(errors) == 1 and "not valid TOML" in errors[0] and "\n" not in errors[0]
    path.write_text(text.replace('data_dir = "queue"', 'data_dir = "other"'), encoding="utf-8")
    assert w.poll() is new and w.poll() is new
    assert sum("data_dir changed" in t for _, t in told) == 1
    # an editor replacing the file: a moment without it is not an error
    path.write_text(text, encoding="utf-8")
    w.poll()
    path.unlink()
    before = len(told)
    w.poll()
    path.write_text(text, encoding="utf-8")
    w.poll()
    assert not [t for _, t in told[before:] if "no such config file" in t]


def test_render_font_and_logo_are_files_relative_to_the_config(tmp_path: Path) -> None:
    from poster.errors import ConfigError

    (tmp_path / "fonts").mkdir()
    (tmp_path / "fonts" / "mine.ttf").write_bytes(b"x")
    path = tmp_path / "config.toml"
    base = '[targets.x]\nadapter = "local"\n'
    path.write_text('[render]\nfont = "fonts/mine.ttf"\nlogo = ""\n' + base, encoding="utf-8")
    cfg = config.load(path)
    assert cfg.render.font == tmp_path / "fonts" / "mine.ttf" and cfg.render.logo is None
    path.write_text('[render]\nlogo = "nope.png"\n' + base, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"render\.logo: no such file"):
        config.load(path)
    path.write_text('[render]\nwatermark_look = "loud"\n' + base, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"render\.watermark_look"):
        config.load(path)


def test_config_no_longer_imports_policies_or_schedule() -> None:
    """The layering: config is read by policies and schedule, never the other way round
    (they imported each other in a circle)."""
    import ast

    import poster.config

    tree = ast.parse(Path(poster.config.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"poster.policies", "poster.schedule", "poster.render", "poster.protect"}
