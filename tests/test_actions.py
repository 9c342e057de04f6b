# ruff: noqa: F811
"""poster.actions, what the CLI and the web UI share: no action posts a job that may already be
posted without asking the platform first (issue 13, item 2); dropping art into the outbox,
approval, the queue, calendar, ledger and settings as the web UI uses them (issue 14)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from poster import actions, config, jobs, ledger, outbox, store
from poster.dispatch import Dispatcher
from poster.errors import InputError, UserError
from poster.jobs import State
from poster.platforms.base import Existence, PostResult
from tests.conftest import artwork, run_cli

# `cfg` is test_dispatch's fixture (a home with one scripted target), shared, not redefined
from tests.test_dispatch import ScriptedAdapter, cfg, one_job  # noqa: F401
from tests.ui.conftest import png_bytes, set_top_level


def uncertain_job(cfg: config.Config) -> jobs.Job:
    ScriptedAdapter.script.append(PostResult.uncertain("the answer did not say"))
    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        Dispatcher(cfg, conn).run_due(ignore_schedule=True)
        job = one_job(conn)
    assert job.state is State.UNCERTAIN
    return job


def state(cfg: config.Config, job_id: int) -> State:
    with store.connect(cfg.db_path) as conn:
        return jobs.get(conn, job_id).state


def test_retry_refuses_an_uncertain_job(cfg: config.Config) -> None:
    job = uncertain_job(cfg)
    code, _, err = run_cli("retry", str(job.id), cfg=cfg)
    assert code != 0 and "confirm" in err
    assert state(cfg, job.id) is State.UNCERTAIN


def test_cancel_then_retry_does_not_turn_uncertain_into_ready(cfg: config.Config) -> None:
    """Cancelling an uncertain job and retrying it was a way around the look-up: it now goes
    back to `uncertain`, and the next run asks the platform before anything is posted."""
    job = uncertain_job(cfg)
    assert run_cli("cancel", str(job.id), cfg=cfg)[0] == 0
    code, out, err = run_cli("retry", str(job.id), cfg=cfg)
    assert code == 0, err
    assert "uncertain again" in out
    assert state(cfg, job.id) is State.UNCERTAIN
    ScriptedAdapter.existence = Existence.EXISTS
    code, out, err = run_cli("run", "--once", "--now", cfg=cfg)
    assert code == 0, err
    assert state(cfg, job.id) is State.POSTED
    assert ScriptedAdapter.posted == []  # found, never posted a second time
    assert len(ScriptedAdapter.lookups) >= 1


def test_retry_of_a_cancelled_job_that_was_never_posted_is_a_plain_retry(
    cfg: config.Config,
) -> None:
    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        job = one_job(conn)
    assert run_cli("cancel", str(job.id), cfg=cfg)[0] == 0
    assert run_cli("retry", str(job.id), cfg=cfg)[0] == 0
    assert state(cfg, job.id) is State.PENDING


def test_confirm_not_posted_looks_the_post_up_first(cfg: config.Config) -> None:
    job = uncertain_job(cfg)
    ScriptedAdapter.existence = Existence.EXISTS
    code, _, err = run_cli("confirm", str(job.id), "--not-posted", cfg=cfg)
    assert code != 0
    assert "https://example/found" in err and "--posted" in err
    assert state(cfg, job.id) is State.UNCERTAIN
    ScriptedAdapter.existence = Existence.UNKNOWN  # the platform cannot tell: the user decides
    code, _, err = run_cli("confirm", str(job.id), "--not-posted", cfg=cfg)
    assert code == 0, err
    assert state(cfg, job.id) is State.READY


# -- the web UI's actions (issue 14) ----------------------------------------


def _post(
    files: list[tuple[str, bytes]], **fields: object
) -> tuple[list[actions.Upload], actions.PostFields]:
    return [actions.Upload(n, d) for n, d in files], actions.PostFields(**fields)  # type: ignore[arg-type]


def _approving(cfg: config.Config) -> config.Config:
    set_top_level(cfg.path, "approve", "true")
    return config.load(cfg.path)


# -- drop into the outbox --------------------------------------------------------------------
def test_drop_writes_image_and_sidecar_that_intake_takes(home: config.Config) -> None:
    files, fields = _post(
        [("うさぎ.png", png_bytes())],
        title="雪うさぎ",
        caption="冬の絵です",
        tags="うさぎ、冬 #illustration",
        alt=["雪の中の白いうさぎ"],
        rating="r18",
        targets=["pixiv"],
        at="2030-01-02T19:00",
    )
    name = actions.drop_into_outbox(home, files, fields)
    assert name == "うさぎ.png"
    assert sorted(p.name for p in home.outbox.iterdir()) == ["うさぎ.png", "うさぎ.toml"]
    conn = store.connect(home.db_path)
    (result,) = outbox.scan(conn, home)  # stable at once: written complete, then renamed in
    assert result.outcome == "queued", result
    (job,) = jobs.all_jobs(conn)
    assert job.target == "pixiv"
    assert job.meta["title"] == "雪うさぎ" and job.meta["rating"] == "r18"
    assert job.meta["tags"] == ["うさぎ", "冬", "illustration"]
    assert job.meta["alt"] == "雪の中の白いうさぎ"
    assert job.meta["at"].startswith("2030-01-02T19:00:00")


def test_drop_several_images_makes_one_folder_post(home: config.Config) -> None:
    files, fields = _post(
        [("a.png", png_bytes(seed=1)), ("b.png", png_bytes(seed=2))], title="two", alt=["first", "second"]
    )
    assert actions.drop_into_outbox(home, files, fields) == "a/"
    conn = store.connect(home.db_path)
    (result,) = outbox.scan(conn, home)
    assert result.outcome == "queued"
    art = actions.queue(home, conn)[0]
    assert [o.name for o in art.images] == ["01-a.png", "02-b.png"]
    assert art.jobs[0].job.meta["alt"] == ["first", "second"]


def test_drop_name_clash_gets_a_new_name(home: config.Config) -> None:
    files, fields = _post([("x.png", png_bytes())])
    assert actions.drop_into_outbox(home, files, fields) == "x.png"
    assert actions.drop_into_outbox(home, files, fields) == "x-2.png"


@pytest.mark.parametrize(
    ("name", "data", "fields", "words"),
    [
        ("art.psd", b"8BPS....", {}, "Photoshop"),
        ("art.txt", b"hello", {}, "not an image"),
        ("art.png", b"\x89PNG\r\n\x1a\nbroken", {}, "art.png"),
        ("art.png", None, {"rating": "adult"}, "rating"),
        ("art.png", None, {"targets": ["mastodon"]}, "unknown target"),
        ("art.png", None, {"targets": []}, "at least one"),
        ("art.png", None, {"at": "next tuesday"}, "not a date"),
    ],
)
def test_drop_refuses_what_intake_would_refuse(
    home: config.Config, name: str, data: bytes | None, fields: dict[str, object], words: str
) -> None:
    files, f = _post([(name, data if data is not None else png_bytes())], **fields)
    with pytest.raises(InputError, match=words):
        actions.drop_into_outbox(home, files, f)
    assert not any(home.outbox.iterdir())  # nothing half-written left behind


def test_drop_refuses_a_file_over_the_size_limit(home: config.Config) -> None:
    cfg = home
    big = png_bytes((1200, 1200))
    cfg = config.parse(cfg.path, {**_raw(cfg), "intake": {"max_file_bytes": 1_000_000}})
    files, fields = _post([("big.png", big + b"\0" * (1_000_001 - len(big)))])
    with pytest.raises(InputError, match="over the limit"):
        actions.drop_into_outbox(cfg, files, fields)


def _raw(cfg: config.Config) -> dict[str, object]:
    import tomllib

    return tomllib.loads(cfg.path.read_text(encoding="utf-8"))


def test_drop_refuses_a_decompression_bomb(home: config.Config) -> None:
    cfg = config.parse(home.path, {**_raw(home), "intake": {"max_image_pixels": 1_000_000}})
    files, fields = _post([("huge.png", png_bytes((1200, 1000)))])
    with pytest.raises(InputError):
        actions.drop_into_outbox(cfg, files, fields)


# -- approval ------------------------------------------------------------------------------
def _queued(cfg: config.Config, drop, n: int = 1) -> object:  # type: ignore[no-untyped-def]
    for i in range(n):
        drop(f"art{i}.png", artwork((480, 360), seed=i))
    conn = store.connect(cfg.db_path)
    outbox.scan(conn, cfg)
    return conn


def test_with_approve_nothing_posts_until_approved(home: config.Config, drop) -> None:  # type: ignore[no-untyped-def]
    cfg = _approving(home)
    conn = _queued(cfg, drop)
    d = Dispatcher(cfg, conn)
    outcomes = d.run_due(ignore_schedule=True)
    assert outcomes == []
    states = {j.target: j for j in jobs.all_jobs(conn)}
    assert {j.state for j in states.values()} == {State.READY}  # rendered ahead, to be looked at
    assert all(j.reason and "approval" in j.reason for j in states.values())
    assert d.next_due() is None  # the daemon does not wake for jobs nobody approved
    assert ledger.rows(conn) == []
    msg = actions.approve(cfg, conn, states["x"].id)
    assert "approved" in msg and "variants/" in msg
    outcomes = d.run_due(ignore_schedule=True)
    assert [(o.target, o.state) for o in outcomes] == [("x", State.POSTED)]
    assert [r["target"] for r in ledger.rows(conn)] == ["x"]


def test_a_target_can_opt_out_of_approval(home: config.Config, drop) -> None:  # type: ignore[no-untyped-def]
    text = home.path.read_text(encoding="utf-8").replace(
        '[targets.pixiv]\nadapter = "local"', '[targets.pixiv]\nadapter = "local"\napprove = false'
    )
    home.path.write_text(text, encoding="utf-8")
    cfg = _approving(home)
    conn = _queued(cfg, drop)
    outcomes = Dispatcher(cfg, conn).run_due(ignore_schedule=True)
    assert [(o.target, o.state) for o in outcomes] == [("pixiv", State.POSTED)]


def test_approval_is_withdrawn_when_the_job_is_rendered_again(home: config.Config, drop) -> None:  # type: ignore[no-untyped-def]
    cfg = _approving(home)
    conn = _queued(cfg, drop)
    Dispatcher(cfg, conn).run_due(ignore_schedule=True)
    job = next(j for j in jobs.all_jobs(conn) if j.target == "x")
    actions.approve(cfg, conn, job.id)
    assert jobs.get(conn, job.id).approved_at is not None
    with store.transaction(conn):
        jobs.save_variants(conn, job.id, jobs.variants(conn, job.id))
    assert jobs.get(conn, job.id).approved_at is None


def test_approve_refuses_an_unrendered_or_posted_job(home: config.Config, drop) -> None:  # type: ignore[no-untyped-def]
    conn = _queued(home, drop)
    job = jobs.all_jobs(conn)[0]
    with pytest.raises(UserError, match="not rendered yet"):
        actions.approve(home, conn, job.id)
    Dispatcher(home, conn).run_due(ignore_schedule=True)
    with pytest.raises(UserError, match="posted"):
        actions.approve(home, conn, job.id)


def test_poster_approve_command(home: config.Config, drop) -> None:  # type: ignore[no-untyped-def]
    cfg = _approving(home)
    conn = _queued(cfg, drop)
    Dispatcher(cfg, conn).run_due(ignore_schedule=True)
    ids = [str(j.id) for j in jobs.all_jobs(conn)]
    code, out, err = run_cli("approve", *ids, cfg=cfg)
    assert code == 0, err
    assert out.count("approved") == 3
    code, out, err = run_cli("run", "--once", "--now", cfg=cfg)
    assert code == 0, err
    assert len(ledger.rows(conn)) == 3


def test_prepare_renders_the_variant_that_is_then_posted(home: config.Config, drop) -> None:  # type: ignore[no-untyped-def]
    conn = _queued(home, drop)
    job = next(j for j in jobs.all_jobs(conn) if j.target == "pixiv")
    assert "rendered" in actions.prepare(home, conn, job.id)
    path, _mime = actions.variant_file(home, conn, job.id, 0)
    shown = path.read_bytes()
    q = actions.variant_quality(home, conn, job.id, 0)
    assert 30 < q["psnr"] < 80 and 0.8 < q["ssim"] <= 1.0
    Dispatcher(home, conn).run_due(ignore_schedule=True)
    (row,) = [r for r in ledger.rows(conn) if r["target"] == "pixiv"]
    published = Path(row["url"].removeprefix("file://")).read_bytes()
    assert published == shown


# -- queue, calendar, ledger -----------------------------------------------------------------
def test_queue_groups_jobs_by_artwork_and_words_states(home: config.Config, drop) -> None:  # type: ignore[no-untyped-def]
    conn = _queued(home, drop, n=2)
    art = actions.queue(home, conn)
    assert [a.name for a in art] == ["art1.png", "art0.png"]  # newest first
    assert [j.job.target for j in art[0].jobs] == ["pixiv", "x", "xfolio"]
    assert {j.label for j in art[0].jobs} == {"scheduled"}
    job = art[0].jobs[0].job
    actions.cancel(conn, job.id)
    again = actions.queue(home, conn)[0].jobs[0]
    assert again.label == "cancelled" and again.can_retry and not again.can_cancel


def test_calendar_puts_jobs_on_their_day(home: config.Config, drop) -> None:  # type: ignore[no-untyped-def]
    conn = _queued(home, drop)
    Dispatcher(home, conn).run_due(ignore_schedule=True)
    from poster.schedule import zone

    today = store.now().astimezone(zone(home)).date()
    days = actions.calendar(home, conn, today - timedelta(days=3), 7)
    entries = days[today]
    assert sorted(e.target for e in entries) == ["pixiv", "x", "xfolio"]
    assert {e.state for e in entries} == {State.POSTED}
    assert sum(len(v) for v in days.values()) == 3


def test_ledger_search_filters_and_exports(home: config.Config, drop) -> None:  # type: ignore[no-untyped-def]
    drop("rabbit.png", artwork((480, 360), seed=1))
    drop("rabbit.toml", b'title = "Snow rabbit"\n')
    drop("fox.png", artwork((480, 360), seed=2))
    conn = store.connect(home.db_path)
    outbox.scan(conn, home)
    Dispatcher(home, conn).run_due(ignore_schedule=True)
    assert len(actions.ledger_search(conn)) == 6
    hits = actions.ledger_search(conn, text="snow")
    assert {h["title"] for h in hits} == {"Snow rabbit"} and len(hits) == 3
    assert {h["files"] for h in hits} == {"rabbit.png"}  # the artwork's name and its file, once
    assert len(actions.ledger_search(conn, text="fox.png", target="x")) == 1
    tomorrow = date.today() + timedelta(days=2)
    assert actions.ledger_search(conn, since=tomorrow) == []
    exported = json.loads(actions.ledger_export(hits, "json"))
    assert {r["id"] for r in exported} == {h["id"] for h in hits}
    assert set(exported[0]) == set(ledger.EXPORT_FIELDS)
    csv_text = actions.ledger_export(hits, "csv")
    assert csv_text.splitlines()[0].startswith("id,target,url,posted_at")
    assert len(csv_text.splitlines()) == 4
    assert actions.ledger_verify(home, conn)[0] is True
    conn.execute("UPDATE ledger SET target = 'evil' WHERE seq = 2")
    ok, text = actions.ledger_verify(home, conn)
    assert not ok and "2" in text


# -- settings --------------------------------------------------------------------------------
def test_settings_are_written_back_keeping_comments(home: config.Config) -> None:
    before = home.path.read_text(encoding="utf-8")
    errors = actions.save_settings(
        home,
        {
            "artist": "山田はな",
            "timezone": "Asia/Tokyo",
            "language": "ja",
            "approve": "on",
            "targets.x.enabled": "on",
            "targets.x.policy": "light",
            "targets.x.slots": "mon-fri 19:00,21:00\nsat,sun 10:00",
            "targets.x.min_interval_minutes": "10",
            "targets.x.daily_cap": "",
            "targets.x.delay_minutes": "60",
            "targets.x.approve": "off",
            "targets.pixiv.enabled": "on",
            "targets.pixiv.slots": "",
        },
    )
    assert errors == {}
    after = home.path.read_text(encoding="utf-8")
    assert "# X's terms (since 2024-11-15) let it train AI on posts" in before
    for line in before.splitlines():  # every comment survives
        if line.lstrip().startswith("#"):
            assert line in after
    cfg = config.load(home.path)
    assert cfg.artist == "山田はな" and cfg.timezone == "Asia/Tokyo" and cfg.language == "ja"
    assert cfg.approve and not cfg.needs_approval("x") and cfg.needs_approval("pixiv")
    assert cfg.targets["x"].slots == ("mon-fri 19:00,21:00", "sat,sun 10:00")
    assert cfg.targets["x"].daily_cap is None and cfg.targets["x"].delay_minutes == 60
    assert cfg.targets["x"].policy == "light"
    assert not cfg.targets["xfolio"].enabled  # its box was not ticked


def test_settings_errors_name_each_field_and_write_nothing(home: config.Config) -> None:
    before = home.path.read_text(encoding="utf-8")
    errors = actions.save_settings(
        home,
        {
            "timezone": "Mars/Olympus",
            "targets.x.enabled": "on",
            "targets.x.slots": "someday 25:00",
            "targets.x.min_interval_minutes": "-5",
            "targets.x.daily_cap": "many",
            "targets.x.policy": "nonexistent",
        },
    )
    assert set(errors) >= {
        "timezone",
        "targets.x.slots",
        "targets.x.min_interval_minutes",
        "targets.x.daily_cap",
    }, errors
    assert "Mars/Olympus" in errors["timezone"]
    assert errors["targets.x.min_interval_minutes"] == "must be at least 0"
    assert errors["targets.x.daily_cap"] == "must be a whole number"
    assert home.path.read_text(encoding="utf-8") == before


def test_the_look_of_the_copies_is_set_from_the_form(home: config.Config, tmp_path: Path) -> None:
    """Font, logo, watermark look and signature position: written into [render], checked by
    the config's own models (a missing font file is named beside its field), "" = not set."""
    from PIL import Image

    logo = home.path.parent / "logo.png"
    Image.new("RGBA", (64, 32), (200, 30, 30, 128)).save(logo)
    view, _targets, _policies = actions.settings(home)
    assert view["watermark_look"] == "standard" and view["signature_position"] == "auto"
    assert view["font"] == "" and view["font_in_use"]
    form = {
        "render.font": "",
        "render.logo": "logo.png",  # relative to config.toml, as in the file
        "render.watermark_look": "subtle",
        "render.signature_position": "top-left",
    }
    assert actions.save_settings(home, form) == {}
    cfg = config.load(home.path)
    assert cfg.render.logo == logo.resolve() and cfg.render.font is None
    assert (cfg.render.watermark_look, cfg.render.signature_position) == ("subtle", "top-left")
    before = home.path.read_text(encoding="utf-8")
    errors = actions.save_settings(cfg, {**form, "render.font": "fonts/none.ttf"})
    assert "none.ttf" in errors["render.font"] and home.path.read_text(encoding="utf-8") == before


def test_an_unknown_policy_is_named_beside_its_field(home: config.Config) -> None:
    errors = actions.save_settings(home, {"targets.x.policy": "nonexistent", "targets.x.enabled": "on"})
    assert "nonexistent" in errors["targets.x.policy"]


def test_an_unknown_policy_is_named_beside_its_field_in_japanese(home: config.Config) -> None:
    """The Japanese message has a full-width colon after the key; it still lands beside the
    field, not as an error of the whole form."""
    from poster import i18n

    with i18n.using("ja"):
        errors = actions.save_settings(home, {"targets.x.policy": "nonexistent", "targets.x.enabled": "on"})
    assert list(errors) == ["targets.x.policy"]
    assert "'nonexistent' という保護設定はありません" in errors["targets.x.policy"]


def test_the_web_trace_shows_the_index_rebuild_and_describes_once(
    home: config.Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The web UI's trace (trace_files) brings a stale index up to date as a named task step
    before the images' steps, and the tracer uses that index instead of updating it again."""
    from poster import features
    from poster.i18n import _
    from tests.test_features import _add_original, _archived

    with store.connect(home.db_path) as conn:
        conn.execute(
            "INSERT INTO artworks (id, content_key, name, meta, created_at) VALUES (1, 'k', 'a', '{}', 'now')"
        )
        for i in range(3):
            _add_original(conn, home.data_dir, i)
        features.update(conn, home.data_dir)
        root = home.data_dir / features.INDEX_DIR
        manifest = json.loads((root / features.MANIFEST).read_text())
        (root / features.MANIFEST).write_text(json.dumps(dict(manifest, codebook="1:0123456789abcdef")))
        updates: list[int] = []
        real_update = features.update
        monkeypatch.setattr(
            features, "update", lambda *a, **k: updates.append(1) or real_update(*a, **k)
        )  # fmt: skip
        copy = tmp_path / "found.png"
        _archived(1).save(copy)
        steps: list[tuple[int, int, str]] = []
        items = actions.trace_files(home, conn, [("found.png", copy)], None, lambda *s: steps.append(s))
    describing = _("describing the archive's originals for trace")
    assert steps == [(1, 3, describing), (2, 3, describing), (3, 3, describing), (1, 1, "found.png")]
    assert updates == [1]
    assert items[0].error is None


def test_credentials_go_to_the_keyring_and_are_never_returned(home: config.Config, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from poster import secrets

    stored: dict[str, dict[str, str]] = {}
    monkeypatch.setattr(secrets, "keyring_status", lambda: (True, "TestKeyring"))
    monkeypatch.setattr(secrets, "store", lambda target, values: stored.setdefault(target, dict(values)))
    text = home.path.read_text(encoding="utf-8").replace(
        '[targets.pixiv]\nadapter = "local"', '[targets.pixiv]\nadapter = "pixiv"'
    )
    home.path.write_text(text, encoding="utf-8")
    cfg = config.load(home.path)
    msg = actions.store_credentials(cfg, "pixiv", {"SESSION": "  s3cr3t-cookie  ", "other": "x"})
    assert stored == {"pixiv": {"SESSION": "s3cr3t-cookie"}}
    assert "s3cr3t" not in msg and "SESSION" in msg
    assert "s3cr3t" not in home.path.read_text(encoding="utf-8")
    with pytest.raises(UserError, match="nothing entered"):
        actions.store_credentials(cfg, "pixiv", {"SESSION": " "})


def test_prepare_trace_index_describes_the_originals_it_lacks_with_progress(home: config.Config) -> None:
    """Before a trace the CLI brings the local-feature index up to date, one progress step per
    original described: after an upgrade that changed the extraction, the whole archive (the
    rebuild a trace would otherwise spend silently); when nothing is missing, no step."""
    from poster import features
    from tests.test_features import _add_original

    with store.connect(home.db_path) as conn:
        conn.execute(
            "INSERT INTO artworks (id, content_key, name, meta, created_at) VALUES (1, 'k', 'a', '{}', 'now')"
        )
        keys = [_add_original(conn, home.data_dir, i) for i in range(3)]
        features.update(conn, home.data_dir)
        root = home.data_dir / features.INDEX_DIR
        manifest = json.loads((root / features.MANIFEST).read_text())
        (root / features.MANIFEST).write_text(json.dumps(dict(manifest, codebook="1:0123456789abcdef")))
        steps: list[tuple[int, int]] = []
        actions.prepare_trace_index(home, conn, lambda done, total: steps.append((done, total)))
        assert steps == [(1, 3), (2, 3), (3, 3)]
        assert sorted(features.FeatureIndex(root).keys()) == sorted(keys)
        steps.clear()
        actions.prepare_trace_index(home, conn, lambda done, total: steps.append((done, total)))
        assert steps == []
