"""Scheduling: slot syntax, planning into free slots, staggering, pacing of late jobs and the
daemon's clock. Times are injected (`at`, `earliest`) rather than slept for."""

from __future__ import annotations

import io
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from poster import cli, config, jobs, outbox, schedule, store
from poster.dispatch import Dispatcher
from poster.errors import ConfigError
from tests.conftest import artwork, run_cli

TOKYO = ZoneInfo("Asia/Tokyo")


def make_home(tmp_path: Path, targets: str, *, tz: str = "Asia/Tokyo") -> config.Config:
    cfg_path = cli.init_home(tmp_path / "home")
    text = cfg_path.read_text(encoding="utf-8")
    head = text.split("[targets.x]")[0].replace('timezone = ""', f'timezone = "{tz}"')
    tail = '[policies.bare]\nformat = "png"\n[proof]\ntsa_urls = []\n'
    cfg_path.write_text(head + targets + "\n" + tail, encoding="utf-8")
    return config.load(cfg_path)


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    artwork((256, 256), seed=seed).save(buf, "PNG")
    return buf.getvalue()


def drop(cfg: config.Config, name: str, seed: int, sidecar: str | None = None) -> None:
    (cfg.outbox / name).write_bytes(png(seed))
    if sidecar:
        (cfg.outbox / name).with_suffix(".toml").write_text(sidecar, encoding="utf-8")
    for p in cfg.outbox.iterdir():  # old enough to count as stable at once
        old = time.time() - 3600
        os.utime(p, (old, old))


# -- slot syntax -------------------------------------------------------------------------------
def test_parse_slot_forms() -> None:
    assert schedule.parse_slot("mon-fri 19:00,21:00") == schedule.Slot("mon-fri", ((19, 0), (21, 0)))
    assert schedule.parse_slot("Sat,Sun 10:00") == schedule.Slot("sat,sun", ((10, 0),))
    assert schedule.parse_slot("12:30") == schedule.Slot("*", ((12, 30),))
    assert schedule.parse_slot("daily 7:05") == schedule.Slot("*", ((7, 5),))
    assert schedule.parse_slot("weekdays 19:00").day_of_week == "mon-fri"


@pytest.mark.parametrize(
    "bad", ["", "funday 19:00", "mon-fri 25:00", "mon 19", "mon tue 19:00", "mon-fri-sat 1:00"]
)
def test_parse_slot_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        schedule.parse_slot(bad)


def test_bad_slot_in_config_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"targets\.x\.slots.*funday"):
        make_home(tmp_path, '[targets.x]\nadapter = "local"\nslots = ["funday 19:00"]\n')


def test_slot_times_in_zone_across_days() -> None:
    start = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)  # Fri 20:00 in Tokyo
    got = islice(schedule.slot_times(("mon-fri 19:00,21:00", "sat 10:00"), TOKYO, start), 4)
    local = [t.astimezone(TOKYO).strftime("%a %H:%M") for t in got]
    assert local == ["Fri 21:00", "Sat 10:00", "Mon 19:00", "Mon 21:00"]


def test_slot_times_follow_dst() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # DST ends 2026-10-25
    start = datetime(2026, 10, 24, 0, 0, tzinfo=UTC)
    a, b = islice(schedule.slot_times(("19:00",), berlin, start), 2)
    assert a.astimezone(berlin).hour == b.astimezone(berlin).hour == 19
    assert b - a == timedelta(hours=25)


# -- planning ----------------------------------------------------------------------------------
def tc(**kw: object) -> config.TargetConfig:
    return config.TargetConfig(adapter="local", **kw)


def test_next_free_takes_the_next_unused_slot() -> None:
    t = tc(slots=("mon-fri 19:00,21:00",), min_interval_minutes=0)
    start = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # Mon 10:00 Tokyo
    first = schedule.next_free(t, TOKYO, [], start)
    second = schedule.next_free(t, TOKYO, [first], start)
    third = schedule.next_free(t, TOKYO, [first, second], start)
    assert [x.astimezone(TOKYO).strftime("%a %H:%M") for x in (first, second, third)] == [
        "Mon 19:00",
        "Mon 21:00",
        "Tue 19:00",
    ]


def plan_four(t: config.TargetConfig, start: datetime) -> list[datetime]:
    """Four jobs planned one after another from ``start``, each seeing the ones before."""
    taken: list[datetime] = []
    for _ in range(4):
        taken.append(schedule.next_free(t, TOKYO, taken, start))
    return taken


def test_next_free_daily_cap_counts_any_24_hours() -> None:
    """Not the calendar day: after 22:00 and 22:30 the third job waits until 22:00 the next
    day, when the first leaves the 24 hours (as pacing counts them), not until midnight."""
    t = tc(min_interval_minutes=30, daily_cap=2)
    start = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)  # 22:00 Tokyo
    local = [x.astimezone(TOKYO).strftime("%d %H:%M") for x in plan_four(t, start)]
    assert local == ["23 22:00", "23 22:30", "24 22:00", "24 22:30"]


def test_next_free_daily_cap_skips_slots_inside_the_24_hours() -> None:
    """Posts at 18:00 and 21:00 with a cap of 2: the 09:00 slot the next day is within 24
    hours of both, so the next job takes 18:00 (09:00 would only be held back by pacing)."""
    t = tc(slots=("daily 09:00,18:00,21:00",), min_interval_minutes=0, daily_cap=2)
    start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # Mon 17:00 Tokyo
    local = [x.astimezone(TOKYO).strftime("%a %H:%M") for x in plan_four(t, start)]
    assert local == ["Mon 18:00", "Mon 21:00", "Tue 18:00", "Tue 21:00"]


def test_next_free_daily_cap_respects_jobs_planned_later() -> None:
    """Jobs planned later count too: with two at 10:00 and 11:00 tomorrow, a job at noon
    today would be the third in the 24 hours up to 11:00 tomorrow, and any time after those
    two is within 24 hours of both until 10:00 the day after."""
    t = tc(min_interval_minutes=0, daily_cap=2)
    start = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # Mon 12:00 Tokyo
    later = [start + timedelta(hours=22), start + timedelta(hours=23)]  # Tue 10:00, 11:00
    got = schedule.next_free(t, TOKYO, later, start)
    assert got.astimezone(TOKYO).strftime("%a %H:%M") == "Wed 10:00"
    # one job planned later leaves room: the cap is not full anywhere
    assert schedule.next_free(t, TOKYO, later[:1], start) == start


def test_next_free_keeps_interval_both_ways() -> None:
    t = tc(min_interval_minutes=60)
    start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    taken = [start + timedelta(minutes=30)]  # a job planned just after
    assert schedule.next_free(t, TOKYO, taken, start) == start + timedelta(minutes=90)


def test_intake_plans_slots_and_staggers_cross_posts(tmp_path: Path) -> None:
    cfg = make_home(
        tmp_path,
        '[targets.x]\nadapter = "local"\npolicy = "bare"\ndelay_minutes = 60\nslots = []\n'
        '[targets.pixiv]\nadapter = "local"\npolicy = "bare"\nslots = ["mon-fri 19:00"]\n',
    )
    drop(cfg, "a.png", 1)
    drop(cfg, "b.png", 2)
    with store.connect(cfg.db_path) as conn:
        results = outbox.scan(conn, cfg)
        assert [r.outcome for r in results] == ["queued", "queued"]
        by = {(j.name, j.target): j.scheduled_at.astimezone(TOKYO) for j in jobs.all_jobs(conn)}
    # pixiv takes consecutive free slots; X follows each pixiv post an hour later
    assert by[("a.png", "pixiv")].hour == 19
    assert by[("b.png", "pixiv")] - by[("a.png", "pixiv")] >= timedelta(days=1)
    assert by[("a.png", "x")] == by[("a.png", "pixiv")] + timedelta(hours=1)
    assert by[("b.png", "x")] == by[("b.png", "pixiv")] + timedelta(hours=1)


def test_sidecar_at_wins_over_slots(tmp_path: Path) -> None:
    cfg = make_home(tmp_path, '[targets.pixiv]\nadapter = "local"\npolicy = "bare"\nslots = ["mon 19:00"]\n')
    drop(cfg, "a.png", 1, 'at = "2026-12-24T08:15:00+09:00"\n')
    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        (job,) = jobs.all_jobs(conn)
    assert job.scheduled_at == datetime(2026, 12, 24, 8, 15, tzinfo=TOKYO)


# -- pacing at dispatch ------------------------------------------------------------------------
def test_late_jobs_go_out_paced_in_order(tmp_path: Path) -> None:
    """The laptop slept through three slots: on wake one post goes out, the others are moved
    one interval apart (in order), and each goes out when its new time comes."""
    cfg = make_home(tmp_path, '[targets.x]\nadapter = "local"\npolicy = "bare"\nmin_interval_minutes = 10\n')
    for i in range(3):
        drop(cfg, f"{i}.png", i)
    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        past = store.now() - timedelta(hours=5)
        conn.execute("UPDATE jobs SET scheduled_at = ?", (store.iso(past),))  # all late
        d = Dispatcher(cfg, conn)
        wake = store.now()
        out = d.run_due(wake)
        assert [o.state for o in out] == [jobs.State.POSTED]
        waiting = [j for j in jobs.all_jobs(conn) if j.state is jobs.State.PENDING]
        assert [j.name for j in waiting] == ["1.png", "2.png"]
        gaps = [(j.scheduled_at - wake).total_seconds() / 60 for j in waiting]
        assert 9 <= gaps[0] <= 11 and 19 <= gaps[1] <= 21
        assert all("paced" in (j.reason or "") for j in waiting)
        assert d.next_due() == waiting[0].scheduled_at
        # nothing goes out early; at its time the next one does
        assert d.run_due(wake + timedelta(minutes=5)) == []
        out = d.run_due(waiting[0].scheduled_at)
        assert [(o.name, o.state) for o in out] == [("1.png", jobs.State.POSTED)]


def test_daily_cap_holds_until_the_window_frees(tmp_path: Path) -> None:
    cfg = make_home(
        tmp_path,
        '[targets.x]\nadapter = "local"\npolicy = "bare"\nmin_interval_minutes = 0\ndaily_cap = 2\n',
    )
    for i in range(3):
        drop(cfg, f"{i}.png", i)
    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        conn.execute("UPDATE jobs SET scheduled_at = ?", (store.iso(store.now() - timedelta(minutes=1)),))
        d = Dispatcher(cfg, conn)
        out = d.run_due()
        assert [o.state for o in out] == [jobs.State.POSTED, jobs.State.POSTED]
        (held,) = [j for j in jobs.all_jobs(conn) if j.state is jobs.State.PENDING]
        assert "daily cap" in (held.reason or "")
        assert held.scheduled_at >= store.now() + timedelta(hours=23, minutes=58)


def test_planned_jobs_are_never_held_back_by_the_daily_cap(tmp_path: Path) -> None:
    """Planning and pacing count `daily_cap` the same way: every job posted at the time
    intake planned for it finds the cap free (no slot planned only to be postponed). The
    zone is picked so that intake happens around noon there: then the first two jobs take
    18:00 and 21:00, and a plan by calendar day would give the third 09:00 the next day."""
    offset = 12 - store.now().hour  # hours east of UTC that make it about 12:00 local
    cfg = make_home(
        tmp_path,
        '[targets.x]\nadapter = "local"\npolicy = "bare"\nmin_interval_minutes = 0\ndaily_cap = 2\n'
        'slots = ["daily 09:00,18:00,21:00"]\n',
        tz=f"Etc/GMT{-offset:+d}",  # POSIX sign: Etc/GMT-3 is three hours east of UTC
    )
    local = ZoneInfo(cfg.timezone or "")
    assert 12 <= store.now().astimezone(local).hour < 18
    for i in range(7):
        drop(cfg, f"{i}.png", i)
    tc_x = cfg.targets["x"]
    with store.connect(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        planned = jobs.all_jobs(conn)
        assert len(planned) == 7
        for job in planned:  # post each at its planned time, as the daemon would
            assert schedule.pacing_delay(conn, tc_x, "x", job.scheduled_at) is None, (
                job.name,
                job.scheduled_at.astimezone(local),
            )
            with store.transaction(conn):
                conn.execute("UPDATE jobs SET state = 'posted' WHERE id = ?", (job.id,))
                conn.execute(
                    "INSERT INTO events (job_id, at, state) VALUES (?, ?, 'posted')",
                    (job.id, store.iso(job.scheduled_at)),
                )
        times = [j.scheduled_at for j in planned]
        assert all(b - a >= timedelta(hours=24) for a, b in zip(times, times[2:], strict=False))


def test_run_once_now_ignores_pacing(tmp_path: Path) -> None:
    cfg = make_home(tmp_path, '[targets.x]\nadapter = "local"\npolicy = "bare"\nmin_interval_minutes = 60\n')
    for i in range(2):
        drop(cfg, f"{i}.png", i)
    code, out, err = run_cli("run", "--once", "--now", cfg=cfg)
    assert code == 0, err
    assert sum(line.startswith("posted") for line in out.splitlines()) == 2
    code, out, _ = run_cli("status", cfg=cfg)
    assert code == 0 and "SCHEDULED" in out


def test_run_now_never_posts_before_the_release_date_the_sidecar_sets(tmp_path: Path) -> None:
    """CONTRACT: `--now` ignores slots and pacing, never the time the artist wrote (`at`, a
    release date). `poster release JOB` is the explicit way to post such a job earlier."""
    cfg = make_home(
        tmp_path,
        '[targets.x]\nadapter = "local"\npolicy = "bare"\nslots = ["mon 09:00"]\n'
        '[targets.pixiv]\nadapter = "local"\npolicy = "bare"\ndelay_minutes = 60\n',
    )
    drop(cfg, "soon.png", 1)
    drop(cfg, "release.png", 2, 'at = "2099-01-01T19:00:00+09:00"\n')
    code, out, err = run_cli("run", "--once", "--now", cfg=cfg)
    assert code == 0, err

    def states() -> dict[tuple[str, str], jobs.State]:
        with store.connect(cfg.db_path) as conn:
            return {(j.name, j.target): j.state for j in jobs.all_jobs(conn)}

    assert states() == {
        ("soon.png", "x"): jobs.State.POSTED,  # its slot ignored
        ("soon.png", "pixiv"): jobs.State.POSTED,  # its delay ignored
        ("release.png", "x"): jobs.State.PENDING,
        ("release.png", "pixiv"): jobs.State.PENDING,
    }
    with store.connect(cfg.db_path) as conn:
        waiting = {j.target: j for j in jobs.all_jobs(conn) if j.name == "release.png"}
    assert store.iso(waiting["x"].scheduled_at) == "2099-01-01T10:00:00+00:00"
    line = f"waiting  job {waiting['x'].id} release.png → x: release date 2099-01-01 19:00 (sidecar `at`)"
    assert line in out and f"`poster release {waiting['x'].id}` posts it earlier" in out

    # "try again" keeps the release date; only `release` posts earlier
    assert run_cli("cancel", str(waiting["pixiv"].id), cfg=cfg)[0] == 0
    code, out, err = run_cli("retry", str(waiting["pixiv"].id), cfg=cfg)
    assert code == 0 and "release date 2099-01-01T19:00:00+09:00" in out, err
    code, out, err = run_cli("release", str(waiting["x"].id), cfg=cfg)
    assert code == 0 and "released: it goes out at the next run instead of 2099-01-01 19:00" in out, err
    code, out, err = run_cli("run", "--once", "--now", cfg=cfg)
    assert code == 0, err
    assert states()[("release.png", "x")] is jobs.State.POSTED
    assert states()[("release.png", "pixiv")] is jobs.State.PENDING

    code, _out, err = run_cli("release", str(waiting["x"].id), cfg=cfg)  # posted: nothing to release
    assert code != 0 and "only a pending or ready job can be released" in err


def test_release_is_in_the_help_of_run_now() -> None:
    code, out, _err = run_cli("run", "--help")
    assert code == 0 and "release date" in out and "poster release" in out
    code, out, _err = run_cli("release", "--help")
    assert code == 0 and "run --once --now" in out


# -- the daemon's clock ------------------------------------------------------------------------
def test_daemon_wakes_for_the_next_due_job_and_stops(tmp_path: Path) -> None:
    """The tick asks to run again in 0.3 s although the scan interval is 30 s: the daemon
    must wake for it. A set stop event ends the loop."""
    cfg = make_home(tmp_path, '[targets.x]\nadapter = "local"\n')
    cfg = cfg.model_copy(update={"intake": cfg.intake.model_copy(update={"scan_interval": 30.0})})
    calls: list[float] = []
    stop = threading.Event()

    def tick(_stop: threading.Event) -> datetime | None:
        calls.append(time.monotonic())
        if len(calls) >= 3:
            stop.set()
        return datetime.now().astimezone() + timedelta(seconds=0.3)

    t = threading.Thread(
        target=schedule.run_daemon, args=(cfg, tick), kwargs={"install_signals": False, "stop": stop}
    )
    t.start()
    t.join(timeout=15)
    assert not t.is_alive()
    assert len(calls) >= 3
    assert calls[2] - calls[0] < 10  # woke for the due job, not after the 30 s scan interval


def test_daemon_checks_the_queue_at_once_when_the_clock_jumps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """APScheduler keeps wall-clock fire times: after the clock is set back an hour the next
    scan would come an hour late. The watchdog sees wall and monotonic clocks disagree and
    runs the tick at once."""
    cfg = make_home(tmp_path, '[targets.x]\nadapter = "local"\n')
    cfg = cfg.model_copy(update={"intake": cfg.intake.model_copy(update={"scan_interval": 30.0})})
    offset = [0.0]

    class Clock:  # the daemon's view of `time`: wall clock with a settable jump
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def time() -> float:
            return time.time() + offset[0]

    monkeypatch.setattr(schedule, "time", Clock)
    calls: list[float] = []
    stop = threading.Event()

    def tick(_stop: threading.Event) -> datetime | None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            offset[0] = -3600.0  # someone set the clock back an hour
        else:
            stop.set()
        return None  # nothing due: next scan in 30 s

    t = threading.Thread(
        target=schedule.run_daemon, args=(cfg, tick), kwargs={"install_signals": False, "stop": stop}
    )
    t.start()
    t.join(timeout=20)
    assert not t.is_alive() and len(calls) == 2
    assert calls[1] - calls[0] < 10  # not after the 30 s interval


# -- many artworks in one scan: the planner --------------------------------------------------------
@pytest.mark.parametrize(
    "rules",
    [
        "min_interval_minutes = 5.0\ndaily_cap = 17\n",
        'slots = ["mon-fri 19:00,21:00", "sat,sun 10:00"]\nmin_interval_minutes = 0\ndaily_cap = 3\n',
        "min_interval_minutes = 0\n",
    ],
)
def test_a_batch_places_each_job_where_next_free_would(tmp_path: Path, rules: str) -> None:
    """40 artworks taken in one scan (one transaction, one Planner) get, job by job, the very
    time next_free gives against the jobs placed before it: the planner's shortcut skips
    no free time and breaks no rule."""
    cfg = make_home(tmp_path, f'[targets.x]\nadapter = "local"\npolicy = "bare"\n{rules}')
    for i in range(40):
        drop(cfg, f"a{i:02d}.png", seed=i)
    with store.opened(cfg.db_path) as conn:
        assert [r.outcome for r in outbox.scan(conn, cfg)] == ["queued"] * 40
        rows = conn.execute("SELECT scheduled_at, created_at FROM jobs ORDER BY id").fetchall()
    tc = cfg.targets["x"]
    placed: list[datetime] = []
    for when, created in rows:
        expected = schedule.next_free(tc, TOKYO, placed, datetime.fromisoformat(created))
        assert datetime.fromisoformat(when) == expected
        placed.append(expected)
    assert len(set(placed)) == 40


def test_the_planner_does_not_walk_the_queue_for_each_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Job k of a batch used to step past the k jobs before it, and give up past _PLAN_LIMIT
    steps (the job then went out "as soon as pacing allows", on top of the others). The
    planner goes on from the last job's time: with a limit far below the queue's length,
    every job still gets its own hour."""
    monkeypatch.setattr(schedule, "_PLAN_LIMIT", 4)
    cfg = make_home(tmp_path, '[targets.x]\nadapter = "local"\npolicy = "bare"\nmin_interval_minutes = 60\n')
    for i in range(20):
        drop(cfg, f"a{i:02d}.png", seed=i)
    with store.opened(cfg.db_path) as conn:
        outbox.scan(conn, cfg)
        rows = conn.execute("SELECT scheduled_at FROM jobs ORDER BY scheduled_at").fetchall()
    times = [datetime.fromisoformat(r[0]) for r in rows]
    assert len(times) == 20
    assert all(b - a >= timedelta(minutes=60) for a, b in pairwise(times))


def test_the_planner_reads_the_queue_again_only_when_another_connection_changed_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch of a scan used to read every queued job's time again (a large drop was
    quadratic); the times are read again only after another process committed."""
    cfg = make_home(tmp_path, '[targets.x]\nadapter = "local"\npolicy = "bare"\nmin_interval_minutes = 60\n')
    reads: list[str] = []
    real = schedule._taken

    def counted(conn: object, target: str) -> list[datetime]:
        reads.append(target)
        return real(conn, target)  # type: ignore[arg-type]

    monkeypatch.setattr(schedule, "_taken", counted)
    created = datetime.now(UTC)
    with store.opened(cfg.db_path) as conn, store.opened(cfg.db_path) as other:
        planner = schedule.Planner(cfg, conn)
        placed = []
        for _batch in range(3):
            with store.transaction(conn):
                planner.refresh(if_changed=True)
                placed.append(planner.initial_time("x", None, created, 0))
        assert len(reads) == 1  # this connection's own commits: its times are the ones held
        assert all(b - a >= timedelta(minutes=60) for a, b in pairwise(placed))
        drop(cfg, "b.png", seed=1)
        assert [r.outcome for r in outbox.scan(other, cfg)] == ["queued"]  # another writer
        before = len(reads)
        with store.transaction(conn):
            planner.refresh(if_changed=True)
            planner.initial_time("x", None, created, 0)
        assert len(reads) == before + 1
        with store.transaction(conn):
            planner.refresh()  # after a rollback: always
            planner.initial_time("x", None, created, 0)
        assert len(reads) == before + 2
