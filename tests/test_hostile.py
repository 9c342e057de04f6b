"""Hostile and awkward input: every bad file is held with a one-line reason, the rest are posted.

The corpus is generated here (nothing big is committed): broken and misleading files, a
decompression bomb header, formats we do not post, animations, and the colour/mode cases
artists' tools really export.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poster import config
from tests.conftest import artwork, run_cli, unprivileged


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_16bit_rgb(arr: np.ndarray) -> bytes:
    """Pillow cannot write 16-bit RGB PNGs, so build one by hand."""
    h, w, _ = arr.shape
    raw = b"".join(b"\0" + arr[y].astype(">u2").tobytes() for y in range(h))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def png_bomb(w: int = 100_000, h: int = 100_000) -> bytes:
    """A valid PNG header declaring 10 gigapixels, with almost no data behind it."""
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def p3_icc() -> bytes:
    """A minimal ICC v2 matrix/TRC display profile with Display P3 primaries (D50-adapted)."""

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)

    desc_text = b"Test Display P3\0"
    desc = (
        b"desc\0\0\0\0" + struct.pack(">I", len(desc_text)) + desc_text + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
    )
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 563) + b"\0\0"  # gamma 2.2 (u8Fixed8)
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.5151, 0.2412, -0.0011)),
        (b"gXYZ", xyz(0.2920, 0.6922, 0.0419)),
        (b"bXYZ", xyz(0.1571, 0.0666, 0.7841)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0" + b"no copyright\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, blobs = b"", b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(blobs), len(body))
        blobs += body
    size = offset + len(blobs)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + b"mntrRGB XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + b"\0" * 4
        + b"\0" * 16
        + b"\0" * 28
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + blobs


def encoded(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def animated(fmt: str) -> bytes:
    frames = [artwork((300, 300), seed=i) for i in range(3)]
    return encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)


def status_by_file(cfg: config.Config) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for job in json.loads(run_cli("status", "--json", cfg=cfg)[1]):
        out.setdefault(str(job["file"]), []).append(job)
    return out


BAD: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty.png": (lambda: b"", "empty file"),
    "truncated.png": (lambda: encoded(artwork((400, 300)), "PNG")[:900], "truncated"),
    "notes.jpg": (lambda: b"Shopping list: eggs, milk\n" * 20, "not an image"),
    "bomb.png": (png_bomb, "decompression bomb"),
    "layers.psd": (lambda: b"8BPS" + b"\0" * 200, "Photoshop files are not posted"),
    "vector.svg": (lambda: b"<svg xmlns='http://www.w3.org/2000/svg'/>", "SVG files are not posted"),
    "anim.gif": (lambda: animated("GIF"), "animated image (3 frames)"),
    "anim.png": (lambda: animated("PNG"), "animated image (3 frames)"),
    "anim.webp": (lambda: animated("WEBP"), "animated image (3 frames)"),
    "tiny.png": (lambda: encoded(artwork((200, 120)), "PNG"), "too small"),
}


def good_files() -> dict[str, bytes]:
    base = artwork((480, 360), seed=11)
    rot = artwork((480, 320), seed=12)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    exif[0x8825] = {2: (35.0, 39.0, 29.0)}  # GPS latitude: must not survive
    palette_t = artwork((400, 300), mode="RGBA", seed=13).convert("P")
    arr16 = np.asarray(artwork((400, 300), seed=14), dtype=np.uint16) * 257
    p3 = Image.new("RGB", (400, 300), (200, 60, 60))
    return {
        "cmyk.jpg": encoded(base.convert("CMYK"), "JPEG", quality=95),
        "deep 16bit.png": png_16bit_rgb(arr16),
        "gray16.png": encoded(Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257), "PNG"),
        "palette#alpha.png": encoded(palette_t, "PNG"),
        "gray 100%.png": encoded(base.convert("L"), "PNG"),
        "rotated.jpg": encoded(rot, "JPEG", quality=92, exif=exif.tobytes()),
        "p3.png": encoded(p3, "PNG", icc_profile=p3_icc()),
        "日本語 ファイル.png": encoded(base, "PNG"),
        ".dotfile.png": encoded(artwork((400, 300), seed=15), "PNG"),
    }


@pytest.fixture
def hostile_run(home: config.Config) -> tuple[config.Config, str, str, int]:
    for name, (make, _) in BAD.items():
        (home.outbox / name).write_bytes(make())
    for name, data in good_files().items():
        (home.outbox / name).write_bytes(data)
    (home.outbox / "readme.txt").write_text("not art")
    old = 1_000_000_000
    for p in home.outbox.iterdir():
        os.utime(p, (old, old))
    code, out, err = run_cli("run", "--once", "--now", cfg=home)
    return home, out, err, code


def test_each_bad_file_is_held_with_its_reason_and_the_rest_are_posted(
    hostile_run: tuple[config.Config, str, str, int],
) -> None:
    cfg, out, err, code = hostile_run
    assert "Traceback" not in out + err
    jobs = status_by_file(cfg)
    for name, (_, reason) in BAD.items():
        assert name not in jobs, f"{name} has jobs"  # nothing recorded: a fixed copy is taken anew
        [line] = [ln for ln in err.splitlines() if ln.startswith(f"held     {name}: ")]
        assert reason in line, (name, line)
        note = (cfg.data_dir / "needs-attention" / f"{name}.reason.txt").read_text(encoding="utf-8")
        assert reason in note, (name, note)
    for name in good_files():
        assert {j["state"] for j in jobs[name]} == {"posted"}, (name, jobs[name])
    # the stray document is left where it was, not posted, not deleted
    assert (cfg.outbox / "readme.txt").exists()
    assert code == 1  # some files were held: a script can tell


def test_bad_files_are_kept_byte_for_byte(hostile_run: tuple[config.Config, str, str, int]) -> None:
    cfg, *_ = hostile_run
    for name, (make, _) in BAD.items():
        assert (cfg.data_dir / "needs-attention" / name).read_bytes() == make(), name
        assert not (cfg.outbox / name).exists()


def posted_image(cfg: config.Config, name: str, target: str = "pixiv") -> Image.Image:
    [job] = [j for j in status_by_file(cfg)[name] if j["target"] == target]
    path = Path(str(job["url"]).removeprefix("file://"))
    from urllib.parse import unquote

    return Image.open(unquote(str(path)))


def test_colour_and_orientation_are_converted(hostile_run: tuple[config.Config, str, str, int]) -> None:
    cfg, *_ = hostile_run
    rotated = posted_image(cfg, "rotated.jpg")
    assert rotated.size == (320, 480)  # EXIF orientation applied, then dropped
    assert not rotated.getexif()
    p3 = np.asarray(posted_image(cfg, "p3.png").convert("RGB"), dtype=np.int16)[150, 200]
    # P3 (200, 60, 60) is a more saturated red than sRGB (200, 60, 60): converted, not copied
    assert p3[0] >= 208 and p3[1] <= 50, p3
    deep = np.asarray(posted_image(cfg, "deep 16bit.png").convert("RGB"), dtype=np.int16)
    src = np.asarray(artwork((400, 300), seed=14), dtype=np.int16)
    assert np.abs(deep - src).mean() < 4  # 16-bit scaled to 8-bit, not clipped or wrapped
    cmyk = np.asarray(posted_image(cfg, "cmyk.jpg").convert("RGB"), dtype=np.int16)
    assert np.abs(cmyk - np.asarray(artwork((480, 360), seed=11), dtype=np.int16)).mean() < 20


def test_status_shows_one_line_reasons_without_traceback(
    hostile_run: tuple[config.Config, str, str, int],
) -> None:
    cfg, *_ = hostile_run
    code, out, err = run_cli("status", cfg=cfg)
    assert code == 0 and "Traceback" not in out + err
    assert f"{len(BAD)} artwork(s) not taken in" in out
    assert "  bomb.png: bomb.png: declared image size is too large (decompression bomb?)" in out


def test_file_being_written_waits_instead_of_failing(home: config.Config) -> None:
    import threading
    import time

    text = home.path.read_text().replace("stable_seconds = 5.0", "stable_seconds = 1.0")
    home.path.write_text(text)
    data = encoded(artwork((400, 300)), "PNG")
    target = home.outbox / "copying.png"
    done = threading.Event()

    def slow_copy() -> None:  # a slow network copy: a few bytes every 100 ms
        with target.open("wb") as fh:
            for i in range(0, len(data), 64):
                if done.is_set():
                    return
                fh.write(data[i : i + 64])
                fh.flush()
                time.sleep(0.1)

    writer = threading.Thread(target=slow_copy)
    writer.start()
    try:
        time.sleep(0.3)
        _code, out, _ = run_cli("run", "--once", cfg=home)
    finally:
        done.set()
        writer.join()
    assert "waiting  copying.png" in out
    assert target.exists()
    assert json.loads(run_cli("status", "--json", cfg=home)[1]) == []


def test_huge_sidecar_holds_the_artwork_and_keeps_the_sidecar(home: config.Config) -> None:
    artwork().save(home.outbox / "a.png")
    text = 'caption = "' + "x" * 100_000 + '"\n'
    (home.outbox / "a.toml").write_text(text)
    for p in home.outbox.iterdir():
        os.utime(p, (1_000_000_000, 1_000_000_000))
    code, _out, err = run_cli("run", "--once", "--now", cfg=home)
    assert code == 1 and "held     a.png: a.toml: sidecar is over the 65536-byte limit" in err
    assert status_by_file(home) == {}
    assert (home.data_dir / "needs-attention" / "a.toml").read_text() == text  # not lost


def test_unreadable_file_is_reported_and_others_continue(home: config.Config) -> None:
    import subprocess
    import sys

    artwork().save(home.outbox / "locked.png")
    artwork(seed=3).save(home.outbox / "fine.png")
    (home.outbox / "locked.png").chmod(0)
    for p in home.outbox.iterdir():
        os.utime(p, (1_000_000_000, 1_000_000_000))
    proc = subprocess.run(
        [
            *unprivileged(),
            sys.executable,
            "-m",
            "poster",
            "--config",
            str(home.path),
            "run",
            "--once",
            "--now",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert "locked.png: cannot read or archive: Permission denied" in out, out
    assert "Traceback" not in out
    (home.outbox / "locked.png").chmod(0o600)
    jobs = status_by_file(home)
    assert {j["state"] for j in jobs["fine.png"]} == {"posted"}
    assert "locked.png" not in jobs  # left untouched in the outbox, taken once readable
    assert (home.outbox / "locked.png").exists()


# -- terminal injection (issue 13, item 7) -------------------------------------------------------
# What a terminal acts on: ESC (screen clears, colours, window titles), BEL, CR, C1 CSI, a
# bidi override (makes `gnp.exe` read as `exe.png`), and a newline that starts a forged line.
FORGED = "posted    job 99 fake.png → x  file:///done"
RAW = ("\x1b", "\x07", "\r", "\x9b", "\u202e")


def assert_terminal_safe(text: str) -> None:
    assert not [c for c in RAW if c in text], repr(text)
    assert not [ln for ln in text.splitlines() if ln.startswith(("posted    job 99", "poster: INFO: forged"))]


def test_names_from_the_outbox_cannot_forge_lines_or_drive_the_terminal(home: config.Config) -> None:
    """A file name with a newline and escapes is printed escaped by `run`, `status` and the log
    lines on the terminal; `status --json` keeps the exact name."""
    evil = "evil\n" + FORGED.replace("/", "∕") + "\x1b[2J\x1b]0;pwned\x07\r\u202egnp\x9b.png"
    held = "held\n\x1b[31mposter: INFO: forged.png"
    artwork(seed=1).save(home.outbox / evil, "PNG")
    artwork(seed=2).save(home.outbox / held, "PNG")
    (home.outbox / held).with_suffix(".toml").write_text('rating = "spicy"\n', encoding="utf-8")
    for p in home.outbox.iterdir():
        os.utime(p, (1_000_000_000, 1_000_000_000))
    code, out, err = run_cli("-v", "run", "--once", "--now", cfg=home)  # -v: info log lines too
    assert code == 1, out + err
    for text in (out, err):
        assert_terminal_safe(text)
    assert "queued   evil\\nposted    job 99" in out
    assert "\\x1b[2J\\x1b]0;pwned\\x07\\r\\u202egnp\\x9b.png" in out
    assert (
        "held     held\\n\\x1b[31mposter: INFO: forged.png: held\\n\\x1b[31mposter: INFO: forged.toml" in err
    )
    assert "poster: INFO: held\\n\\x1b[31mposter: INFO: forged.png: held in" in err  # the log line
    code, out, err = run_cli("status", cfg=home)
    assert code == 0 and "evil\\nposted    job 99" in out and "held\\n\\x1b[31m" in out
    assert_terminal_safe(out + err)
    code, out, _err = run_cli("status", "--json", cfg=home)
    assert not [c for c in RAW if c in out]  # ESC, BEL, CR as JSON escapes; C1 and bidi too
    assert {j["file"] for j in json.loads(out)} == {evil}  # the exact name


def test_server_answers_cannot_drive_the_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A platform's error text ends up in a job's reason (printed by `run` and `status`) and in
    `doctor`'s report: escaped there too."""
    from tests.servers.misskey import MisskeyServer

    answer = {"error": {"message": "no\n\x1b[2J" + FORGED + "\x1b]0;t\x07\u202e", "code": "X\x9b"}}
    with MisskeyServer() as mk:
        monkeypatch.setenv("POSTER_MK_TOKEN", mk.token)
        home = tmp_path / "home"
        (home / "queue" / "outbox").mkdir(parents=True)
        target = f'[targets.mk]\nadapter = "misskey"\npolicy = "light"\ninstance = "{mk.url}"\n'
        (home / "config.toml").write_text('data_dir = "queue"\n' + target, encoding="utf-8")
        cfg = config.load(home / "config.toml")
        artwork((400, 300)).save(cfg.outbox / "a.png")
        os.utime(cfg.outbox / "a.png", (1_000_000_000, 1_000_000_000))
        mk.fail("POST", r"/api/drive/files/create", 400, body=answer)
        code, out, err = run_cli("run", "--once", "--now", cfg=cfg)
        assert code == 1 and "failed    job 1 a.png → mk  misskey refused" in out, out + err
        assert_terminal_safe(out + err)
        assert "no\\n\\x1b[2Jposted    job 99" in out
        code, out, err = run_cli("status", cfg=cfg)
        assert_terminal_safe(out + err)
        assert "no\\n\\x1b[2Jposted    job 99" in out
        mk.fail("POST", r"/api/i", 401, body=answer)
        code, out, err = run_cli("doctor", cfg=cfg)
        assert code != 0 and "mk (misskey): PROBLEM: misskey refused the access token" in out, out + err
        assert_terminal_safe(out + err)
