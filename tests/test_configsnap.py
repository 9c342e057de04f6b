"""poster.configsnap: `poster status` reads the config's essentials from the snapshot of its
last full check, and only while the file is byte for byte the one that was checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from poster import config, configsnap, outbox, store
from tests.conftest import artwork, run_cli
from tests.ui.conftest import set_top_level


def _poster(cfg: Path, *args: str, lang: str = "en") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LANG": f"{lang}_{'JP' if lang == 'ja' else 'US'}.UTF-8", "LC_ALL": ""}
    return subprocess.run(
        [sys.executable, "-m", "poster", "--config", str(cfg), *args],
        cwd=cfg.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_checked_config_is_recalled_as_it_was_loaded(home: config.Config) -> None:
    set_top_level(home.path, "timezone", '"Asia/Tokyo"')
    set_top_level(home.path, "language", '"ja"')
    cfg = config.load(home.path)
    got = configsnap.recall(home.path)
    assert got == configsnap.Essentials.of(cfg)
    assert (got.timezone, got.language, got.stamping) == ("Asia/Tokyo", "ja", False)
    assert got.db_path == cfg.db_path and got.outbox == cfg.outbox
    # a relative --config path finds the same snapshot
    here = Path.cwd()
    os.chdir(home.path.parent)
    try:
        assert configsnap.recall(Path(home.path.name)) == got
    finally:
        os.chdir(here)


def test_any_change_to_the_file_means_a_full_check(home: config.Config) -> None:
    assert configsnap.recall(home.path) is not None
    with home.path.open("a", encoding="utf-8") as fh:
        fh.write("# a comment is a change too\n")
    assert configsnap.recall(home.path) is None
    set_top_level(home.path, "timezone", '"Europe/Paris"')
    assert configsnap.recall(home.path) is None
    assert config.load(home.path).timezone == "Europe/Paris"
    recalled = configsnap.recall(home.path)
    assert recalled is not None and recalled.timezone == "Europe/Paris"


def test_an_invalid_edit_is_reported_by_status_as_before(home: config.Config) -> None:
    code, out, _err = run_cli("status", cfg=home)
    assert code == 0 and "no jobs" in out  # the snapshot exists and is used
    set_top_level(home.path, "timezone", '"Mars/Olympus"')
    proc = _poster(home.path, "status")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"poster: error: {home.path}: timezone: unknown time zone 'Mars/Olympus'"
    ]


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # cut short
        lambda text: "not json",
        lambda text: "[]",
        lambda text: json.dumps({**json.loads(text), "stamping": "yes"}),  # a wrong type
        lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "data_dir"}),
        lambda text: json.dumps({**json.loads(text), "key": "0" * 64}),  # made from other bytes
    ],
)
def test_a_damaged_snapshot_is_not_used(home: config.Config, damage: Callable[[str], str]) -> None:
    snap = next(configsnap.folder().glob("*.json"))
    snap.write_text(damage(snap.read_text(encoding="utf-8")), encoding="utf-8")
    assert configsnap.recall(home.path) is None
    code, out, _err = run_cli("status", cfg=home)  # loaded in full, and the snapshot made again
    assert code == 0 and "no jobs" in out
    assert configsnap.recall(home.path) == configsnap.Essentials.of(home)


def test_another_version_of_poster_does_not_use_it(
    home: config.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert configsnap.recall(home.path) is not None
    monkeypatch.setattr(configsnap, "__version__", "99.0")
    assert configsnap.recall(home.path) is None


def test_the_same_bytes_in_another_folder_are_another_config(home: config.Config, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "config.toml"
    other.parent.mkdir()
    other.write_bytes(home.path.read_bytes())  # data_dir = "queue": relative to the file
    assert configsnap.recall(other) is None
    config.load(other)
    assert configsnap.recall(other).data_dir == (other.parent / "queue").resolve()
    assert configsnap.recall(home.path).data_dir == home.data_dir


def test_a_cache_that_cannot_be_written_costs_only_time(
    home: config.Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert config.load(home.path) == home  # no error
    assert configsnap.recall(home.path) is None
    code, out, _err = run_cli("status", cfg=home)
    assert code == 0 and "no jobs" in out


def test_the_snapshot_holds_four_settings_and_is_private(home: config.Config) -> None:
    (snap,) = configsnap.folder().glob("*.json")
    assert set(json.loads(snap.read_text(encoding="utf-8"))) == {
        "key",
        "data_dir",
        "timezone",
        "language",
        "stamping",
    }
    assert snap.stat().st_mode & 0o077 == 0
    assert configsnap.folder().stat().st_mode & 0o077 == 0


def test_status_says_the_same_from_the_snapshot_and_from_a_full_check(
    home: config.Config, drop: Callable[..., Path]
) -> None:
    set_top_level(home.path, "language", '"ja"')
    set_top_level(home.path, "timezone", '"Asia/Tokyo"')
    drop("a.png", artwork())
    drop("broken.png", b"not a png")
    cfg = config.load(home.path)
    with store.opened(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
    outputs = []
    for edit in (True, False, False):
        if edit:  # a change of bytes only: the next status checks the config in full
            with home.path.open("a", encoding="utf-8") as fh:
                fh.write("\n")
        proc = _poster(home.path, "status")
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1] == outputs[2]
    assert "broken.png" in outputs[0] and "a.png" in outputs[0]
    assert "ファイル／理由" in outputs[0]  # the config's language, Japanese, from either
