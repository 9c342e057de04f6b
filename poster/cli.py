"""Commands only: parse, call, print. Logic lives in the modules the commands call."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import sys
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from poster import __version__, clicktext, i18n, jobs, ledger, markkey, store
from poster.errors import UserError
from poster.i18n import N_, _
from poster.logs import mask_text, setup_logging
from poster.notices import Notices
from poster.termsafe import json_text, safe, safe_block

if TYPE_CHECKING:
    # pydantic (behind poster.config) is imported by the commands that load a config, not by
    # `poster --help`; the heavy libraries (PIL, numpy, OpenCV, rich …) by the commands that
    # use them: tests/test_cli.py checks which modules `--help` and `status` import
    from poster import config as config_mod
    from poster.configsnap import Essentials

log = logging.getLogger("poster")


@dataclass
class Ctx:
    config_path: Path | None
    verbose: int
    debug: bool
    loaded: config_mod.Config | Essentials | None = None  # what the command runs with, once loaded

    def config(self) -> config_mod.Config:
        from poster import config as config_mod

        cfg = config_mod.load(config_mod.find(self.config_path))
        setup_logging(self.verbose, self.debug, cfg.data_dir)
        self.loaded = cfg
        if cfg.language:  # config `language` wins over LANG from here on
            i18n.set_language(cfg.language)
        return cfg

    def essentials(self) -> Essentials:
        """What a read-only look at the queue needs: from the snapshot of the config's last
        full check when the file is unchanged (no pydantic to import), else from a full load."""
        from poster import configfile, configsnap

        quick = configsnap.recall(configfile.find(self.config_path))
        if quick is None:
            return configsnap.Essentials.of(self.config())
        setup_logging(self.verbose, self.debug, quick.data_dir)
        self.loaded = quick  # a storage error names the data folder, as after a full load
        if quick.language:
            i18n.set_language(quick.language)
        return quick


def emit_json(value: Any) -> None:
    # exact values; only characters a terminal would act on are written as \u escapes
    click.echo(json_text(json.dumps(value, ensure_ascii=False, indent=2, default=str)))


def emit_json_array(items: Iterable[Any]) -> None:
    """A JSON array written element by element, as it is read: the same text as
    `emit_json(list(items))` without ever holding the list (a million ledger rows or jobs
    print in flat memory)."""
    first = True
    with _Echo() as out:
        for item in items:
            text = json.dumps(item, ensure_ascii=False, indent=2, default=str).replace("\n", "\n  ")
            out.write(json_text(("[\n  " if first else ",\n  ") + text))
            first = False
        out.write("[]\n" if first else "\n]\n")


class _Echo:
    """A text file whose writes go to stdout through click in pieces of about 256 KB (for
    csv.writer and `emit_json_array`): a million rows cost a few thousand writes instead of
    a million writes and flushes, in memory that does not grow. `flush` writes the rest; as a
    context manager it flushes on the way out, also when reading stopped with an error (what
    was read is printed)."""

    PIECE = 256 * 1024

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0

    def write(self, text: str) -> int:
        self._parts.append(text)
        self._size += len(text)
        if self._size >= self.PIECE:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self._parts:
            click.echo("".join(self._parts), nl=False)
            self._parts.clear()
            self._size = 0

    def __enter__(self) -> _Echo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


def _until_damaged(items: Iterator[Any], errors: list[str]) -> Iterator[Any]:
    """`items`, stopping at a read error of a damaged database (kept in `errors`): what could
    be read is printed, then the error."""
    try:
        yield from items
    except sqlite3.DatabaseError as exc:
        errors.append(str(exc))


def say(text: object = "", *, err: bool = False) -> None:
    """One line of human output. Everything printed goes through here: text from outside in
    it (file names, sidecar text, reasons and URLs from servers) is shown with control
    characters escaped (poster.termsafe), so it cannot forge a line or drive the terminal."""
    click.echo(mask_text(safe(text)), err=err)


@contextmanager
def open_db(
    cfg: config_mod.Config | Essentials, *, readonly: bool = False, check: str | None = None
) -> Iterator[sqlite3.Connection]:
    """The database for one command. `readonly` for commands that only read (they then work
    on a read-only or full disk); `check` ("quick"/"full") runs SQLite's integrity check."""
    with store.opened(cfg.db_path, readonly=readonly, check=check) as conn:
        yield conn


class _UserFailure(click.ClickException):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        say(_("poster: error: {message}").format(message=self.message), err=True)


# poster's own help heading (click's words are in poster.clicktext)
_HEADINGS = (N_("Arguments"),)


@contextmanager
def _translated(items: Iterable[Any]) -> Iterator[None]:
    """Help texts are English msgids (marked with N_()), translated here while click renders
    them, so the language chosen at run time (LANG, or the config's `language`) applies. Not
    translated when defined: at import the language is not known yet, and click turns an
    option's help into a plain str (inspect.cleandoc) as soon as the option is made."""
    saved = [(o, o.help) for o in items if isinstance(getattr(o, "help", None), str) and o.help]
    for o, text in saved:
        o.help = _(text)
    try:
        yield
    finally:
        for o, text in saved:
            o.help = text


class _Formatter(click.HelpFormatter):
    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        super().write_usage(prog, args, f"{_('Usage:')} " if prefix is None else prefix)

    def write_heading(self, heading: str) -> None:
        super().write_heading(_(heading))


class _Context(click.Context):
    formatter_class = _Formatter


class _TranslatedHelp:
    """For click commands and groups: their help and their options' help in the current
    language."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with _translated([self]):
            super().format_help_text(ctx, formatter)  # type: ignore[misc]

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with _translated(self.get_params(ctx)):  # type: ignore[attr-defined]
            super().format_options(ctx, formatter)  # type: ignore[misc]

    def get_short_help_str(self, limit: int = 45) -> str:
        with _translated([self]):
            first = (self.help or "").partition("\n\n")[0]  # type: ignore[attr-defined]
            if "。" in first:  # click ends a first sentence only at ". "; Japanese ends it at 。
                self.help = first.partition("。")[0] + "。"  # type: ignore[attr-defined]
            return super().get_short_help_str(limit)  # type: ignore[misc]


class _Command(_TranslatedHelp, click.Command):
    context_class = _Context


class _Group(_TranslatedHelp, click.Group):
    """Turns the one user-error type into a one-line message and exit code."""

    context_class = _Context
    command_class = _Command
    group_class = type  # a sub-group (`ledger`) is a _Group too

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            raise _UserFailure(str(exc), exc.exit_code) from None
        except (sqlite3.Error, OSError) as exc:
            # a full disk, a read-only folder, a damaged database: say which, in one line
            loaded = ctx.obj.loaded if isinstance(ctx.obj, Ctx) else None
            found = store.storage_error(exc, loaded.data_dir) if loaded is not None else None
            if found is None:
                raise
            log.debug("storage error:\n%s", traceback.format_exc())
            raise _UserFailure(str(found), found.exit_code) from None


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    help=N_("Post art with per-platform protection and a traceable hidden ID."),
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help=N_("config file (default: ./config.toml, then the user config dir)"),
)
@click.option("-v", "--verbose", count=True, help=N_("more log output (-vv for debug)"))
@click.option("--debug", is_flag=True, help=N_("log tracebacks (to the log file and stderr)"))
@click.version_option(__version__, prog_name="poster")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, verbose: int, debug: bool) -> None:
    ctx.obj = Ctx(config_path, verbose, debug)


# -- init / demo ---------------------------------------------------------------------------
def init_home(directory: Path) -> Path:
    from poster import config as config_mod

    cfg_path = directory / config_mod.CONFIG_NAME
    if cfg_path.exists():
        raise UserError(_("{path} already exists; not overwriting it").format(path=cfg_path))
    directory.mkdir(parents=True, exist_ok=True)
    from importlib import resources

    template = resources.files("poster").joinpath("data/config.example.toml").read_text(encoding="utf-8")
    cfg_path.write_text(template, encoding="utf-8")
    cfg = config_mod.load(cfg_path)
    for sub in ("outbox", "archive", "variants", "posted"):
        store.ensure_private_dir(cfg.data_dir / sub)
    markkey.load(cfg.data_dir, create=True)
    store.connect(cfg.db_path).close()
    return cfg_path


@cli.command(help=N_("Create DIR/config.toml and the data folder DIR/queue/ with outbox/."))
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
def init(directory: Path) -> None:
    cfg_path = init_home(directory)
    say(_("created {path}").format(path=cfg_path))
    say(
        _("drop art into {outbox}, then: poster --config {path} run --once --now").format(
            outbox=directory / "queue" / "outbox", path=cfg_path
        )
    )


@cli.command(
    help=N_(
        "Set up DIR (default ./poster-demo) with a sample artwork, post it everywhere "
        "through the local adapter, and trace one published copy back to its post."
    )
)
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False), default="poster-demo")
@click.pass_obj
def demo(obj: Ctx, directory: Path) -> None:
    from poster import config as config_mod
    from poster import trace as trace_mod

    cfg_path = directory / config_mod.CONFIG_NAME
    if not cfg_path.exists():
        init_home(directory)
    obj.config_path = cfg_path
    cfg = obj.config()
    from importlib import resources

    sample = resources.files("poster").joinpath("data/sample")
    for name in ("shichimi.jpg", "shichimi.toml"):
        dest = cfg.outbox / name
        with resources.as_file(sample.joinpath(name)) as src:
            shutil.copyfile(src, dest)
        os.utime(dest, (0, 0))  # old enough to count as stable at once
    say(_("sample artwork (Pepper&Carrot by David Revoy, CC BY 4.0) → {outbox}").format(outbox=cfg.outbox))
    _run_once(cfg, now=True)
    with open_db(cfg) as conn:
        rows = ledger.rows(conn)
        if not rows:
            raise UserError(_("the demo posted nothing; see `poster status`"))
        last = rows[-1]
        published = Path(last["url"].removeprefix("file://"))
        matches = trace_mod.trace(conn, published, markkey.load(cfg.data_dir))
    say()
    say(_("published copies are in {folder}").format(folder=cfg.data_dir / "posted"))
    if matches:
        m = matches[0]
        say(
            _("trace {name}: hidden ID {id} → {target} post of {posted_at}").format(
                name=published.name, id=m.id, target=m.target, posted_at=m.posted_at
            )
        )
    say(
        _("next: drop your own art into {outbox} and run `poster --config {path} run --once --now`").format(
            outbox=cfg.outbox, path=cfg_path
        )
    )


# -- run -------------------------------------------------------------------------------------
def _print_intake(results: list[Any], quiet: bool = False) -> None:
    for r in results:
        if quiet and r.outcome != "held":  # -q: only what needs the artist
            continue
        if r.outcome == "queued":
            say(_("queued   {name}").format(name=r.name))
        elif r.outcome == "duplicate":
            say(_("skipped  {name}: {reason}").format(name=r.name, reason=r.reason))
        elif r.outcome == "waiting":
            say(_("waiting  {name}: {reason}").format(name=r.name, reason=r.reason))
        elif r.outcome == "skipped":
            say(_("ignored  {name}: {reason}").format(name=r.name, reason=r.reason))
        elif r.moved_to is not None:
            say(
                _("held     {name}: {reason} → moved to {path} (the reason is beside it)").format(
                    name=r.name, reason=r.reason, path=r.moved_to
                ),
                err=True,
            )
        else:
            say(_("held     {name}: {reason}").format(name=r.name, reason=r.reason), err=True)
        for w in r.warnings:
            say(_("warning  {warning}").format(warning=w), err=True)


def _print_release_dates(cfg: config_mod.Config, conn: sqlite3.Connection) -> None:
    """`run --now` posts everything pending except what waits for its release date: say so."""
    from poster.schedule import zone

    at = store.now()
    for job in jobs.waiting(conn):
        if jobs.waits_for_release(job, at):
            release = jobs.artist_time(job)
            when = (release or job.scheduled_at).astimezone(zone(cfg)).strftime("%Y-%m-%d %H:%M")
            say(
                _(
                    "waiting  job {job} {name} → {target}: release date {when} (sidecar `at`); "
                    "`poster release {job}` posts it earlier"
                ).format(job=job.id, name=job.name, target=job.target, when=when)
            )


def _print_outcomes(outcomes: list[Any], quiet: bool = False) -> None:
    for o in outcomes:
        if quiet and o.state != jobs.State.FAILED:
            continue
        detail = o.url if o.state == jobs.State.POSTED else (o.reason or "")
        say(f"{o.state.value:<9} job {o.job_id} {o.name} → {o.target}  {detail}".rstrip())


def _print_stamps(done: Any) -> None:
    for line in done.lines():
        say(line)


class _Reporter(Notices):
    """What `poster run` says while it works: one line per post, failure, hold, retry and
    uncertain job (unless quiet), the render stage on an interactive terminal (rich, only
    imported there); the notifications are `Notices`'."""

    def __init__(self, cfg: config_mod.Config, *, lines: bool, live: bool) -> None:
        super().__init__(cfg)
        self.lines = lines
        self._status: Any = None
        self._console: Any = None
        if live and sys.stderr.isatty():
            from rich.console import Console

            self._console = Console(stderr=True)

    def say(self, text: str, *, err: bool = False) -> None:
        if not self.lines:
            return
        if self._console is not None and self._status is not None:  # above the spinner
            self._console.print(mask_text(safe(text)), markup=False, highlight=False)
        else:
            say(text, err=err)

    def intake(self, results: list[Any]) -> None:
        """Lines for what the daemon took in (run --once prints its own summary)."""
        super().intake(results)
        for r in results:
            if r.outcome == "queued":
                self.say(_("queued    {file}").format(file=r.name))
            elif r.outcome == "held":
                self.say(_("held      {file}: {reason}").format(file=r.name, reason=r.reason), err=True)

    def __call__(self, event: Any) -> None:
        from poster.dispatch import AwaitingApproval, Held
        from poster.schedule import zone

        super().__call__(event)
        if isinstance(event, Held):
            when = event.until.astimezone(zone(self.cfg)).strftime("%Y-%m-%d %H:%M")
            self.say(
                _("held      {target:<8} {file} until {when} ({reason})").format(
                    target=event.target, file=event.name, when=when, reason=event.reason
                )
            )
            return
        if isinstance(event, AwaitingApproval):
            self.say(
                _("approve?  {target:<8} {file}: rendered, waiting for `poster approve {job}`").format(
                    target=event.target, file=event.name, job=event.job_id
                )
            )
            return
        state, fields = event.state, {"target": event.target, "file": event.name}
        if state == jobs.State.POSTED:
            self.say(_("posted    {target:<8} {file}  {url}").format(**fields, url=event.url or ""))
        elif state == jobs.State.FAILED:
            self.say(
                _("failed    {target:<8} {file}: {reason}").format(**fields, reason=event.reason), err=True
            )
        elif state == jobs.State.RETRY_WAIT:
            self.say(_("retry     {target:<8} {file}: {reason}").format(**fields, reason=event.reason))
        elif state == jobs.State.UNCERTAIN:
            self.say(
                _("uncertain {target:<8} {file}: {reason} (settle with `poster confirm {job}`)").format(
                    **fields, reason=event.reason, job=event.job_id
                ),
                err=True,
            )

    def progress(self, job: jobs.Job, stage: str) -> None:
        if self._console is None:
            return
        text = _("rendering {file} for {target}: {stage}").format(
            file=job.name, target=job.target, stage=stage
        )
        if self._status is None:
            self._status = self._console.status(text)
            self._status.start()
        else:
            self._status.update(text)

    def done(self) -> None:
        """The render/post pass is over: take the spinner away."""
        if self._status is not None:
            self._status.stop()
            self._status = None


def _run_once(cfg: config_mod.Config, *, now: bool, quiet: bool = False) -> int:
    import threading

    from poster import outbox, schedule
    from poster.daemon import refresh_trace_index
    from poster.dispatch import Dispatcher
    from poster.timestamps import Stamper

    reporter = _Reporter(cfg, lines=False, live=not quiet)  # lines come as a summary below
    stop = threading.Event()  # Ctrl-C lets the post in flight finish and be recorded
    # a quick integrity check first: writing into a damaged database makes the damage worse
    with schedule.stop_signals(stop), store.run_lock(cfg.data_dir), open_db(cfg, check="quick") as conn:
        for job in jobs.recover(conn):
            say(
                _("uncertain job {job} ({name} → {target}): {reason}").format(
                    job=job.id, name=job.name, target=job.target, reason=job.reason
                ),
                err=True,
            )
            reporter.recovered(job)
        dispatcher = Dispatcher(cfg, conn, stop=stop, report=reporter, progress=reporter.progress)
        stamper = Stamper(cfg)  # time-stamps: never holds up intake or posting (short deadline)
        _print_outcomes(dispatcher.resolve_uncertain(), quiet)
        intake = outbox.scan(conn, cfg, wait=True)
        _print_intake(intake, quiet)
        reporter.intake(intake)
        _print_stamps(stamper.run(conn))
        try:
            outcomes = dispatcher.run_due(ignore_schedule=now, report=lambda o: _print_outcomes([o], quiet))
        finally:
            reporter.done()
        if now and not quiet:
            _print_release_dates(cfg, conn)
        refresh_trace_index(cfg, conn, outcomes)
        if outcomes:
            _print_stamps(stamper.run(conn))  # the ledger head after this batch
        if stop.is_set():
            say(_("poster: interrupted; the remaining jobs wait for the next run"), err=True)
            return 130
        held = any(r.outcome == "held" for r in intake)
        return 1 if held or any(o.state == jobs.State.FAILED for o in outcomes) else 0


@cli.command(
    help=N_(
        "Watch the outbox and post at the scheduled times (until SIGTERM/SIGINT).\n"
        "\n"
        "An artwork that cannot be posted as it is (a broken sidecar, not an image, over "
        "a limit) is moved to the data folder's needs-attention/ with NAME.reason.txt "
        "beside it; fix it and move it back into the outbox. Each post, failure and hold "
        "is one line (`-q`: none); what needs you is also sent to the `notify` services."
    )
)
@click.option("--once", is_flag=True, help=N_("take in the outbox, post what is due, then exit"))
@click.option(
    "--now",
    is_flag=True,
    help=N_(
        "with --once: post every pending job now, ignoring slots and pacing, but never before "
        "a release date its sidecar sets (`at`; see `poster release`)"
    ),
)
@click.option(
    "-q", "--quiet", is_flag=True, help=N_("no line per post, failure or hold (problems still show)")
)
@click.pass_obj
def run(obj: Ctx, once: bool, now: bool, quiet: bool) -> None:
    from poster import policies

    cfg = obj.config()
    if now and not once:
        raise UserError(_("--now only goes with --once"))
    policies.check(cfg)  # a bad step parameter now, naming the key, not at the first render
    if once:
        sys.exit(_run_once(cfg, now=now, quiet=quiet))
    from poster import notify, schedule
    from poster.daemon import Ticker

    reporter = _Reporter(cfg, lines=not quiet, live=not quiet)
    with store.run_lock(cfg.data_dir):
        with open_db(cfg, check="quick") as conn:
            for job in jobs.recover(conn):
                log.warning(
                    "%s",
                    _("uncertain job {job} ({name} → {target}): {reason}").format(
                        job=job.id, name=job.name, target=job.target, reason=job.reason
                    ),
                )
                reporter.recovered(job)
        # reloads the config when it changes; reports a failed tick once
        ticker = Ticker(cfg, reporter=reporter)
        say(_("poster is running on {outbox} (Ctrl-C to stop)").format(outbox=cfg.outbox), err=True)
        if not quiet and cfg.notify:
            n = notify.notifier(tuple(cfg.notify))
            if n.services:
                say(_("notifications: {services}").format(services=", ".join(n.services)), err=True)
            if n.unavailable:
                line = _("notifications not available here: {services}")
                say(line.format(services=", ".join(n.unavailable)), err=True)
        schedule.run_daemon(cfg, ticker, interval=ticker.interval)


# -- status and job commands ---------------------------------------------------------------
def _job_json(j: jobs.Job) -> dict[str, Any]:
    return {
        "id": j.id,
        "target": j.target,
        "state": j.state.value,
        "file": j.name,
        "scheduled_at": store.iso(j.scheduled_at),
        "reason": j.reason,
        "attempts": j.attempts,
        "url": j.url,
    }


@cli.command(help=N_("The queue: one line per job, the newest first (a page of them)."))
@click.option("--json", "as_json", is_flag=True, help=N_("print JSON (every job)"))
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help=N_("show the N newest jobs (0: all)"),
)
@click.option(
    "--offset", type=click.IntRange(min=0), default=0, help=N_("skip the N newest jobs (the next page)")
)
@click.pass_obj
def status(obj: Ctx, as_json: bool, limit: int, offset: int) -> None:
    from poster import attention, timestamps

    cfg = obj.essentials()
    with open_db(cfg, readonly=True, check="quick") as conn:
        if as_json:  # every job, streamed: flat memory however long the history
            emit_json_array(_job_json(j) for j in jobs.iter_jobs(conn))
            return
        counts = jobs.counts(conn)
        total = sum(counts.values())
        page = jobs.latest(conn, limit or total, offset)
        items = [_job_json(j) for j in page]
        stamp_lines = timestamps.summary(conn, enabled=cfg.stamping).problem_lines()
    held = attention.items(cfg)
    if held:
        say(
            _(
                "{count} artwork(s) not taken in, waiting in {folder} (the reason is in NAME.reason.txt):"
            ).format(count=len(held), folder=attention.folder(cfg))
        )
        for h in held:
            say(f"  {h.name}: {h.reason}")
        say(_("Fix each, then move it back into {outbox}.").format(outbox=cfg.outbox))
        if total:
            say()
    if not total:
        if not held:
            say(_("no jobs; drop art into {outbox}").format(outbox=cfg.outbox))
        for line in stamp_lines:
            say(line)
        return
    from poster.schedule import zone

    tz = zone(cfg)  # times as the user thinks of them: the zone the slots are written in
    head = (_("JOB"), _("TARGET"), _("STATE"), _("SCHEDULED"), _("FILE / REASON"))
    say(f"{head[0]:>4}  {head[1]:<10} {head[2]:<10} {head[3]:<17} {head[4]}")
    for it in items:
        extra = it["url"] if it["state"] == "posted" else (it["reason"] or "")
        when = store.parse_iso(it["scheduled_at"]).astimezone(tz).strftime("%a %m-%d %H:%M")
        say(
            f"{it['id']:>4}  {it['target']:<10} {it['state']:<10} {when:<17} "
            f"{it['file']}{'  ' + extra if extra else ''}"
        )
    if len(items) < total:
        say(
            _(
                "{shown} of {total} jobs shown (the newest, skipping {offset}); "
                "more: poster status --offset {next}, all: --limit 0"
            ).format(shown=len(items), total=total, offset=offset, next=offset + len(items))
        )
    waiting = counts.get("uncertain", 0)
    if waiting:
        say()
        say(
            _(
                "{count} job(s) may or may not have been posted: check the platform, then "
                "`poster confirm JOB --posted URL` or `--not-posted`"
            ).format(count=waiting)
        )
    if stamp_lines:
        say()
    for line in stamp_lines:
        say(line)


@cli.command(help=N_("Try a failed or cancelled job again (now)."))
@click.argument("job_id", metavar="JOB", type=int)
@click.pass_obj
def retry(obj: Ctx, job_id: int) -> None:
    from poster import actions

    cfg = obj.config()
    with open_db(cfg) as conn:
        say(actions.retry(conn, job_id))


@cli.command(help=N_("Cancel a job that has not been posted."))
@click.argument("job_id", metavar="JOB", type=int)
@click.pass_obj
def cancel(obj: Ctx, job_id: int) -> None:
    from poster import actions

    cfg = obj.config()
    with open_db(cfg) as conn:
        say(actions.cancel(conn, job_id))


@cli.command(
    help=N_(
        "Post JOB before its time: the release date its sidecar sets (`at`), which even "
        "`run --once --now` waits for, or its slot. It goes out at the next run."
    )
)
@click.argument("job_ids", metavar="JOB...", type=int, nargs=-1, required=True)
@click.pass_obj
def release(obj: Ctx, job_ids: tuple[int, ...]) -> None:
    from poster import actions

    cfg = obj.config()
    with open_db(cfg) as conn:
        for job_id in job_ids:
            say(actions.release(cfg, conn, job_id))


@cli.command(help=N_("Settle an uncertain (or hand-off) job: --posted URL or --not-posted."))
@click.argument("job_id", metavar="JOB", type=int)
@click.option("--posted", "posted_url", metavar="URL", help=N_("it was posted, at this URL"))
@click.option("--not-posted", is_flag=True, help=N_("it was not posted: post it again"))
@click.pass_obj
def confirm(obj: Ctx, job_id: int, posted_url: str | None, not_posted: bool) -> None:
    from poster import actions

    if bool(posted_url) == not_posted:
        raise UserError(_("give exactly one of --posted URL or --not-posted"))
    cfg = obj.config()
    with open_db(cfg) as conn:
        say(actions.confirm(cfg, conn, job_id, posted_url))


@cli.command(help=N_("Approve rendered jobs for posting (config `approve = true`)."))
@click.argument("job_ids", metavar="JOB...", type=int, nargs=-1, required=True)
@click.pass_obj
def approve(obj: Ctx, job_ids: tuple[int, ...]) -> None:
    from poster import actions

    cfg = obj.config()
    with open_db(cfg) as conn:
        for job_id in job_ids:
            click.echo(actions.approve(cfg, conn, job_id))
    if not any(cfg.needs_approval(t) for t in cfg.targets):
        click.echo(_("note: approval is off in {file}; jobs post without it").format(file=cfg.path), err=True)


# -- the web UI --------------------------------------------------------------------------------
@cli.command(help=N_("The local web app. Prints one URL (with a secret for this launch) and opens it."))
@click.option("--host", default="127.0.0.1", show_default=True, help=N_("address to listen on (loopback)"))
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help=N_("0: any free port")
)
@click.option("--no-browser", is_flag=True, help=N_("do not open the browser"))
@click.option("--no-daemon", is_flag=True, help=N_("only show and edit; do not post from this process"))
@click.option(
    "--allow-remote", is_flag=True, help=N_("allow a --host that is not loopback (not recommended)")
)
@click.pass_obj
def ui(obj: Ctx, host: str, port: int, no_browser: bool, no_daemon: bool, allow_remote: bool) -> None:
    from poster.ui.server import Launch

    cfg = obj.config()
    launch = Launch(
        cfg.path,
        host=host,
        port=port,
        daemon=not no_daemon,
        allow_remote=allow_remote,
        warn=lambda text: click.echo(text, err=True),
    )
    if launch.state.daemon == "outside":
        text = _("another `poster run` is posting from {folder}; this window only shows and edits")
        click.echo(text.format(folder=cfg.data_dir), err=True)
    click.echo(_("poster ui is running (Ctrl-C to stop)"), err=True)
    click.echo(launch.url)  # the one line on stdout, last: a script can read it and go
    launch.serve(open_browser=not no_browser)


# -- trace and ledger ------------------------------------------------------------------------
@cli.command(
    help=N_(
        "Which post did each IMAGE come from? IMAGE: files, folders (every image in "
        "them), or - for image bytes on standard input."
    )
)
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help=N_("print JSON"))
@click.option(
    "--report",
    "report_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help=N_("write an evidence report (HTML + images) into this folder"),
)
@click.pass_obj
def trace(obj: Ctx, images: tuple[Path, ...], as_json: bool, report_dir: Path | None) -> None:
    from poster import actions
    from poster import trace as trace_mod
    from poster.i18n import _

    cfg = obj.config()
    items: list[Path | tuple[str, bytes]] = []
    for p in images:
        if str(p) == "-":
            items.append(("-", sys.stdin.buffer.read()))
        else:
            items.extend(trace_mod.expand([p]) if p.is_dir() else [p])
    if not items:
        raise UserError(_("{paths}: no images to trace").format(paths=", ".join(map(str, images))))
    # no integrity check here: at 100,000 rows it costs 8x the trace itself (benchmarks/
    # data_folder.py); status, run, ledger verify and doctor find damage
    with open_db(cfg, readonly=True) as conn:
        with _index_progress() as indexing:
            index = actions.prepare_trace_index(cfg, conn, indexing)
        with _trace_progress(len(items)) as progress:
            traced = actions.trace_images(
                cfg, conn, items, progress=progress, report_root=report_dir, index=index
            )
    if len(traced) == 1 and traced[0].result is None:
        raise UserError(traced[0].error or _("{file}: cannot be traced").format(file=traced[0].name))
    out = [t.to_json() for t in traced]
    if as_json:
        if len(out) == 1:
            del out[0]["file"]  # one image: {"matches": [...], ...} as before
        emit_json(out[0] if len(out) == 1 else out)
    else:
        _print_traced(out)
    if any(e.get("verdict") == "error" for e in out):
        sys.exit(1)


@contextmanager
def _progress_bar() -> Iterator[Any]:
    """A transient rich progress bar on stderr when it is an interactive terminal, else None."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        transient=True, console=_stderr_console(),
    ) as bar:  # fmt: skip
        yield bar


@contextmanager
def _trace_progress(total: int) -> Iterator[Any]:
    """A progress bar on an interactive terminal (stderr), for batches; otherwise nothing."""
    from poster.i18n import _

    if total < 2:
        yield None
        return
    with _progress_bar() as bar:
        if bar is None:
            yield None
            return
        task = bar.add_task(_("tracing"), total=total)

        def step(done: int, _total: int, name: str) -> None:
            bar.update(task, completed=done, description=_rich_text(Path(name).name[:40]))

        yield step


@contextmanager
def _index_progress() -> Iterator[Any]:
    """A progress bar on an interactive terminal (stderr) while originals are described for
    the trace index: a few new ones pass unseen, a rebuild after an upgrade shows."""
    from poster.i18n import _

    with _progress_bar() as bar:
        if bar is None:
            yield None
            return
        task = None

        def step(done: int, total: int) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task(_("describing the archive's originals for trace"), total=total)
            bar.update(task, completed=done)

        yield step


def _rich_text(text: str) -> str:
    """Outside text (a file name) for a rich cell: control characters escaped as `say` does,
    and `[` not read as rich markup."""
    from rich.markup import escape

    return escape(safe(text))


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _print_traced(entries: list[dict[str, Any]]) -> None:
    from poster.i18n import _

    for r in entries:
        name = r["file"]
        if r.get("verdict") == "error":
            say(_("{file}: cannot trace: {reason}").format(file=name, reason=r.get("error")), err=True)
            continue
        verdict = r.get("verdict", "no match")
        art = r.get("artwork") or {}
        if verdict == "no match":
            say(
                _("{file}: no match (no hidden ID from this ledger, nothing similar enough)").format(
                    file=name
                )
            )
        elif verdict == "not from any post":
            say(
                _("{file}: your artwork {name}, not from any post as posted (score {score:.2f})").format(
                    file=name,
                    name=art.get("name") or art.get("original_sha256", "")[:12],
                    score=art.get("score", 0),
                )
            )
        elif verdict in ("artwork only", "likely rework"):
            line = (
                _("{file}: likely rework of your artwork {name} (score {score:.2f}); no post can be named")
                if verdict == "likely rework"
                else _("{file}: your artwork {name} (score {score:.2f}); which post cannot be told")
            )
            say(line.format(file=name, name=art.get("name") or "?", score=art.get("score", 0)))
        for m in r["matches"]:
            flip = _(", mirrored") if m["mirrored"] else ""
            if m.get("post") == "exact":
                how = {"hidden-id": _("hidden ID"), "visible-layers": _("visible layers")}.get(
                    m["method"], m["method"]
                )
                line = _("{file}: {how} {id} → {target} post of {posted_at} {url} (score {score:.2f}{flip})")
                say(
                    line.format(
                        file=name, how=how, id=m["id"], target=m["target"], posted_at=m["posted_at"],
                        url=m["url"] or "", score=m["score"], flip=flip,
                    )
                )  # fmt: skip
            else:
                say(
                    _("{file}:   one of its posts: {id} → {target} post of {posted_at} {url}").format(
                        file=name,
                        id=m["id"],
                        target=m["target"],
                        posted_at=m["posted_at"],
                        url=m["url"] or "",
                    )
                )
        for note in r.get("notes", []):
            say(_("{file}: note: {note}").format(file=name, note=note))
        if "report" in r:
            say(_("{file}: evidence report: {report}").format(file=name, report=r["report"]))
    if len(entries) > 1:
        _summary_table(entries)


def _summary_table(entries: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    from poster import trace as trace_mod

    table = Table(title=_("summary"))
    for col in (_("file"), _("verdict"), _("post"), _("artwork"), _("method"), _("score")):
        table.add_column(col)
    counts: dict[str, int] = {}
    for r in entries:
        verdict = r.get("verdict", "no match")
        counts[verdict] = counts.get(verdict, 0) + 1
        exact = next((m for m in r["matches"] if m.get("post") == "exact"), None)
        art = r.get("artwork") or {}
        method = exact["method"] if exact else art.get("method", "")
        score = exact["score"] if exact else art.get("score")
        cells = (
            Path(r["file"]).name,
            _(trace_mod.VERDICT_LABEL.get(verdict, verdict)),
            f"{exact['target']} {exact['id']}" if exact else "—",
            art.get("name") or "—",
            method or "—",
            f"{score:.2f}" if isinstance(score, float | int) else "—",
        )
        table.add_row(*(_rich_text(c) for c in cells))
    console = Console(file=sys.stdout, width=120)
    console.print(table)
    say(", ".join(f"{_(trace_mod.VERDICT_LABEL.get(k, k))}: {v}" for k, v in sorted(counts.items())))


@cli.group(name="ledger", help=N_("The record of every posted copy and its hidden ID."))
def ledger_group() -> None:
    pass


@ledger_group.command(
    name="export",
    help=N_("Print every ledger row (also from a damaged database: what can be read, then an error)."),
)
@click.option("--json", "fmt", flag_value="json", default=True, help=N_("JSON (default)"))
@click.option("--csv", "fmt", flag_value="csv", help=N_("CSV"))
@click.pass_obj
def ledger_export(obj: Ctx, fmt: str) -> None:
    cfg = obj.config()
    errors: list[str] = []
    with open_db(cfg, readonly=True) as conn:
        damage = store.integrity_problem(conn)
        rows = _until_damaged(ledger.iter_rows(conn), errors)  # streamed: flat memory
        if fmt == "csv":
            with _Echo() as out:
                ledger.write_csv(rows, out)  # type: ignore[arg-type]
        else:
            emit_json_array(rows)
    damage = damage or (errors[0] if errors else None)
    if damage is not None:  # the rows above are what could be read: salvage, not a backup
        raise store.damaged(cfg.db_path, damage)


@ledger_group.command(
    name="verify",
    help=N_(
        "Check the database file, the hash chain and its time-stamps; fails naming the "
        "damage or the first bad row."
    ),
)
@click.pass_obj
def ledger_verify(obj: Ctx) -> None:
    from poster import actions

    cfg = obj.config()
    with open_db(cfg, readonly=True) as conn:
        check = actions.check_ledger(cfg, conn)
    for line in check.warnings:
        say(line, err=True)
    if not check.ok:
        raise UserError(check.verdict)
    say(check.verdict)
    for line in check.details:
        say(line)


@ledger_group.command(
    name="head",
    help=N_("The chain head (last row hash): publish or timestamp it to pin the ledger as of now."),
)
@click.option("--json", "as_json", is_flag=True, help=N_("print JSON"))
@click.pass_obj
def ledger_head(obj: Ctx, as_json: bool) -> None:
    cfg = obj.config()
    with open_db(cfg, readonly=True) as conn:
        result = ledger.verify(conn)
        if not result.ok:
            raise UserError(_("ledger check failed: {problem}").format(problem=result.problem))
        head = ledger.head(conn)
    if as_json:
        emit_json(head)
        return
    say(
        _("{row_hash}  ({rows} rows, last {seq}, {at})").format(
            row_hash=head["row_hash"], rows=head["rows"], seq=head["seq"], at=head["at"]
        )
    )


# -- proof ---------------------------------------------------------------------------------
@cli.command(
    help=N_(
        "An evidence bundle anyone can check with `openssl ts -verify` and `sha256sum` "
        "alone.\n"
        "\n"
        "POST-ID is a posted copy's hidden ID (12 hex digits, as `poster trace` and "
        "`poster ledger export` print it). ARTWORK is an original image file, its "
        "SHA-256, or the name the artwork had in the outbox: its originals and all its "
        "posts."
    )
)
@click.argument("ref", metavar="ARTWORK|POST-ID")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help=N_("write the bundle into this (new or empty) folder"),
)
@click.pass_obj
def proof(obj: Ctx, ref: str, out: Path) -> None:
    from poster import actions

    cfg = obj.config()
    with open_db(cfg) as conn:
        bundle = actions.proof(cfg, conn, ref, out)
    for warning in bundle.warnings:
        say(_("warning: {warning}").format(warning=warning), err=True)
    say(
        _("wrote {dir}: {count} files; the checks are in {readme}").format(
            dir=bundle.dir, count=len(bundle.files), readme=bundle.dir / "README.txt"
        )
    )
    say(
        _(
            "note: the ledger rows in it are complete (a third party must recompute their hashes), "
            "including the random seeds of those posts' visible watermarks"
        )
    )


# -- keeping the data folder safe -----------------------------------------------------------
@cli.command(
    help=N_(
        "Copy the database, hidden-ID key, originals and variants into DEST, "
        "consistently, also while `poster run` is posting. DEST: a new or empty folder, "
        "or an earlier backup to refresh."
    )
)
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.pass_obj
def backup(obj: Ctx, dest: Path) -> None:
    from poster import actions

    cfg = obj.config()
    say(actions.backup(cfg, dest))


@cli.command(
    help=N_(
        "Restore BACKUP (made by `poster backup`) into the data folder DIR (default: the "
        "config's data_dir), which must be new, empty, or unused since `poster init`."
    )
)
@click.argument("backup_dir", metavar="BACKUP", type=click.Path(path_type=Path, file_okay=False))
@click.argument("directory", metavar="DIR", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.pass_obj
def restore(obj: Ctx, backup_dir: Path, directory: Path | None) -> None:
    from poster import actions

    if directory is None:
        directory = obj.config().data_dir
    for line in actions.restore(backup_dir, directory):
        say(line)


# -- preview -------------------------------------------------------------------------------
def _terminal_status(text: str) -> tuple[Any, Any]:
    """A spinner line on an interactive terminal (rich, imported only there): (update with a
    stage, stop). Nothing on a pipe or in a log."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.console import Console

    status = Console(stderr=True).status(text)
    status.start()
    return (lambda stage: status.update(f"{text}: {stage}")), status.stop


@cli.command(
    help=N_(
        "Render IMAGE exactly as it would be posted to NAME, without posting.\n"
        "\n"
        "The preview carries the hidden ID 0, which is never given to a real post, so a "
        "preview file that leaks traces to no post. PSNR/SSIM compare with the original "
        "at the variant's size. With --job, the job's own rendered file instead "
        "(rendered now if it was not yet): the very bytes that will be posted, as "
        "`poster ui` shows them."
    )
)
@click.argument("image", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--target", "target", metavar="NAME", help=N_("render as for this target"))
@click.option(
    "--job",
    "job_id",
    type=int,
    metavar="JOB",
    help=N_("instead of IMAGE and --target: a queued job's own copy, the exact bytes it will post"),
)
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False), metavar="FILE")
@click.option(
    "--compare",
    "compare_path",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE.png",
    help=N_("also write original and variant side by side, with an enlarged detail crop"),
)
@click.option("--json", "as_json", is_flag=True, help=N_("print JSON (adds psnr, ssim, size, bytes, format)"))
@click.pass_obj
def preview(
    obj: Ctx,
    image: Path | None,
    target: str | None,
    job_id: int | None,
    out: Path,
    compare_path: Path | None,
    as_json: bool,
) -> None:
    from poster import render as render_mod
    from poster.protect import quality

    if (job_id is None) == (image is None and target is None) or (job_id is None and not (image and target)):
        raise UserError(_("give IMAGE and --target NAME, or --job JOB"))
    cfg = obj.config()
    if job_id is not None:
        from poster import actions

        with open_db(cfg) as conn:
            copy = actions.job_copy(cfg, conn, job_id)
        data, original, variant, info = copy.data, copy.original, copy.variant, copy.report
    else:
        assert image is not None and target is not None
        progress, stop = _terminal_status(
            _("rendering {file} for {target}").format(file=image.name, target=target)
        )
        try:
            pv = render_mod.preview(cfg, target, image, progress=progress)
        finally:
            stop()
        data, original, variant, info = pv.rendered.data, pv.original, pv.variant, pv.report()
    out.write_bytes(data)
    if compare_path is not None:
        quality.compare(original, variant).save(compare_path, "PNG")
    report = {"file": str(out), **info}
    if compare_path is not None:
        report["compare"] = str(compare_path)
    if as_json:
        emit_json(report)
        return
    line = (
        _(
            "{file}: {format} {width}x{height}, {bytes} bytes, PSNR {psnr} dB, SSIM {ssim} "
            "(policy {policy}, hidden-ID strength {strength}, read with the original)"
        )
        if report["mark_read"] != "blind"
        else _(
            "{file}: {format} {width}x{height}, {bytes} bytes, PSNR {psnr} dB, SSIM {ssim} "
            "(policy {policy}, hidden-ID strength {strength})"
        )
    )
    say(
        line.format(
            file=out,
            format=report["format"],
            width=report["width"],
            height=report["height"],
            bytes=report["bytes"],
            psnr=report["psnr"],
            ssim=report["ssim"],
            policy=report["policy"],
            strength=report["mark_strength"],
        )
    )


# -- credentials and health (poster login / poster doctor) ---------------------------------
@cli.command(
    help=N_(
        "Store TARGET's credentials in the OS keyring (secrets are typed hidden). `notify:NAME` "
        'stores a notification URL, listed in config as "secret:NAME".'
    )
)
@click.argument("target")
@click.pass_obj
def login(obj: Ctx, target: str) -> None:
    from poster.platforms import doctor as doctor_mod

    if target.startswith("notify:"):  # a notification URL: its token stays out of config.toml
        _login_notify(target.removeprefix("notify:"))
        return
    cfg = obj.config()
    tc = cfg.targets.get(target)
    if tc is None:
        raise UserError(
            _("no target named {target!r} in {config} (known: {known})").format(
                target=target, config=cfg.path, known=", ".join(cfg.targets)
            )
        )

    def ask(f: Any) -> str:
        if f.help:
            say(f.help, err=True)
        return click.prompt(f.prompt, hide_input=f.secret, err=True)

    stored = doctor_mod.login(target, tc.adapter, ask)
    if not stored:
        say(
            _("{target}: the {adapter} adapter needs no credentials").format(
                target=target, adapter=tc.adapter
            )
        )
        return
    say(_("{target}: stored {names} in the keyring").format(target=target, names=", ".join(stored)))
    report = doctor_mod.check_target(target, tc.adapter, tc.settings(), cfg.data_dir)
    verdict = _("ok") if report.ok else _("PROBLEM")
    say(f"{target}: {verdict}: {report.message}")


def _login_notify(name: str) -> None:
    from poster import config as config_mod
    from poster import notify, secrets

    if not config_mod.NAME_RE.match(name):
        raise UserError(_('notify:{name}: use letters, digits, "-" and "_" for the name').format(name=name))
    url = click.prompt(
        _("notification URL for {name} (apprise form, e.g. discord://…)").format(name=name),
        hide_input=True,
        err=True,
    ).strip()
    if "://" not in url:
        raise UserError(
            _("notify:{name}: not a notification URL (like discord://...); nothing stored").format(name=name)
        )
    ok, why = secrets.keyring_status()
    if not ok:
        raise UserError(
            _("cannot store it: {why}; set the environment variable {env} instead").format(
                why=why, env=secrets.env_name(notify.SECRET_TARGET, name)
            )
        )
    secrets.store(notify.SECRET_TARGET, {name: url})
    say(
        _(
            'notify:{name}: stored in the keyring; list it in config.toml as notify = [..., "secret:{name}"]'
        ).format(name=name)
    )


@cli.command(help=N_("One cheap authenticated call per target (or just TARGET); says what is wrong."))
@click.argument("target", required=False)
@click.option("--json", "as_json", is_flag=True, help=N_("print JSON"))
@click.pass_obj
def doctor(obj: Ctx, target: str | None, as_json: bool) -> None:
    from poster import timestamps
    from poster.platforms import doctor as doctor_mod

    cfg = obj.config()
    targets = {name: (t.adapter, t.settings()) for name, t in cfg.targets.items()}
    reports = doctor_mod.check_targets(targets, cfg.data_dir, only=target)
    data = doctor_mod.check_data(cfg.db_path)
    shown = list(reports)
    stamps = None
    if target is None and data.ok:  # the time-stamping authorities, one more line (not a target)
        with open_db(cfg, readonly=True) as conn:
            health = timestamps.doctor(conn, cfg)
        stamps = doctor_mod.TargetReport(_("time-stamps"), "rfc3161", health.ok, health.message)
        shown.append(stamps)
    if as_json:
        emit_json([r.as_dict() for r in shown])
    else:
        verdict = _("ok") if data.ok else _("PROBLEM")
        say(_("data folder: {verdict}: {message}").format(verdict=verdict, message=data.message))
        for r in shown:
            missing = [f for f, src in r.credentials.items() if src is None]
            extra = _(" (missing: {names})").format(names=", ".join(missing)) if missing and not r.ok else ""
            verdict = _("ok") if r.ok else _("PROBLEM")
            say(f"{r.target} ({r.adapter}): {verdict}: {r.message}{extra}")
    if not data.ok:
        raise UserError(data.message)
    bad = [r.target for r in reports if not r.ok]
    if bad:
        raise UserError(
            _("{count} of {total} targets need attention: {names}").format(
                count=len(bad), total=len(reports), names=", ".join(bad)
            )
        )
    if stamps is not None and not stamps.ok:
        raise UserError(_("time-stamping needs attention (see the time-stamps line)"))


def _set_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.find_object(Ctx).config_path = value  # type: ignore[union-attr]


def _accept_config_everywhere(group: click.Group) -> None:
    """CONTRACT: every command takes `--config PATH`, so it works after the command name too
    (`poster status --config x.toml`), not only before it."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _accept_config_everywhere(command)
        elif command.name != "init":
            command.params.append(
                click.Option(
                    ["--config", "sub_config"],
                    type=click.Path(path_type=Path, dir_okay=False),
                    expose_value=False,
                    callback=_set_config,
                    help=N_("config file (as the global --config)"),
                )
            )


_accept_config_everywhere(cli)


# -- entry point -----------------------------------------------------------------------------
def _help_language(args: list[str]) -> str | None:
    """The config's `language` for a help page, which click shows before any command loads
    the config: the one key read alone, so a config that is broken otherwise (or none at
    all) still lets the help show, in LANG's language."""
    explicit = None
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            explicit = Path(args[i + 1])
        elif arg.startswith("--config="):
            explicit = Path(arg.partition("=")[2])
    try:
        import tomllib

        from poster.configfile import find

        with find(explicit).open("rb") as fh:
            value = tomllib.load(fh).get("language")
    except (UserError, OSError, ValueError):
        return None
    return value if isinstance(value, str) and value else None


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    i18n.set_language(i18n.from_environment())  # LANG until the config says otherwise
    clicktext.install()
    if "--help" in args or "-h" in args:
        i18n.set_language(_help_language(args) or i18n.current())
    debug = "--debug" in args
    try:
        rv = cli.main(args=args, prog_name="poster", standalone_mode=False)
    except UserError as exc:
        say(_("poster: error: {message}").format(message=exc), err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        say(_("poster: interrupted"), err=True)
        sys.exit(130)
    except Exception as exc:
        logging.getLogger("poster").debug("unexpected error", exc_info=True)
        if debug:
            click.echo(mask_text(safe_block(traceback.format_exc())), err=True)
        say(
            _("poster: internal error: {kind}: {error} (run with --debug for details)").format(
                kind=type(exc).__name__, error=exc
            ),
            err=True,
        )
        sys.exit(70)
    sys.exit(rv if isinstance(rv, int) else 0)
