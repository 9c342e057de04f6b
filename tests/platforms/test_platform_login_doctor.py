"""`poster login` stores credentials in the keyring (env vars win); `poster doctor` makes one
cheap authenticated call per target and says what is wrong in plain words."""

from __future__ import annotations

import json

import keyring
import pytest
from click.testing import CliRunner
from keyring.backend import KeyringBackend

from poster import cli, secrets
from poster.platforms import adapter_class
from tests.servers.mastodon import MastodonServer


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self):
        super().__init__()
        self.store = {}

    def get_password(self, service, username):
        return self.store.get((service, username))

    def set_password(self, service, username, password):
        self.store[(service, username)] = password

    def delete_password(self, service, username):
        self.store.pop((service, username), None)


@pytest.fixture
def memory_keyring():
    old = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(old)


@pytest.fixture
def home(tmp_path):
    with MastodonServer() as server:
        (tmp_path / "queue").mkdir()
        (tmp_path / "config.toml").write_text(
            f'data_dir = "queue"\n[targets.masto]\nadapter = "mastodon"\npolicy = "light"\n'
            f'instance = "{server.url}"\n[targets.xf]\nadapter = "xfolio"\npolicy = "light"\n',
            encoding="utf-8",
        )
        yield tmp_path / "config.toml", server


def invoke(args, input=None):
    result = CliRunner().invoke(cli.cli, args, input=input, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_prompt_fields_hide_secrets():
    fields = {f.name: f for f in secrets.login_prompt_fields(adapter_class("bluesky"))}
    assert not fields["HANDLE"].secret and fields["APP_PASSWORD"].secret
    assert "App passwords" in fields["APP_PASSWORD"].help
    assert all(f.secret for f in secrets.login_prompt_fields(adapter_class("x")))
    assert secrets.login_prompt_fields(adapter_class("xfolio")) == []


def test_login_stores_in_keyring_then_doctor_ok(home, memory_keyring, monkeypatch):
    path, server = home
    monkeypatch.delenv("POSTER_MASTO_TOKEN", raising=False)
    code, out, err = invoke(["--config", str(path), "login", "masto"], input=server.token + "\n")
    assert code == 0, err
    assert "stored TOKEN" in out and "ok" in out
    assert server.token not in out + err  # hidden input, never echoed
    assert memory_keyring.store[("poster", "masto:TOKEN")] == server.token
    assert secrets.credential_sources("masto", ["TOKEN"]) == {"TOKEN": "keyring"}
    code, out, err = invoke(["--config", str(path), "doctor", "masto", "--json"])
    assert code == 0, err
    (report,) = json.loads(out)
    assert report["ok"] and report["credentials"] == {"TOKEN": "keyring"}


def test_env_wins_over_keyring(home, memory_keyring, monkeypatch):
    memory_keyring.set_password("poster", "masto:TOKEN", "stale-keyring-token")
    monkeypatch.setenv("POSTER_MASTO_TOKEN", "env-token-value")
    assert secrets.credentials("masto", ["TOKEN"]) == {"TOKEN": "env-token-value"}
    assert secrets.credential_sources("masto", ["TOKEN"]) == {"TOKEN": "env"}


def test_doctor_says_what_is_wrong(home, memory_keyring, monkeypatch):
    path, _server = home
    monkeypatch.setenv("POSTER_MASTO_TOKEN", "revoked-token-1")
    code, out, err = invoke(["--config", str(path), "doctor"])
    assert code != 0
    assert "masto (mastodon): PROBLEM" in out and "poster login masto" in out
    assert "xf (xfolio): ok" in out
    assert "revoked-token-1" not in out + err
    assert "1 of 2 targets need attention: masto" in err
    monkeypatch.delenv("POSTER_MASTO_TOKEN")
    code, out, err = invoke(["--config", str(path), "doctor", "masto"])
    assert code != 0 and "POSTER_MASTO_TOKEN" in out and "missing: TOKEN" in out


def test_login_without_keyring_points_to_env(home, monkeypatch):
    from keyring.backends import fail

    path, _ = home
    old = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        code, _out, err = invoke(["--config", str(path), "login", "masto"], input="x\n")
    finally:
        keyring.set_keyring(old)
    assert code != 0 and "POSTER_MASTO_TOKEN" in err


def test_login_unknown_target(home, memory_keyring):
    path, _ = home
    code, _out, err = invoke(["--config", str(path), "login", "nope"])
    assert code != 0 and "no target named 'nope'" in err
