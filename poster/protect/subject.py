"""Where the art is quiet: a cost map for placing the signature away from the subject.

The map (at a small working size, so it costs little on big images) adds up:
- **edge energy**: gradient magnitude, spread a little — line work, texture, faces and
  lettering are busy; sky, walls and soft shading are quiet;
- **colour saliency** (frequency-tuned, Achanta et al. 2009): how far each area's colour is
  from the picture's mean colour — a character in a red coat on a green forest stands out
  even where its shading is smooth;
- **spectral-residual saliency** (Hou & Zhang 2007): what the picture's spectrum does not
  predict — isolated objects, small bright details;
- **faces** found by OpenCV's bundled Haar cascades (frontal, profile both ways, eyes
  → the face around them), as a hard exclusion with a margin. The cascades were trained on
  photographs: on drawn characters they find some faces, not all (`benchmarks/placement.py`
  measures them on hand-marked art); the saliency terms are what keeps the rest clear.

`place()` then slides the signature over every position inside the art (at least `margin`
in from the art's edges, on opaque pixels) and takes the quietest, with a mild preference for
the corners where signatures usually sit. The result depends on the image alone, so every
render of an artwork puts it in the same spot.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from typing import Any

import numpy as np
from PIL import Image

from poster.i18n import _

log = logging.getLogger(__name__)

WORK = 320  # long edge of the working copy for the cost map
FACE_WORK = 512  # long edge of the copy the face cascades look at (cost: ~0.2 s per cascade)
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels


def _box_blur(a: np.ndarray, r: int) -> np.ndarray:
    if r <= 0:
        return a
    k = 2 * r + 1
    p = np.pad(a, r, mode="edge")
    c = np.cumsum(p, axis=0, dtype=np.float64)
    c = np.concatenate([c[k - 1 : k], c[k:] - c[:-k]], axis=0)
    c = np.cumsum(c, axis=1)
    c = np.concatenate([c[:, k - 1 : k], c[:, k:] - c[:, :-k]], axis=1)
    return (c / (k * k)).astype(np.float32)


def _normalise(a: np.ndarray) -> np.ndarray:
    hi = float(np.percentile(a, 98))
    return np.clip(a / hi, 0.0, 1.0) if hi > 1e-6 else np.zeros_like(a)


def edge_energy(luma: np.ndarray) -> np.ndarray:
    gy, gx = np.gradient(luma)
    return _normalise(_box_blur(np.hypot(gx, gy), 2))


def colour_saliency(rgb: np.ndarray) -> np.ndarray:
    """Distance of each (blurred) colour from the mean colour, in a rough opponent space."""
    r, g, b = (rgb[..., i] for i in range(3))
    opp = np.stack([(r + g + b) / 3.0, r - g, (r + g) / 2.0 - b], axis=-1)
    blurred = np.stack([_box_blur(opp[..., i], 2) for i in range(3)], axis=-1)
    return _normalise(np.linalg.norm(blurred - opp.reshape(-1, 3).mean(axis=0), axis=-1))


def spectral_residual(luma: np.ndarray) -> np.ndarray:
    """Hou & Zhang's saliency, computed at 64 px wide as in the paper, brought back to size."""
    h, w = luma.shape
    s = 64 / max(h, w)
    small = np.asarray(
        Image.fromarray(luma.astype(np.float32), "F").resize((max(8, round(w * s)), max(8, round(h * s))))
    )
    f = np.fft.fft2(small)
    log_amp = np.log(np.abs(f) + 1e-6)
    residual = log_amp - _box_blur(log_amp.astype(np.float32), 1)
    sal = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(f)))) ** 2
    sal = _box_blur(sal.astype(np.float32), 2)
    return _normalise(np.asarray(Image.fromarray(sal, "F").resize((w, h), Image.Resampling.BILINEAR)))


@cache
def _cascades() -> list[tuple[str, Any]]:
    try:
        import cv2
    except ImportError:  # the detector is a refinement; the saliency map works without it
        log.warning("%s", _("OpenCV is not installed: faces are not looked for when placing the signature"))
        return []
    names = ("frontalface_default", "profileface", "eye")
    out = []
    for name in names:
        c = cv2.CascadeClassifier(f"{cv2.data.haarcascades}haarcascade_{name}.xml")
        if not c.empty():
            out.append((name, c))
    return out


# An artwork's targets are rendered in one process (poster.renderpool), and targets fitted to
# the same size (pixiv and Xfolio, usually) hand the cascades the same working image: their
# hits are remembered by that image's bytes, so the same pixels are never searched twice.
Hits = list[tuple[float, float, float, float]]
_FACE_MEMO: OrderedDict[bytes, Hits] = OrderedDict()
_FACE_MEMO_SIZE = 8
# Searches started ahead (`prefetch_faces`) and not finished yet, by the same key.
_FACE_PENDING: dict[bytes, Future[Hits]] = {}
_FACE_LOCK = threading.Lock()
_FACE_POOL: ThreadPoolExecutor | None = None


_LAST_WORKING: tuple[weakref.ref[Image.Image], tuple[np.ndarray, float, bytes]] | None = None


def _working(image: Image.Image) -> tuple[np.ndarray, float, bytes]:
    """(equalised grey working image, its scale, memo key) for the face search; the last
    image's is kept (images are never changed in place), so `faces` after `prefetch_faces`
    on the same image does not shrink and hash it again."""
    global _LAST_WORKING
    last = _LAST_WORKING
    if last is not None and last[0]() is image:
        return last[1]
    found = _make_working(image)
    _LAST_WORKING = (weakref.ref(image), found)
    return found


def _make_working(image: Image.Image) -> tuple[np.ndarray, float, bytes]:
    import cv2

    w, h = image.size
    r = min(1.0, FACE_WORK / max(w, h))
    grey = image.convert("L").resize((max(1, round(w * r)), max(1, round(h * r))), Image.Resampling.BILINEAR)
    g = cv2.equalizeHist(np.asarray(grey))
    return g, r, hashlib.blake2b(g.tobytes(), digest_size=16, person=b"%dx%d" % g.shape).digest()


def _remember(key: bytes, hits: Hits) -> None:
    with _FACE_LOCK:
        _FACE_MEMO[key] = hits
        while len(_FACE_MEMO) > _FACE_MEMO_SIZE:
            _FACE_MEMO.popitem(last=False)


def prefetch_faces(image: Image.Image) -> None:
    """Start the face search for `image` in a background thread; `faces` on the same pixels
    then waits for it instead of searching again.

    The cascades (~0.5 s at 2048 px) spend their time in OpenCV, which releases the GIL: a
    render starts them as soon as the art is fitted and its noise and watermark steps run
    meanwhile. The answer is the one `faces` would find itself, so nothing posted changes."""
    global _FACE_POOL
    cascades = _cascades()
    if not cascades:
        return
    g, _r, key = _working(image)
    with _FACE_LOCK:
        if key in _FACE_MEMO or key in _FACE_PENDING:
            return
        if _FACE_POOL is None:
            _FACE_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="poster-faces")
        future = _FACE_POOL.submit(_face_hits, g, cascades)
        _FACE_PENDING[key] = future

    def settle(done: Future[Hits]) -> None:
        """Into the memo (or forgotten, if it failed: `faces` then searches itself)."""
        if done.exception() is None:
            _remember(key, done.result())  # before it leaves pending: never in neither
        with _FACE_LOCK:
            _FACE_PENDING.pop(key, None)

    future.add_done_callback(settle)


def faces(image: Image.Image) -> list[Box]:
    """Face boxes (image pixels) found by the bundled cascades; eyes stand for the face
    around them (an eye box grown to about a face)."""
    cascades = _cascades()
    if not cascades:
        return []
    g, r, key = _working(image)
    with _FACE_LOCK:
        hits = _FACE_MEMO.get(key)
        pending = _FACE_PENDING.get(key)
    if hits is None and pending is not None:
        try:
            hits = pending.result()
        except Exception:  # searched again below, where an error reaches the caller
            log.debug("background face search failed", exc_info=True)
    if hits is None:
        hits = _face_hits(g, cascades)
        _remember(key, hits)
    return [(int(x0 / r), int(y0 / r), int(x1 / r), int(y1 / r)) for x0, y0, x1, y1 in hits]


def _face_hits(g: np.ndarray, cascades: list[tuple[str, Any]]) -> Hits:
    """Face boxes in the working image `g` (equalised grey)."""
    import cv2

    short = min(g.shape)
    found: Hits = []
    for name, cascade in cascades:
        eye = name == "eye"
        # faces below ~4 % of the short edge are too small to matter for a signature
        min_side = max(12, int(short * (0.02 if eye else 0.04)))
        views = [(g, False), (cv2.flip(g, 1), True)] if name == "profileface" else [(g, False)]
        for view, flipped in views:
            hits = cascade.detectMultiScale(
                view, scaleFactor=1.2, minNeighbors=4, minSize=(min_side, min_side)
            )
            # OpenCV's parallel search returns its hits in no fixed order: sorted, the same
            # image always gives the same list (the cost map does not care; callers compare)
            for x, y, bw, bh in sorted(tuple(int(v) for v in hit) for hit in hits):
                if flipped:
                    x = view.shape[1] - x - bw
                if eye:  # an eye is about a quarter of the face's width, in its upper half
                    x, y, bw, bh = x - 1.5 * bw, y - bh, 4 * bw, 4 * bh
                found.append((float(x), float(y), float(x + bw), float(y + bh)))
    return found


def cost_map(image: Image.Image, *, with_faces: bool = True) -> tuple[np.ndarray, float, list[Box]]:
    """(cost in 0..~1 per working pixel, working scale, face boxes in image pixels).
    Transparent pixels cost nothing here; `place` keeps the signature off them."""
    w, h = image.size
    s = min(1.0, WORK / max(w, h))
    rgb = image if image.mode == "RGB" else image.convert("RGB")  # convert would copy an RGB image
    small = rgb.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BOX)
    rgb = np.asarray(small, dtype=np.float32)
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    cost = 0.5 * edge_energy(luma) + 0.25 * colour_saliency(rgb) + 0.25 * spectral_residual(luma)
    boxes = faces(image) if with_faces else []
    for x0, y0, x1, y1 in boxes:
        pad = 0.25 * max(x1 - x0, y1 - y0)  # keep a margin around the face too
        cost[
            max(0, int((y0 - pad) * s)) : max(0, math.ceil((y1 + pad) * s)),
            max(0, int((x0 - pad) * s)) : max(0, math.ceil((x1 + pad) * s)),
        ] = 10.0
    return cost, s, boxes


def art_mask(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """1.0 where a `size` copy of the image is art: opaque and not the plain colour of its
    border (a margin, a flat backdrop around a cut-out character); 0.0 elsewhere."""
    if image.mode == "RGB":  # opaque: shrink the three channels, then add the alpha (the same
        # pixels as shrinking an RGBA copy, without a full-size RGBA copy and its premultiply)
        rgb = np.asarray(image.resize(size, Image.Resampling.BOX), dtype=np.int16)
        small = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.int16)], axis=-1)
    else:
        small = np.asarray(image.convert("RGBA").resize(size, Image.Resampling.BOX), dtype=np.int16)
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]])
    art = small[..., 3] > 242
    if float(border[:, :3].std(axis=0).max()) < 6.0:  # a plain border: its colour is backdrop
        art &= np.abs(small[..., :3] - np.median(border[:, :3], axis=0)).max(axis=-1) > 12
    return art.astype(np.float32)


def _window_sums(a: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """Sum of `a` over every kh×kw window (valid positions only)."""
    c = np.pad(a.astype(np.float64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return c[kh:, kw:] - c[:-kh, kw:] - c[kh:, :-kw] + c[:-kh, :-kw]


def place(
    image: Image.Image,
    stamp: tuple[int, int],
    *,
    content: Box,
    margin: int,
    cost: tuple[np.ndarray, float, list[Box]] | None = None,
) -> tuple[int, int]:
    """Top-left corner for a `stamp`-sized signature: the quietest spot inside `content`
    (at least `margin` px in from its edges), on the art (`art_mask`), near a corner if
    the art allows."""
    cmap, s, _faces = cost if cost is not None else cost_map(image)
    ch, cw = cmap.shape
    sw, sh = stamp
    # the signature's footprint plus a halo (a signature touching a face is on the face)
    halo = 0.3 * sh
    kw = max(1, min(cw, math.ceil((sw + 2 * halo) * s)))
    kh = max(1, min(ch, math.ceil((sh + 2 * halo) * s)))
    mean_cost = _window_sums(cmap, kh, kw) / (kw * kh)
    # on the art only: not on transparency, not on a plain backdrop of the border's colour
    # (a signature there could be cropped off without cutting into the picture)
    cover = _window_sums(art_mask(image, (cw, ch)), kh, kw) / (kw * kh)
    mean_cost = mean_cost + np.where(cover > 0.9, 0.0, 100.0)
    # window index (j, i) ↔ stamp top-left at image ((i / s) + halo, (j / s) + halo)
    js, is_ = np.mgrid[0 : mean_cost.shape[0], 0 : mean_cost.shape[1]]
    x = is_ / s + halo
    y = js / s + halo
    x0, y0, x1, y1 = content
    inside = (x >= x0 + margin) & (y >= y0 + margin) & (x + sw <= x1 - margin) & (y + sh <= y1 - margin)
    if not inside.any():  # the art is too small for the margin: centre of the bottom edge
        return max(0, (x0 + x1 - sw) // 2), max(0, y1 - margin - sh)
    # a mild pull towards the corners (bottom ones first), where signatures usually sit
    cx, cy = x + sw / 2, y + sh / 2
    dx = np.minimum(cx - x0, x1 - cx) / max(1, x1 - x0)
    dy = np.minimum(cy - y0, y1 - cy) / max(1, y1 - y0)
    top = (cy < (y0 + y1) / 2).astype(np.float32)
    total = mean_cost + 0.25 * (dx + dy) + 0.05 * top
    total = np.where(inside, total, np.inf)
    j, i = np.unravel_index(int(np.argmin(total)), total.shape)
    return round(float(x[j, i])), round(float(y[j, i]))
