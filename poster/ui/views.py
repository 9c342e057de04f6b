"""Thin views: read the request, call `poster.actions`, render a page or a `_partial`.
No SQL and no image code here."""

from __future__ import annotations

import contextlib
import mimetypes
import secrets
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from poster import actions, schedule, store
from poster.errors import UserError
from poster.i18n import LANGUAGES, _
from poster.ui.app import LANGUAGE_COOKIE, Rq

NAV = (
    ("/", "queue"),
    ("/calendar", "calendar"),
    ("/trace", "trace"),
    ("/ledger", "ledger"),
    ("/settings", "settings"),
    ("/health", "health"),
)


PLACEHOLDER = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10" '
    'fill="#eceae5"/><path d="M3 3l4 4M7 3l-4 4" stroke="#b9b3a8" stroke-width=".4"/></svg>'
)


def _flash(rq: Rq) -> dict[str, str | None]:
    q = rq.request.query_params
    return {"message": q.get("msg"), "error": q.get("err")}


# -- home / queue -----------------------------------------------------------------------------
def _queue_context(rq: Rq) -> dict[str, Any]:
    cfg = rq.config
    held_folder, held = actions.needs_attention(cfg)
    return {
        "held": held,
        "held_folder": held_folder,
        "artworks": actions.queue(cfg, rq.db),
        "outbox": actions.waiting_in_outbox(cfg),
        "zone": str(schedule.zone(cfg)),
    }


def home(rq: Rq) -> Response:
    cfg = rq.config
    return rq.render(
        "home.html",
        targets=[(n, t.enabled) for n, t in cfg.targets.items()],
        max_bytes=cfg.intake.max_file_bytes,
        max_images=actions.MAX_UPLOAD_IMAGES,
        approve=any(cfg.needs_approval(t) for t in cfg.targets),
        **_queue_context(rq),
        **_flash(rq),
    )


def queue_partial(rq: Rq) -> Response:
    return rq.render("_queue.html", **_queue_context(rq))


def _files(rq: Rq, field: str) -> list[UploadFile]:
    assert rq.form is not None
    return [f for f in rq.form.getlist(field) if isinstance(f, UploadFile) and f.filename]


def upload(rq: Rq) -> Response:
    assert rq.form is not None
    form = rq.form
    cfg = rq.config
    files = _files(rq, "images")
    enabled = [n for n, t in cfg.targets.items() if t.enabled]
    chosen = [str(t) for t in form.getlist("targets")]
    fields = actions.PostFields(
        title=str(form.get("title") or ""),
        caption=str(form.get("caption") or ""),
        tags=str(form.get("tags") or ""),
        alt=[str(a) for a in form.getlist("alt")],
        rating=str(form.get("rating") or "general"),
        # the form marks that it showed the boxes: none ticked then means none, not "all"
        targets=None
        if sorted(chosen) == sorted(enabled) or (not chosen and not form.get("targets_shown"))
        else chosen,
        at=str(form.get("at") or ""),
    )
    wants_json = "application/json" in rq.request.headers.get("accept", "")
    try:
        uploads = []
        for f in files:
            if f.size is not None and f.size > cfg.intake.max_file_bytes:
                raise UserError(
                    _("{file}: {size} bytes, over the limit of {limit}").format(
                        file=f.filename, size=f.size, limit=cfg.intake.max_file_bytes
                    )
                )
            uploads.append(actions.Upload(str(f.filename), f.file.read()))
        name = actions.drop_into_outbox(cfg, uploads, fields)
    except UserError as exc:
        if wants_json:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
        return rq.back("/", error=str(exc))
    if rq.state.kick is not None:
        rq.state.kick()  # take it in now rather than at the next scan
        message = _("{name} is in the outbox and is being taken in.").format(name=name)
    elif rq.state.daemon == "outside":
        message = _("{name} is in the outbox; the running `poster run` takes it in at its next scan.").format(
            name=name
        )
    else:
        message = _("{name} is in the outbox. Nothing is posting: start `poster run`.").format(name=name)
    if wants_json:
        return JSONResponse({"ok": True, "name": name, "message": message})
    return rq.back("/", message=message)


def job_action(rq: Rq) -> Response:
    assert rq.form is not None
    job_id = int(rq.request.path_params["job_id"])
    verb = rq.request.path_params["verb"]
    back = str(rq.form.get("back") or "/")
    if not back.startswith("/") or back.startswith("//"):
        back = "/"
    cfg = rq.config
    try:
        if verb == "retry":
            message = actions.retry(rq.db, job_id)
        elif verb == "cancel":
            message = actions.cancel(rq.db, job_id)
        elif verb == "approve":
            message = actions.approve(cfg, rq.db, job_id)
        elif verb == "release":
            message = actions.release(cfg, rq.db, job_id)
        elif verb == "confirm-posted":
            url = str(rq.form.get("url") or "").strip()
            if not url:
                raise UserError(_("enter the address of the post"))
            message = actions.confirm(cfg, rq.db, job_id, url)
        elif verb == "confirm-not-posted":
            message = actions.confirm(cfg, rq.db, job_id, None)
        else:
            return Response(status_code=404)
    except UserError as exc:
        return rq.back(back, error=str(exc))
    if rq.state.kick is not None and verb in ("retry", "approve", "release", "confirm-not-posted"):
        rq.state.kick()
    return rq.back(back, message=message)


# -- preview / approve --------------------------------------------------------------------------
def artwork(rq: Rq) -> Response:
    artwork_id = int(rq.request.path_params["artwork_id"])
    cfg = rq.config
    try:
        art = actions.artwork(cfg, rq.db, artwork_id)
    except UserError as exc:
        return rq.render("error.html", status=404, error=str(exc))
    quality: dict[tuple[int, int], dict[str, float]] = {}
    for jv in art.jobs:
        for v in jv.variants:
            with contextlib.suppress(UserError, OSError):
                quality[(jv.job.id, v.idx)] = actions.variant_quality(cfg, rq.db, jv.job.id, v.idx)
    task = rq.state.tasks.latest("prepare", artwork_id)
    return rq.render(
        "artwork.html",
        art=art,
        quality=quality,
        task=task if task and not task.finished else None,
        failed_task=task if task and task.finished and task.error else None,
        **_flash(rq),
    )


def artwork_action(rq: Rq) -> Response:
    artwork_id = int(rq.request.path_params["artwork_id"])
    verb = rq.request.path_params["verb"]
    cfg = rq.config
    url = f"/artworks/{artwork_id}"
    try:
        art = actions.artwork(cfg, rq.db, artwork_id)
    except UserError as exc:
        return rq.back("/", error=str(exc))
    if verb == "approve":
        done = []
        try:
            for jv in art.jobs:
                if jv.can_approve:
                    done.append(actions.approve(cfg, rq.db, jv.job.id))
        except UserError as exc:
            return rq.back(url, error=str(exc))
        if rq.state.kick is not None:
            rq.state.kick()
        return rq.back(url, message=_("Approved: {count}").format(count=len(done)) if done else None)
    if verb == "prepare":
        pending = [jv.job.id for jv in art.jobs if jv.can_prepare]
        state = rq.state

        def work(task: Any) -> list[str]:
            out = []
            conf = state.config()
            conn = store.connect(conf.db_path)
            try:
                for n, job_id in enumerate(pending):
                    task.progress(n, len(pending), _("rendering job {job}").format(job=job_id))
                    out.append(actions.prepare(conf, conn, job_id))
                task.progress(len(pending), len(pending))
            finally:
                conn.close()
            return out

        state.tasks.submit("prepare", work, subject=artwork_id)
        return rq.back(url)
    return Response(status_code=404)


def media_original(rq: Rq) -> Response:
    p = rq.request.path_params
    try:
        path = actions.original_file(rq.config, rq.db, int(p["artwork_id"]), int(p["idx"]))
    except UserError:
        return Response(status_code=404)
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=mime, headers={"cache-control": "private, max-age=3600"})


def media_thumb(rq: Rq) -> Response:
    p = rq.request.path_params
    try:
        path = actions.thumbnail(rq.config, rq.db, int(p["artwork_id"]), int(p["idx"]))
    except (UserError, OSError):  # a file that is no image (a .psd dropped by mistake)
        return Response(PLACEHOLDER, media_type="image/svg+xml")
    return FileResponse(path, media_type="image/jpeg", headers={"cache-control": "private, max-age=3600"})


def media_variant(rq: Rq) -> Response:
    """The rendered variant, byte for byte: what is (or will be) posted."""
    p = rq.request.path_params
    try:
        path, mime = actions.variant_file(rq.config, rq.db, int(p["job_id"]), int(p["idx"]))
    except UserError:
        return Response(status_code=404)
    return FileResponse(path, media_type=mime, headers={"cache-control": "private, max-age=3600"})


# -- calendar -----------------------------------------------------------------------------------
def calendar(rq: Rq) -> Response:
    cfg = rq.config
    q = rq.request.query_params
    view = "day" if q.get("view") == "day" else "week"
    tz = schedule.zone(cfg)
    try:
        start = date.fromisoformat(q["date"]) if q.get("date") else datetime.now(tz).date()
    except ValueError:
        start = datetime.now(tz).date()
    if view == "week":
        start = start - timedelta(days=start.weekday())
    days = 1 if view == "day" else 7
    step = timedelta(days=days)
    return rq.render(
        "calendar.html",
        view=view,
        start=start,
        days=actions.calendar(cfg, rq.db, start, days),
        targets=list(cfg.targets),
        prev=(start - step).isoformat(),
        next=(start + step).isoformat(),
        today=datetime.now(tz).date(),
        zone=str(tz),
    )


# -- trace --------------------------------------------------------------------------------------
def _trace_dir(rq: Rq) -> Path:
    d = rq.config.data_dir / "ui-trace"
    store.ensure_private_dir(d)
    return d


def trace_page(rq: Rq) -> Response:
    task_id = rq.request.query_params.get("task")
    task = rq.state.tasks.get(task_id) if task_id else None
    return rq.render("trace.html", task=task, **_flash(rq))


def trace_start(rq: Rq) -> Response:
    files = _files(rq, "images")
    if not files:
        return rq.back("/trace", error=_("choose at least one image"))
    task_id = secrets.token_hex(8)
    folder = _trace_dir(rq) / task_id
    (folder / "in").mkdir(parents=True, mode=0o700)
    saved = []
    limit = rq.config.intake.max_file_bytes
    for n, f in enumerate(files, 1):
        name = Path(str(f.filename)).name
        dest = folder / "in" / f"{n:02d}-{actions.safe_stem(name)}{Path(name).suffix.lower()[:8]}"
        with dest.open("wb") as out:
            shutil.copyfileobj(f.file, out)
        if dest.stat().st_size > limit:
            return rq.back("/trace", error=_("{file}: too large to trace").format(file=name))
        saved.append((name, dest))
    state = rq.state

    def work(task: Any) -> list[actions.TraceItem]:
        conf = state.config()
        conn = store.connect(conf.db_path)
        try:
            return actions.trace_files(conf, conn, saved, folder / "reports", task.progress)
        finally:
            conn.close()

    # the folder and the task share the id: the reports are found by it
    state.tasks.submit("trace", work, subject=task_id, task_id=task_id)
    wants_json = "application/json" in rq.request.headers.get("accept", "")
    if wants_json:
        return JSONResponse({"ok": True, "task": task_id, "url": f"/trace?task={task_id}"})
    return RedirectResponse(f"/trace?task={task_id}", status_code=303)


def task_partial(rq: Rq) -> Response:
    task = rq.state.tasks.get(rq.request.path_params["task_id"])
    if task is None:
        return Response(status_code=404)
    return rq.render("_task.html", task=task)


def report_file(rq: Rq) -> Response:
    p = rq.request.path_params
    task_id, name = str(p["task_id"]), str(p["name"])
    if not task_id.isalnum() or "/" in name or name.startswith("."):
        return Response(status_code=404)
    root = _trace_dir(rq) / task_id / "reports"
    # laid out by actions.trace_report_dir: the folder itself for one image, else NN-<stem>
    n = int(p["n"])
    folders = sorted(root.glob(f"{n:02d}-*")) if root.is_dir() else []
    folder = folders[0] if folders else (root if n == 1 else None)
    path = folder / name if folder is not None else None
    if path is None or not path.is_file():
        return Response(status_code=404)
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=mime)


# -- ledger -------------------------------------------------------------------------------------
def _ledger_rows(rq: Rq) -> tuple[list[dict[str, Any]], dict[str, str]]:
    q = rq.request.query_params
    filters = {k: q.get(k, "").strip() for k in ("q", "target", "from", "to")}

    def day(text: str) -> date | None:
        try:
            return date.fromisoformat(text) if text else None
        except ValueError:
            return None

    rows = actions.ledger_search(
        rq.db,
        text=filters["q"],
        target=filters["target"],
        since=day(filters["from"]),
        until=day(filters["to"]),
        tz=schedule.zone(rq.config),
    )
    return rows, filters


def ledger_page(rq: Rq) -> Response:
    rows, filters = _ledger_rows(rq)
    tz = schedule.zone(rq.config)
    for r in rows:
        r["when"] = store.parse_iso(r["posted_at"]).astimezone(tz)
    return rq.render(
        "ledger.html",
        rows=rows[:500],
        total=len(rows),
        filters=filters,
        query=rq.request.url.query,
        targets=list(rq.config.targets),
        **_flash(rq),
    )


def ledger_export(rq: Rq) -> Response:
    fmt = rq.request.path_params["fmt"]
    if fmt not in ("csv", "json"):
        return Response(status_code=404)
    rows, _filters = _ledger_rows(rq)
    body = actions.ledger_export(rows, fmt)
    mime = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    return Response(
        body,
        media_type=mime,
        headers={"content-disposition": f'attachment; filename="poster-ledger-{stamp}.{fmt}"'},
    )


def ledger_proof(rq: Rq) -> Response:
    """The evidence bundle of one post (`poster proof POST-ID`), as a .zip download."""
    post_id = str(rq.request.path_params["post_id"])
    try:
        name, data, _warnings = actions.proof_zip(rq.config, rq.db, post_id)
    except UserError as exc:
        return rq.back("/ledger", error=str(exc))
    return Response(
        data,
        media_type="application/zip",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


def ledger_verify(rq: Rq) -> Response:
    ok, text = actions.ledger_verify(rq.config, rq.db)
    return rq.back("/ledger", message=text if ok else None, error=None if ok else text)


# -- settings -----------------------------------------------------------------------------------
def _settings_context(rq: Rq) -> dict[str, Any]:
    top, targets, policies = actions.settings(rq.config)
    return {
        "top": top,
        "targets": targets,
        "policies": policies,
        "languages": LANGUAGES,
        "watermark_looks": actions.WATERMARK_LOOKS,
        "signature_positions": actions.SIGNATURE_POSITIONS,
    }


def settings_page(rq: Rq) -> Response:
    return rq.render("settings.html", errors={}, form=None, **_settings_context(rq), **_flash(rq))


def settings_save(rq: Rq) -> Response:
    assert rq.form is not None
    form = {k: str(v) for k, v in rq.form.multi_items() if isinstance(v, str)}
    errors = actions.save_settings(rq.config, form)
    if errors:
        return rq.render(
            "settings.html",
            status=400,
            errors=errors,
            form=form,
            error=_("Not saved: please correct the fields marked below."),
            message=None,
            **_settings_context(rq),
        )
    return rq.back("/settings", message=_("Saved to {file}.").format(file=rq.config.path))


def credentials_save(rq: Rq) -> Response:
    assert rq.form is not None
    target = rq.request.path_params["target"]
    values = {k: str(v) for k, v in rq.form.multi_items() if isinstance(v, str) and k != "csrftoken"}
    try:
        message = actions.store_credentials(rq.config, target, values)
    except UserError as exc:
        return rq.back("/settings", error=str(exc))
    return rq.back("/settings", message=message)


# -- health -------------------------------------------------------------------------------------
def health_page(rq: Rq) -> Response:
    task = rq.state.tasks.latest("health")
    if task is None or (task.finished and task.language != rq.language):  # its words are in another language
        task = _start_health(rq)
    backup = rq.state.tasks.latest("backup")
    return rq.render(
        "health.html", task=task, backup=backup, backup_folder=default_backup_folder(rq), **_flash(rq)
    )


def health_check(rq: Rq) -> Response:
    _start_health(rq)
    return RedirectResponse("/health", status_code=303)


def _start_health(rq: Rq) -> Any:
    state = rq.state

    def work(task: Any) -> actions.Health:
        conf = state.config()
        conn = store.connect(conf.db_path)
        try:
            task.progress(0, 1, _("checking"))
            result = actions.health(conf, conn)
            task.progress(1, 1)
            return result
        finally:
            conn.close()

    return state.tasks.submit("health", work)


def backup_start(rq: Rq) -> Response:
    """`poster backup DEST` from the health page, as a task (a big archive takes a while)."""
    assert rq.form is not None
    dest = str(rq.form.get("dest") or "").strip()
    if not dest:
        return rq.back("/health", error=_("Choose a folder for the backup."))
    state = rq.state
    folder = Path(dest).expanduser()

    def work(task: Any) -> str:
        task.progress(0, 1, _("backing up"))
        message = actions.backup(state.config(), folder)
        task.progress(1, 1)
        return message

    state.tasks.submit("backup", work)
    return RedirectResponse("/health", status_code=303)


def default_backup_folder(rq: Rq) -> str:
    """Beside the data folder, so a backup is not inside what it copies."""
    return str(rq.config.data_dir.parent / "poster-backup")


# -- language -----------------------------------------------------------------------------------
def language(rq: Rq) -> Response:
    assert rq.form is not None
    chosen = str(rq.form.get("language") or "")
    back = str(rq.form.get("back") or "/")
    if not back.startswith("/") or back.startswith("//"):
        back = "/"
    response = RedirectResponse(back, status_code=303)
    if chosen in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, chosen, max_age=365 * 86400, samesite="strict", httponly=True)
    else:
        response.delete_cookie(LANGUAGE_COOKIE)
    return response
