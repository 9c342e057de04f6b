"""Dispatch: retries with backoff and the platform's reset time, giving up with a reason,
uncertain answers, settling interrupted posts only on proof, and the ledger written in the
transaction that marks the job posted. A scripted adapter plays the platform."""

from __future__ import annotations

import io
import itertools
import os
import random
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from poster import cli, config, jobs, ledger, outbox, platforms, store
from poster.dispatch import Dispatcher, LookupThrottle, backoff
from poster.jobs import State
from poster.platforms.base import Adapter, Capabilities, Existence, Post, PostResult
from tests.conftest import artwork, run_cli


class ScriptedAdapter(Adapter):
    """Answers from `script` (a list the test holds too), records every post."""

    name = "scripted"
    capabilities = Capabilities(max_bytes=50_000_000, formats=("PNG",), images_per_post=4)
    settings_keys = frozenset()
    script: ClassVar[list[Any]] = []
    posted: ClassVar[list[str]] = []
    existence: ClassVar[Existence] = Existence.UNKNOWN
    lookup_error: ClassVar[Exception | None] = None
    lookups: ClassVar[list[str]] = []  # every find_existing call, by post key
    settle_seconds: ClassVar[float] = 60.0

    def post(self, post: Post) -> PostResult:
        answer = self.script.pop(0) if self.script else PostResult.posted("1", "https://example/1")
        if isinstance(answer, BaseException):
            raise answer
        if answer.status.value == "posted":
            self.posted.append(post.key)
        return answer

    def find_existing(self, post: Post) -> tuple[Existence, PostResult | None]:
        self.lookups.append(post.key)
        if self.lookup_error is not None:
            raise self.lookup_error
        if self.existence is Existence.EXISTS:
            return Existence.EXISTS, PostResult.posted("9", "https://example/found")
        return self.existence, None


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> config.Config:
    # the module as pytest imported it, so the class the test scripts is the one posting
    monkeypatch.setitem(platforms._REGISTRY, "scripted", f"{__name__}:ScriptedAdapter")
    monkeypatch.setattr(ScriptedAdapter, "script", [])
    monkeypatch.setattr(ScriptedAdapter, "posted", [])
    monkeypatch.setattr(ScriptedAdapter, "existence", Existence.UNKNOWN)
    monkeypatch.setattr(ScriptedAdapter, "lookup_error", None)
    monkeypatch.setattr(ScriptedAdapter, "lookups", [])
    path = cli.init_home(tmp_path / "home")
    head = path.read_text(encoding="utf-8").split("[targets.x]")[0]
    path.write_text(
        head + '[targets.s]\nadapter = "scripted"\npolicy = "light"\nmax_attempts = 3\n', encoding="utf-8"
    )
    c = config.load(path)
    buf = io.BytesIO()
    artwork((256, 256)).save(buf, "PNG")
    (c.outbox / "a.png").write_bytes(buf.getvalue())
    os.utime(c.outbox / "a.png", (time.time() - 3600,) * 2)
    return c


def one_job(conn: Any) -> jobs.Job:
    (job,) = jobs.all_jobs(conn)
    return job


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    rng = random.Random(1)
    for n in range(1, 8):
        d = backoff(n, rng).total_seconds() / 60
        assert 0.75 * 2 ** (n - 1) <= d <= 1.25 * 2 ** (n - 1)
    assert backoff(30, rng) <= timedelta(hours=6) * 1.25
    assert backoff(100, rng) <= timedelta(hours=6) * 1.25  # max_attempts allows 100: no overflow


def test_retryable_backs_off_honours_reset_and_gives_up(cfg: config.Config) -> None:
    reset = store.now() + timedelta(minutes=15)
    ScriptedAdapter.script += [
        PostResult.retryable("server busy (503)"),
        PostResult.retryable("rate limited (429)", retry_at=reset),
        PostResult.retryable("server busy (503)"),
    ]
    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        d = Dispatcher(cfg, conn)
        t0 = store.now()
        d.run_due(ignore_schedule=True)
        t1 = store.now() + timedelta(seconds=1)  # whole seconds; the run may take a while on a busy machine
        job = one_job(conn)
        assert job.state is State.RETRY_WAIT and job.reason == "server busy (503)"
        assert t0 + timedelta(seconds=44) <= job.scheduled_at <= t1 + timedelta(seconds=75)
        assert d.run_due(t0 + timedelta(seconds=20)) == []  # not before its time
        d.run_due(job.scheduled_at)
        job = one_job(conn)
        assert job.state is State.RETRY_WAIT and job.scheduled_at == reset  # the platform's word
        (out,) = d.run_due(reset)
        assert out.state is State.FAILED
        assert "gave up after 3 tries" in (out.reason or "") and "max_attempts" in (out.reason or "")
        assert ScriptedAdapter.posted == []


def test_uncertain_answer_is_never_failed_or_retried(cfg: config.Config) -> None:
    ScriptedAdapter.script.append(PostResult.uncertain("timed out after sending"))
    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        Dispatcher(cfg, conn).run_due(ignore_schedule=True)
        job = one_job(conn)
    assert job.state is State.UNCERTAIN
    code, _, err = run_cli("retry", str(job.id), cfg=cfg)
    assert code != 0 and "confirm" in err
    code, out, _ = run_cli("status", cfg=cfg)
    assert "may or may not have been posted" in out
    code, _, err = run_cli("confirm", str(job.id), "--posted", "https://example/42", cfg=cfg)
    assert code == 0, err
    with store.connect(cfg.db_path) as conn:
        assert one_job(conn).state is State.POSTED
        assert [r["url"] for r in ledger.rows(conn)] == ["https://example/42"]


def test_adapter_crash_makes_the_job_uncertain(cfg: config.Config) -> None:
    ScriptedAdapter.script.append(RuntimeError("socket closed"))
    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        (out,) = Dispatcher(cfg, conn).run_due(ignore_schedule=True)
    assert out.state is State.UNCERTAIN and "may or may not exist" in (out.reason or "")


def _interrupted(cfg: config.Config, conn: Any) -> tuple[Dispatcher, jobs.Job]:
    """A job caught `posting` by a crash, then recovered as `uncertain`."""
    outbox.scan(conn, cfg)
    d = Dispatcher(cfg, conn)
    job = one_job(conn)
    assert d.render_job(job) is None
    with store.transaction(conn):
        assert jobs.transition(conn, job.id, State.READY, State.POSTING)
    (u,) = jobs.recover(conn)
    assert u.state is State.UNCERTAIN
    return d, u


def test_absent_settles_only_after_the_request_can_no_longer_land(cfg: config.Config) -> None:
    ScriptedAdapter.existence = Existence.ABSENT
    with store.connect(cfg.db_path) as conn:
        d, job = _interrupted(cfg, conn)
        d.resolve_uncertain(store.now() + timedelta(seconds=10))  # still in flight, maybe
        assert one_job(conn).state is State.UNCERTAIN
        d.resolve_uncertain(store.now() + timedelta(seconds=61))
        assert one_job(conn).state is State.READY
        d.run_due(ignore_schedule=True)
        assert one_job(conn).state is State.POSTED
    assert ScriptedAdapter.posted == [job.post_key]


def test_exists_is_recorded_with_its_ledger_rows(cfg: config.Config) -> None:
    ScriptedAdapter.existence = Existence.EXISTS
    with store.connect(cfg.db_path) as conn:
        d, _ = _interrupted(cfg, conn)
        (out,) = d.resolve_uncertain()
        assert out.state is State.POSTED
        assert [r["url"] for r in ledger.rows(conn)] == ["https://example/found"]
    assert ScriptedAdapter.posted == []  # found, not posted again


def test_unknown_stays_uncertain_for_the_user(cfg: config.Config) -> None:
    with store.connect(cfg.db_path) as conn:
        d, _ = _interrupted(cfg, conn)
        assert d.resolve_uncertain(store.now() + timedelta(days=1)) == []
        assert one_job(conn).state is State.UNCERTAIN


def _lookup_times(d: Dispatcher, throttle: LookupThrottle | None, hours: float) -> list[int]:
    """Resolve every 10 s (as daemon ticks would) for `hours`; the seconds of each look-up."""
    t0 = store.now()
    times = []
    for s in range(0, int(hours * 3600), 10):
        before = len(ScriptedAdapter.lookups)
        d.resolve_uncertain(t0 + timedelta(seconds=s), throttle=throttle)
        times += [s] * (len(ScriptedAdapter.lookups) - before)
    return times


@pytest.mark.parametrize("answer", ["unknown", "error"])
def test_undecided_lookups_back_off_in_the_daemon(cfg: config.Config, answer: str) -> None:
    """An uncertain job the platform cannot settle (it cannot tell, or the look-up fails) is
    looked up again after 1, 2, 4 … minutes, at most every 30, not on every tick."""
    if answer == "error":
        ScriptedAdapter.lookup_error = ConnectionError("platform down")
    with store.connect(cfg.db_path) as conn:
        d, job = _interrupted(cfg, conn)
        times = _lookup_times(d, LookupThrottle(), hours=3)
        assert one_job(conn).state is State.UNCERTAIN
    gaps = [(b - a) // 60 for a, b in itertools.pairwise(times)]
    assert times[0] == 0
    assert gaps == [1, 2, 4, 8, 16, 30, 30, 30, 30]  # 3 hours
    assert set(ScriptedAdapter.lookups) == {job.post_key}


def test_without_a_throttle_every_call_looks_up(cfg: config.Config) -> None:
    """`poster run --once` asks about every uncertain job: the user asked for it now."""
    with store.connect(cfg.db_path) as conn:
        d, _ = _interrupted(cfg, conn)
        assert len(_lookup_times(d, None, hours=0.01)) == 4  # 0, 10, 20, 30 s


def test_not_found_is_asked_again_when_it_becomes_proof(
    cfg: config.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A "not found" while the interrupted request could still land settles nothing; the
    next look-up is when it can no longer land (45 s here, before the 1 minute backoff ends),
    and that one settles the job."""
    ScriptedAdapter.existence = Existence.ABSENT
    monkeypatch.setattr(ScriptedAdapter, "settle_seconds", 45.0)
    with store.connect(cfg.db_path) as conn:
        d, _ = _interrupted(cfg, conn)
        t0 = store.now()
        throttle = LookupThrottle()
        for s in range(0, 120, 5):
            d.resolve_uncertain(t0 + timedelta(seconds=s), throttle=throttle)
        assert one_job(conn).state is State.READY
    assert len(ScriptedAdapter.lookups) == 2


def test_daemon_does_not_look_up_an_undecided_job_on_every_tick(tmp_path: Path) -> None:
    """A real `poster run` ticking every second, an interrupted post, and a platform whose
    look-up answers 503 (so it cannot tell): one look-up, not one per tick. Each marker file
    is taken by a later tick, which proves the daemon went on ticking meanwhile."""
    import signal

    from tests.servers.slow import SlowServer, _daemon, _png, home_with_slow_target

    with SlowServer() as server:
        server.fail("GET", "/posts", 503, times=1000)
        cfg_path = home_with_slow_target(tmp_path / "home", server.url, timeout=5)
        c = config.load(cfg_path)
        with store.connect(c.db_path) as conn:
            _, job = _interrupted(c, conn)
        proc = _daemon(cfg_path, tmp_path / "daemon.log")

        def wait_for(done: Any) -> None:
            deadline = time.monotonic() + 60
            while not done():
                assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
                assert time.monotonic() < deadline, "the daemon did not get there in 60 s"
                time.sleep(0.05)

        try:
            wait_for(lambda: server.calls("GET", "/posts"))
            for i in range(3):
                # planned for 2099, so the markers are taken in but never posted
                (c.outbox / f"m{i}.toml").write_text('at = "2099-01-01T00:00:00+00:00"\n', encoding="utf-8")
                (c.outbox / f".m{i}.part").write_bytes(_png(10 + i))
                os.replace(c.outbox / f".m{i}.part", c.outbox / f"m{i}.png")
                wait_for(lambda i=i: not (c.outbox / f"m{i}.png").exists())
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        assert len(server.calls("GET", "/posts")) == 1
        assert server.posts == []
    with store.connect(c.db_path) as conn:
        assert jobs.get(conn, job.id).state is State.UNCERTAIN


def test_ledger_row_and_posted_state_commit_together(
    cfg: config.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_append(*a: Any, **k: Any) -> None:
        raise OSError("disk full")

    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        monkeypatch.setattr(ledger, "append", broken_append)
        with pytest.raises(OSError):
            Dispatcher(cfg, conn).run_due(ignore_schedule=True)
        # neither happened: the job is still `posting` (→ uncertain at the next start)
        assert one_job(conn).state is State.POSTING
        assert ledger.rows(conn) == []


def test_record_posted_writes_nothing_for_a_job_that_moved_on(cfg: config.Config) -> None:
    with store.connect(cfg.db_path) as conn:
        d, job = _interrupted(cfg, conn)
        with store.transaction(conn):
            jobs.transition(conn, job.id, State.UNCERTAIN, State.CANCELLED)
        out = d.record_posted(job, PostResult.posted("1", "https://example/1"), State.UNCERTAIN)
        assert out.state is State.CANCELLED
        assert ledger.rows(conn) == []


def test_status_json_and_cancel(cfg: config.Config) -> None:
    code, _, err = run_cli("run", "--once", cfg=cfg)
    assert code == 0, err
    code, out, _ = run_cli("status", "--json", cfg=cfg)
    import json

    (item,) = json.loads(out)
    assert {"target", "state", "file", "scheduled_at", "reason"} <= set(item)
    assert item["state"] == "posted"  # min interval: the first post of a target goes at once
    code, _, err = run_cli("cancel", str(item["id"]), cfg=cfg)
    assert code != 0 and "cannot be cancelled" in err


def test_target_removed_from_config_fails_instead_of_uncertain(cfg: config.Config) -> None:
    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        d = Dispatcher(cfg, conn)
        assert d.render_job(one_job(conn)) is None
        text = cfg.path.read_text(encoding="utf-8").replace("[targets.s]", "[targets.other]")
        cfg.path.write_text(text, encoding="utf-8")
        (out,) = Dispatcher(config.load(cfg.path), conn).run_due(ignore_schedule=True)
    assert out.state is State.FAILED and "no longer in" in (out.reason or "")
    assert ScriptedAdapter.posted == []


def test_link_back_carries_the_pixiv_url_to_x(tmp_path, monkeypatch):
    """pixiv first, X an hour later with `link_back = true`: the tweet links the pixiv post."""
    import json as _json
    import os as _os
    import time as _time

    from poster import config as config_mod
    from poster.platforms.pixiv import PixivAdapter
    from tests.conftest import artwork as make_art
    from tests.conftest import run_cli
    from tests.servers import x as x_srv
    from tests.servers.pixiv import SESSION, PixivServer

    monkeypatch.setattr(PixivAdapter, "progress_poll_interval", 0.0)
    with x_srv.XServer() as xs, PixivServer() as px:
        for field, value in x_srv.CREDS.items():
            monkeypatch.setenv(f"POSTER_X_{field}", value)
        monkeypatch.setenv("POSTER_PIXIV_SESSION", SESSION)
        home = tmp_path / "home"
        (home / "queue" / "outbox").mkdir(parents=True)
        (home / "config.toml").write_text(
            f'data_dir = "queue"\n[targets.pixiv]\nadapter = "pixiv"\napi_base = "{px.url}"\n'
            f'[targets.x]\nadapter = "x"\npolicy = "heavy"\napi_base = "{xs.url}"\n'
            'username = "artist"\nlink_back = true\ndelay_minutes = 60\n',
            encoding="utf-8",
        )
        cfg = config_mod.load(home / "config.toml")
        make_art((700, 500), seed=21).save(cfg.outbox / "owl.png")
        (cfg.outbox / "owl.toml").write_text('caption = "An owl"\nai_generated = false\n', encoding="utf-8")
        for p in cfg.outbox.iterdir():
            _os.utime(p, (_time.time() - 3600,) * 2)
        code, out, err = run_cli("run", "--once", "--now", cfg=cfg)
        assert code == 0, err + out
        (work,) = px.works.values()
        (tweet,) = xs.tweets.values()
        pixiv_url = next(
            r["url"] for r in _json.loads(run_cli("ledger", "export", cfg=cfg)[1]) if r["target"] == "pixiv"
        )
        assert pixiv_url.endswith(str(work["id"])) and pixiv_url in tweet["text"]
