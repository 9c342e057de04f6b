"""Secrets never leak: canary credentials across a full run at the highest verbosity.

Every credential is given through POSTER_* variables (the headless fallback); one target has
a wrong token so the failure path (HTTP 401, reasons, exception text) is exercised too. Then
every file under the home folder and everything printed is searched for every canary.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from poster import config
from poster.platforms.pixiv import PixivAdapter
from tests.conftest import artwork, run_cli
from tests.servers import x as x_srv
from tests.servers.mastodon import MastodonServer
from tests.servers.misskey import MisskeyServer
from tests.servers.pixiv import SESSION, PixivServer

MASTO = "CANARY-masto-5a1e7c0d"
MISSKEY = "CANARY-misskey-9b3f21aa"
WRONG = "CANARY-wrong-token-77e1"


def test_no_secret_reaches_any_file_or_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PixivAdapter, "progress_poll_interval", 0.0)
    canaries = [*x_srv.CREDS.values(), SESSION, MASTO, MISSKEY, WRONG]
    with (
        x_srv.XServer() as xs,
        PixivServer() as px,
        MastodonServer(token=MASTO) as ms,
        MisskeyServer(token=MISSKEY) as mk,
    ):
        for field, value in x_srv.CREDS.items():
            monkeypatch.setenv(f"POSTER_X_{field}", value)
        monkeypatch.setenv("POSTER_PIXIV_SESSION", SESSION)
        monkeypatch.setenv("POSTER_MASTO_TOKEN", MASTO)
        monkeypatch.setenv("POSTER_MK_TOKEN", MISSKEY)
        monkeypatch.setenv("POSTER_BAD_TOKEN", WRONG)
        home = tmp_path / "home"
        (home / "queue" / "outbox").mkdir(parents=True)
        (home / "config.toml").write_text(
            f"""data_dir = "queue"
artist = "Canary Artist"
[targets.x]
adapter = "x"
policy = "heavy"
api_base = "{xs.url}"
[targets.pixiv]
adapter = "pixiv"
api_base = "{px.url}"
[targets.masto]
adapter = "mastodon"
instance = "{ms.url}"
[targets.mk]
adapter = "misskey"
instance = "{mk.url}"
[targets.bad]
adapter = "mastodon"
instance = "{ms.url}"
max_attempts = 1
""",
            encoding="utf-8",
        )
        cfg = config.load(home / "config.toml")
        artwork((700, 500), seed=5).save(cfg.outbox / "fox.png")
        (cfg.outbox / "fox.toml").write_text(
            'caption = "A fox"\nalt = "A red fox"\nai_generated = false\n', encoding="utf-8"
        )
        old = time.time() - 3600
        for p in cfg.outbox.iterdir():
            os.utime(p, (old, old))

        outputs = []
        for args in (
            ("-vv", "--debug", "run", "--once", "--now"),
            ("-vv", "--debug", "status"),
            ("status", "--json"),
            ("ledger", "export", "--json"),
            ("ledger", "export", "--csv"),
            ("-vv", "--debug", "doctor"),
            ("doctor", "--json"),
        ):
            code, out, err = run_cli(*args, cfg=cfg)
            outputs.append((args, code, out + err))

    statuses = {j["target"]: j for j in json.loads(run_cli("status", "--json", cfg=cfg)[1])}
    for target in ("x", "pixiv", "masto", "mk"):
        assert statuses[target]["state"] == "posted", statuses[target]["reason"]
    assert statuses["bad"]["state"] == "failed" and statuses["bad"]["reason"]

    rows = json.loads(run_cli("ledger", "export", "--json", cfg=cfg)[1])
    posted_local = [Path(unquote(urlparse(r["url"]).path)) for r in rows if r["url"].startswith("file:")]
    for p in posted_local:
        outputs.append((("trace",), 0, run_cli("trace", str(p), "--json", cfg=cfg)[1]))

    for args, _, text in outputs:
        for canary in canaries:
            assert canary not in text, f"secret leaked in output of poster {' '.join(args)}"
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name == "poster.log" for p in files) and any(p.name == "poster.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for canary in canaries:
            assert canary.encode() not in data, f"secret leaked into {path.relative_to(home)}"

    # the data folder and the databases are private to the user
    assert cfg.data_dir.stat().st_mode & 0o077 == 0
    for name in ("poster.db", "poster.log", "mark.key"):
        assert (cfg.data_dir / name).stat().st_mode & 0o077 == 0, name
