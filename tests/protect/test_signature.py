"""The signature: inside the art, where it is quiet, never on the marked subject; pinned
corners; faces kept clear; the font found for any script."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from poster.errors import RenderError
from poster.protect import StepContext, build_step, subject
from tests.conftest import data_path
from tests.synthetic import painting

Box = tuple[int, int, int, int]


def ctx(seed: int = 1, artist: str = "Taro Yamada", **kw: object) -> StepContext:
    return StepContext(seed=seed, artist=artist, **kw)  # type: ignore[arg-type]


def changed_box(before: Image.Image, after: Image.Image) -> Box:
    diff = np.any(np.asarray(before.convert("RGB")) != np.asarray(after.convert("RGB")), axis=-1)
    ys, xs = np.nonzero(diff)
    assert ys.size, "the signature drew nothing"
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def scene(size: tuple[int, int], subject_box: Box, kind: str, seed: int) -> Image.Image:
    """A quiet backdrop (soft gradient, a little grain) with a subject in `subject_box`:
    'busy' (a detailed painting), 'figure' (a smooth figure in a colour of its own, with a
    face-like detail), or 'lines' (line art: dark strokes on the backdrop's colours)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([90 + 60 * y / h, 140 + 40 * x / w, 120 + 30 * np.sin(x / w * 3)], axis=-1)
    base += rng.normal(0, 1.5, base.shape)
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    x0, y0, x1, y1 = subject_box
    if kind == "busy":
        im.paste(painting((x1 - x0, y1 - y0), seed), (x0, y0))
    elif kind == "figure":
        d = ImageDraw.Draw(im)
        d.ellipse((x0, y0 + (y1 - y0) // 3, x1, y1), fill=(200, 40, 50))  # body
        fx0, fx1 = x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4
        d.ellipse((fx0, y0, fx1, y0 + (y1 - y0) // 2), fill=(240, 205, 180))  # head
        ex = (fx1 - fx0) // 5
        for cx in (fx0 + 2 * ex, fx1 - 2 * ex):  # eyes and a mouth
            d.ellipse(
                (cx - ex // 2, y0 + (y1 - y0) // 6, cx + ex // 2, y0 + (y1 - y0) // 4), fill=(30, 30, 60)
            )
        d.line(
            (fx0 + 2 * ex, y0 + (y1 - y0) // 3, fx1 - 2 * ex, y0 + (y1 - y0) // 3),
            fill=(120, 20, 20),
            width=3,
        )
    else:
        d = ImageDraw.Draw(im)
        for _ in range(40):
            pts = [(rng.uniform(x0, x1), rng.uniform(y0, y1)) for _ in range(4)]
            d.line(pts, fill=(20, 20, 20), width=int(rng.integers(2, 5)))
    return im


# subject boxes where an artist's subject sits, the bottom corners (where a signature goes
# first) included
CASES = [
    ((900, 1200), (250, 450, 650, 1100), "busy"),
    ((900, 1200), (500, 700, 900, 1200), "busy"),  # the subject fills the bottom-right corner
    ((900, 1200), (0, 760, 430, 1200), "figure"),  # ... the bottom-left
    ((1200, 800), (600, 350, 1200, 800), "figure"),
    ((1200, 800), (100, 200, 1100, 800), "lines"),  # a wide subject along the whole bottom
    ((800, 800), (300, 300, 800, 800), "lines"),
]


@pytest.mark.parametrize(("size", "box", "kind"), CASES)
def test_the_signature_never_overlaps_the_marked_subject(size: tuple[int, int], box: Box, kind: str) -> None:
    im = scene(size, box, kind, seed=sum(box))
    for artist in ("Taro Yamada", "A"):  # a long and a short signature
        out = build_step("signature", {}, "t").apply(im, ctx(artist=artist))
        drawn = changed_box(im, out)
        assert not overlaps(drawn, box), (kind, box, drawn)
        # still inside the picture, at least the margin in: a crop must cut art to remove it
        margin = int(0.03 * min(size)) - 1
        assert drawn[0] >= margin and drawn[1] >= margin
        assert drawn[2] <= size[0] - margin and drawn[3] <= size[1] - margin


def test_the_spot_depends_on_the_image_alone() -> None:
    im = scene((900, 1200), (250, 450, 650, 1100), "busy", 1)
    step = build_step("signature", {}, "t")
    spots = {tuple(changed_box(im, step.apply(im, ctx(seed=s)))) for s in (1, 2, 3)}
    assert len(spots) == 1  # preview and post put it in the same place, whatever the seed


def test_faces_found_by_the_detector_are_kept_clear() -> None:
    """A face in the quietest, most corner-like spot: the planner must go elsewhere."""
    im = Image.new("RGB", (800, 600), (120, 140, 160))
    cost, s, _ = subject.cost_map(im, with_faces=False)
    stamp = (160, 30)
    content = (0, 0, 800, 600)
    free = subject.place(im, stamp, content=content, margin=20, cost=(cost, s, []))
    face = (free[0] - 40, free[1] - 60, free[0] + 200, free[1] + 90)
    marked = cost.copy()
    x0, y0, x1, y1 = (int(v * s) for v in face)
    marked[max(0, y0) : y1, max(0, x0) : x1] = 10.0  # as cost_map marks a detected face
    x, y = subject.place(im, stamp, content=content, margin=20, cost=(marked, s, [face]))
    assert not overlaps((x, y, x + stamp[0], y + stamp[1]), face)


def test_a_photographed_face_is_detected() -> None:
    """The bundled cascades on a real face (a generated one would prove nothing)."""
    with Image.open(data_path("kodim04.jpg")) as im:
        boxes = subject.faces(im.convert("RGB"))
    face = (106, 240, 403, 557)  # marked by hand
    assert any(overlaps(b, face) for b in boxes)


def test_the_same_pixels_are_searched_for_faces_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Targets fitted to the same size reuse the cascades' hits; other pixels (another size,
    a changed picture) are searched again, each answer in its own image's pixels."""
    monkeypatch.setattr(subject, "_FACE_MEMO", type(subject._FACE_MEMO)())
    runs: list[tuple[int, ...]] = []
    search = subject._face_hits
    monkeypatch.setattr(subject, "_face_hits", lambda g, c: runs.append(g.shape) or search(g, c))
    with Image.open(data_path("kodim04.jpg")) as im:
        photo = im.convert("RGB")
    first = subject.faces(photo)
    assert first and subject.faces(photo.copy()) == first and len(runs) == 1
    face = (106, 240, 403, 557)  # marked by hand
    double = subject.faces(photo.resize((photo.width * 2, photo.height * 2)))
    assert len(runs) == 2 and any(overlaps(b, tuple(2 * v for v in face)) for b in double)
    subject.faces(photo.transpose(Image.Transpose.FLIP_TOP_BOTTOM))
    assert len(runs) == 3


# Real art from tests/data with subjects and faces marked by hand (image pixels of those copies).
MARKED = [
    # the witch (with her hat) and the cat on the forest floor
    ("revoy_forest_painting.jpg", [(558, 897, 810, 1313), (295, 1237, 460, 1313)]),
    # five faces (the cat's too)
    (
        "revoy_chaosah_family.jpg",
        [
            (238, 288, 354, 433),
            (368, 433, 498, 578),
            (556, 462, 657, 607),
            (678, 462, 816, 607),
            (613, 707, 765, 823),
        ],
    ),
    ("sachi_standing_alpha.webp", [(1008, 833, 1579, 1447)]),  # her face
    ("kodim04.jpg", [(106, 240, 403, 557)]),  # a photographed face
]


@pytest.mark.parametrize(("name", "boxes"), MARKED, ids=[m[0] for m in MARKED])
def test_on_real_art_the_signature_never_overlaps_a_marked_subject(name: str, boxes: list[Box]) -> None:
    with Image.open(data_path(name)) as im:
        image = im.convert("RGBA") if "A" in im.getbands() else im.convert("RGB")
    c = ctx(artist="David Revoy")
    out = build_step("signature", {}, "t").apply(image, c)
    drawn = changed_box(image, out)
    assert not any(overlaps(drawn, b) for b in boxes), (name, drawn)


@pytest.mark.parametrize("corner", ["bottom-right", "bottom-left", "top-right", "top-left"])
def test_a_pinned_signature_sits_in_its_corner_at_the_margin(corner: str) -> None:
    im = Image.new("RGB", (1000, 800), (90, 120, 150))
    out = build_step("signature", {"position": corner, "margin": 0.05}, "t").apply(im, ctx())
    x0, y0, x1, y1 = changed_box(im, out)
    m = 40  # 5 % of the short edge
    if corner.endswith("right"):
        assert abs((1000 - x1) - m) <= 3
    else:
        assert abs(x0 - m) <= 3
    if corner.startswith("bottom"):
        assert abs((800 - y1) - m) <= 3
    else:
        assert abs(y0 - m) <= 3


def test_dark_name_on_light_art_light_name_on_dark_art() -> None:
    for colour, dark_text in (((235, 235, 230), True), ((25, 30, 40), False)):
        im = Image.new("RGB", (800, 600), colour)
        out = build_step("signature", {"opacity": 1.0}, "t").apply(im, ctx())
        box = changed_box(im, out)
        luma = np.asarray(out.convert("L").crop(box), dtype=np.float32)
        # the letters' fill is the majority of drawn pixels
        drawn = luma[np.abs(luma - np.mean(colour)) > 40]
        assert (np.median(drawn) < 100) == dark_text


def test_the_record_names_the_box_and_the_font() -> None:
    im = scene((900, 1200), (250, 450, 650, 1100), "busy", 2)
    c = ctx()
    out = build_step("signature", {}, "t").apply(im, c)
    assert tuple(c.record["box"])[:2] <= changed_box(im, out)[:2]
    assert c.record["font"] == "built-in" and c.record["placed"] == "auto"


def test_a_name_no_font_has_is_a_clear_error() -> None:
    name = "\U0010fffd"  # a private-use character no font maps
    with pytest.raises(RenderError, match="no installed font can draw"):
        build_step("signature", {}, "t").apply(painting((300, 300)), ctx(artist=name))


def test_signature_on_pixel_art_keeps_whole_art_pixels() -> None:
    rng = np.random.default_rng(3)
    art = rng.integers(0, 4, (60, 80))
    palette = np.array([[20, 20, 30], [200, 60, 40], [60, 160, 80], [230, 220, 200]], dtype=np.uint8)
    im = Image.fromarray(palette[art], "RGB").resize((80 * 8, 60 * 8), Image.Resampling.NEAREST)
    out = build_step("signature", {}, "t").apply(im, ctx(pixel_grid=8))
    a = np.asarray(out, dtype=np.int16).reshape(60, 8, 80, 8, 3)
    assert (a == a[:, :1, :, :1]).all()  # every 8×8 block is still one colour
    assert out.tobytes() != im.tobytes()


def test_a_face_search_started_ahead_is_waited_for_not_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    """render starts the search when the art is fitted (`prefetch_faces`); the signature then
    takes that answer, found in the background thread, once — and the same answer as its own."""
    import threading

    monkeypatch.setattr(subject, "_FACE_MEMO", type(subject._FACE_MEMO)())
    threads: list[str] = []
    search = subject._face_hits

    def counted(g: np.ndarray, c: list[tuple[str, object]]) -> subject.Hits:
        threads.append(threading.current_thread().name)
        return search(g, c)

    monkeypatch.setattr(subject, "_face_hits", counted)
    with Image.open(data_path("kodim04.jpg")) as im:
        photo = im.convert("RGB")
    subject.prefetch_faces(photo)
    subject.prefetch_faces(photo.copy())  # already under way: not started twice
    ahead = subject.faces(photo)
    assert len(threads) == 1 and threads[0].startswith("poster-faces")
    subject._FACE_MEMO.clear()
    assert subject.faces(photo) == ahead and len(threads) == 2  # searched in this thread: same boxes
    assert not subject._FACE_PENDING


def test_a_failed_background_face_search_is_done_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subject, "_FACE_MEMO", type(subject._FACE_MEMO)())
    search = subject._face_hits
    calls: list[int] = []

    def flaky(g: np.ndarray, c: list[tuple[str, object]]) -> subject.Hits:
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("the background thread's allocation")
        return search(g, c)

    monkeypatch.setattr(subject, "_face_hits", flaky)
    with Image.open(data_path("kodim04.jpg")) as im:
        photo = im.convert("RGB")
    subject.prefetch_faces(photo)
    assert subject.faces(photo) and len(calls) == 2


def test_render_searches_the_fitted_art_for_faces_in_the_background(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The heavy render's face search runs beside its noise and watermark steps, once."""
    import threading

    from poster import config, policies
    from poster.platforms.x import XAdapter
    from poster.render import render

    monkeypatch.setattr(subject, "_FACE_MEMO", type(subject._FACE_MEMO)())
    threads: list[str] = []
    search = subject._face_hits
    monkeypatch.setattr(
        subject, "_face_hits", lambda g, c: threads.append(threading.current_thread().name) or search(g, c)
    )
    cfg = config.parse(
        tmp_path / "none.toml",
        {
            "artist": "Taro Yamada",
            "data_dir": str(tmp_path),
            "targets": {"x": {"adapter": "local", "policy": "heavy"}},
        },
    )
    with Image.open(data_path("kodim04.jpg")) as im:
        photo = im.convert("RGB").resize((1024, 1536))
    r = render(
        photo, source_format="JPEG", policy=policies.build(cfg, "heavy"), caps=XAdapter.capabilities,
        key=bytes(range(32)), mark_id=7, artist="Taro Yamada", seed=3,
    )  # fmt: skip
    assert len(threads) == 1 and threads[0].startswith("poster-faces")
    signature = next(s for s in r.info["steps"] if s["use"] == "signature")
    assert signature["chosen"]["faces"] >= 1  # the photographed face, found ahead
