"""Random visible watermark: text or the artist's logo repeated across the picture on a
lattice whose angle, spacing and phase are drawn per post, each mark nudged a little, then a
smooth random geometric warp of the whole overlay.

Why random and warped: a watermark repeated identically across a collection can be estimated
from many copies and removed (Dekel et al., CVPR 2017); one whose layout and shape differ in
every post cannot be averaged out. The layout comes only from the step seed (recorded in the
ledger), so it can be rebuilt exactly, and the layout itself identifies the post.

Why a lattice: marks of one size, angle and strength in an even pattern read as a
deliberate mark; the same number of marks scattered at random sizes, angles and opacities
reads as damage. The randomness that matters against removal (where every mark is, the
angle, the warp) stays.

Looks (`look`): presets for `density` (share of the picture covered by marks), `size` (mark
height, fraction of the short edge) and `opacity`; a value set in the step wins over the look.
Each mark is drawn light on dark areas and dark on light ones, with a thin contrasting edge.

Pixel art (`ctx.pixel_grid`): the overlay is drawn at the art's own resolution with hard
edges and enlarged by whole pixels, so every art pixel stays one uniform block; the warp
moves whole art pixels (nearest neighbour) instead of blending them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field, model_validator

from poster import fonts
from poster.errors import RenderError
from poster.i18n import _
from poster.protect import Step, StepContext, StepParams

REF_HEIGHT = 96  # stamps are drawn once at this text height, then scaled per placement

Look = Literal["subtle", "standard", "strong"]
# density, size range, opacity range. Measured costs (PSNR/SSIM): benchmarks/render.py.
LOOKS: dict[str, dict[str, Any]] = {
    "subtle": {"density": 0.06, "size": (0.030, 0.034), "opacity": (0.13, 0.16)},
    "standard": {"density": 0.12, "size": (0.040, 0.045), "opacity": (0.20, 0.24)},
    "strong": {"density": 0.22, "size": (0.055, 0.062), "opacity": (0.30, 0.36)},
}


class WatermarkParams(StepParams):
    look: Look = "standard"
    text: str | None = None  # default: "© <artist>"
    font: str | None = None  # TTF/OTF/TTC path (`#N`: a face of a collection); default: found
    image: str | None = None  # a logo (PNG with alpha) instead of text
    density: float | None = Field(None, ge=0.0, le=1.0)  # share of the image area covered by marks
    size: tuple[float, float] | None = None  # mark height range, fraction of the short edge
    opacity: tuple[float, float] | None = None
    rotation: float = Field(40.0, ge=0.0, le=180.0)  # max |angle| of the lattice, degrees
    jitter: float = Field(0.25, ge=0.0, le=1.0)  # how far marks stray from the lattice (1: anywhere)
    warp: float = Field(0.02, ge=0.0, le=0.1)  # displacement RMS, fraction of the short edge

    @model_validator(mode="after")
    def _ranges(self) -> WatermarkParams:
        for name in ("size", "opacity"):
            value = getattr(self, name)
            if value is None:
                continue
            lo, hi = value
            if not 0.0 < lo <= hi <= 1.0:
                raise ValueError(
                    _("{name}: need 0 < min <= max <= 1, got [{lo}, {hi}]").format(name=name, lo=lo, hi=hi)
                )
        return self

    def resolved(self) -> dict[str, Any]:
        """density, size and opacity: the step's own, else its look's."""
        preset = LOOKS[self.look]
        return {
            "density": self.density if self.density is not None else preset["density"],
            "size": tuple(self.size) if self.size is not None else preset["size"],
            "opacity": tuple(self.opacity) if self.opacity is not None else preset["opacity"],
        }


def _text_stamp(text: str, font: fonts.FontFile | None, light: bool, crisp: bool) -> Image.Image:
    font_obj = fonts.load(font, REF_HEIGHT)
    stroke = max(2, REF_HEIGHT // 24)
    bright, dark = (255, 255, 255, 255), (0, 0, 0, 255)
    fill, edge = (bright, dark) if light else (dark, bright)
    left, top, right, bottom = font_obj.getbbox(text, stroke_width=stroke)
    stamp = Image.new("RGBA", (right - left + 4, bottom - top + 4), (0, 0, 0, 0))
    draw = ImageDraw.Draw(stamp)
    if crisp:
        draw.fontmode = "1"
    draw.text((-left + 2, -top + 2), text, font=font_obj, fill=fill, stroke_width=stroke, stroke_fill=edge)
    # the edge at half strength: it separates the letters from busy art without a heavy outline
    arr = np.asarray(stamp).copy()
    is_edge = np.all(arr[..., :3] == edge[:3], axis=-1) if not crisp else np.zeros(arr.shape[:2], bool)
    arr[..., 3] = np.where(is_edge, arr[..., 3] // 2, arr[..., 3])
    return Image.fromarray(arr, "RGBA")


def _logo(path: str) -> Image.Image:
    try:
        with Image.open(Path(path).expanduser()) as im:
            logo = im.convert("RGBA")
    except OSError:
        raise RenderError(_("watermark image {path}: cannot be read").format(path=path)) from None
    box = logo.getchannel("A").getbbox()  # transparent margins would shrink the visible mark
    return logo.crop(box) if box else logo


def _paste_clipped(layer: Image.Image, stamp: Image.Image, x: int, y: int) -> None:
    """alpha_composite with a destination that may lie partly outside the layer."""
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(layer.width, x + stamp.width), min(layer.height, y + stamp.height)
    if x1 <= x0 or y1 <= y0:
        return
    layer.alpha_composite(stamp.crop((x0 - x, y0 - y, x1 - x, y1 - y)), (x0, y0))


def _mesh(
    size: tuple[int, int], rng: np.random.Generator, amount: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The warp's mesh: node x and y positions of the output grid, and where each node takes
    its pixels from (x, y). Node displacements are bounded to a third of a cell so quads
    never fold over."""
    w, h = size
    short = min(w, h)
    cell = max(16, short // 6)
    nx, ny = math.ceil(w / cell), math.ceil(h / cell)
    xs = np.linspace(0, w, nx + 1)
    ys = np.linspace(0, h, ny + 1)
    limit = cell / 3.0
    d = np.clip(rng.normal(0.0, amount * short, (ny + 1, nx + 1, 2)), -limit, limit)
    return xs, ys, xs[None, :] + d[..., 0], ys[:, None] + d[..., 1]


def warp(
    layer: Image.Image,
    rng: np.random.Generator,
    amount: float,
    resample: Image.Resampling = Image.Resampling.BILINEAR,
) -> Image.Image:
    """Smooth random warp: a mesh of quads whose corners are displaced at random."""
    if amount <= 0:
        return layer
    xs, ys, sx, sy = _mesh(layer.size, rng, amount)
    mesh = []
    for j in range(len(ys) - 1):
        for i in range(len(xs) - 1):
            box = (round(xs[i]), round(ys[j]), round(xs[i + 1]), round(ys[j + 1]))
            quad = (
                sx[j, i], sy[j, i],  # upper left
                sx[j + 1, i], sy[j + 1, i],  # lower left
                sx[j + 1, i + 1], sy[j + 1, i + 1],  # lower right
                sx[j, i + 1], sy[j, i + 1],  # upper right
            )  # fmt: skip
            mesh.append((box, tuple(float(v) for v in quad)))
    return layer.transform(layer.size, Image.Transform.MESH, mesh, resample)


class _Field:
    """Where `warp` takes each output pixel from, for any grid of output pixels: the same
    mesh (same generator draws), evaluated the way Pillow's MESH transform does (per quad a
    bilinear map, boxes on rounded node positions, pixel centres at +0.5). Coordinates are
    continuous (a pixel's centre at +0.5); evaluated per region, so a big image never needs
    full-size coordinate maps."""

    def __init__(self, size: tuple[int, int], rng: np.random.Generator, amount: float) -> None:
        self.size = size
        self.mesh = _mesh(size, rng, amount) if amount > 0 else None
        self.limit = max(16, min(size) // 6) / 3.0 + 1.0 if amount > 0 else 0.0  # farthest reach

    @staticmethod
    def _axis(nodes: np.ndarray, px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cell index and position across it (0..1) of pixel columns (or rows) `px`."""
        edges = np.round(nodes).astype(np.int64)
        cell = np.clip(np.searchsorted(edges, px, side="right") - 1, 0, len(nodes) - 2)
        frac = (px - edges[cell] + 0.5) / (edges[cell + 1] - edges[cell])
        return cell, frac.astype(np.float32)

    def at(self, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(source x, source y) of the output pixels in columns `px` × rows `py` (integer
        arrays; float32 results, rows × columns)."""
        if self.mesh is None:
            gx = px.astype(np.float32) + np.float32(0.5)
            gy = py.astype(np.float32) + np.float32(0.5)
            shape = (len(py), len(px))
            return np.broadcast_to(gx, shape), np.broadcast_to(gy[:, None], shape)
        xs, ys, sx, sy = self.mesh
        ci, fx = self._axis(xs, px)
        cj, fy = self._axis(ys, py)
        fy = fy[:, None]
        out = []
        for nodes in (np.broadcast_to(sx, (len(ys), len(xs))), np.broadcast_to(sy, (len(ys), len(xs)))):
            # bilinear is separable: along x on the node rows, then along y between them
            along = (nodes[:, ci] * (1.0 - fx) + nodes[:, ci + 1] * fx).astype(np.float32)
            out.append(along[cj] * (1.0 - fy) + along[cj + 1] * fy)
        return out[0], out[1]


COARSE = 8  # px: the grid on which a mark's reach is found before it is resampled


def _rotation(size: tuple[int, int], angle: float) -> tuple[tuple[int, int], tuple[float, ...]]:
    """Pillow's `rotate(angle, expand=True)`: the rotated image's size and the affine map from
    its continuous coordinates to the stamp's (same arithmetic as Pillow's, so the marks sit
    where they sat when they were rotated and pasted one by one)."""
    w, h = size
    a = -math.radians(angle)
    m = [
        round(math.cos(a), 15),
        round(math.sin(a), 15),
        0.0,
        round(-math.sin(a), 15),
        round(math.cos(a), 15),
        0.0,
    ]

    def apply(x: float, y: float) -> tuple[float, float]:
        return m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5]

    m[2], m[5] = apply(-w / 2.0, -h / 2.0)
    m[2] += w / 2.0
    m[5] += h / 2.0
    corners = [apply(x, y) for x, y in ((0, 0), (w, 0), (w, h), (0, h))]
    nw = math.ceil(max(x for x, _y in corners)) - math.floor(min(x for x, _y in corners))
    nh = math.ceil(max(y for _x, y in corners)) - math.floor(min(y for _x, y in corners))
    m[2], m[5] = apply(-(nw - w) / 2.0, -(nh - h) / 2.0)
    return (nw, nh), tuple(m)


def _draw_warped(layer: Image.Image, stamp: Image.Image, pl: dict[str, float], field: _Field) -> None:
    """Draw one mark (`stamp` at its final size, unrotated) onto `layer` rotated, placed and
    already warped, in one bicubic resampling of the stamp.

    Rotating each mark and then warping the whole layer resampled every pixel twice, most of
    them transparent: 14 rotations and a 2048² mesh warp were ~0.9 s of a heavy render. Here
    only the output pixels the mark reaches are computed (cv2.remap), in premultiplied alpha
    as Pillow resamples RGBA."""
    import cv2  # a dependency (also the face search's); imported here to keep start-up light

    (nw, nh), m = _rotation(stamp.size, pl["angle"])
    # where rotate + _paste_clipped put the rotated stamp's top-left corner
    ox, oy = round(pl["x"] - nw / 2), round(pl["y"] - nh / 2)
    reach = math.ceil(field.limit) + 3  # the warp moves pixels at most this far
    w, h = layer.size
    sw, sh = stamp.size

    def stamp_xy(qx: np.ndarray, qy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stamp pixel coordinates (cv2: pixel centres at integers) of layer points."""
        rx, ry = qx - np.float32(ox), qy - np.float32(oy)
        mx = np.float32(m[0]) * rx + np.float32(m[1]) * ry + np.float32(m[2] - 0.5)
        my = np.float32(m[3]) * rx + np.float32(m[4]) * ry + np.float32(m[5] - 0.5)
        return mx, my

    # Which output pixels can the mark reach? Asked first every COARSE px. Within a COARSE²
    # block every pixel is ≤ 1.42 COARSE from each corner, and the map stretches distances at
    # most 1.67× (a rotation, and a warp whose node shifts differ by ≤ 2/3 of a cell), so all
    # four corners of a block the mark reaches lie within 2.4 COARSE + 2 of the stamp.
    px = np.arange(max(0, ox - reach), min(w, ox + nw + reach), COARSE)
    py = np.arange(max(0, oy - reach), min(h, oy + nh + reach), COARSE)
    if px.size == 0 or py.size == 0:
        return
    cx, cy = stamp_xy(*field.at(px, py))
    slack = 3 * COARSE
    near = (cx > -slack) & (cx < sw + slack) & (cy > -slack) & (cy < sh + slack)
    rows = np.flatnonzero(near.any(axis=1))
    if rows.size == 0:
        return
    cols = np.flatnonzero(near.any(axis=0))
    x0, x1 = int(px[cols[0]]), min(w, int(px[cols[-1]]) + COARSE)
    y0, y1 = int(py[rows[0]]), min(h, int(py[rows[-1]]) + COARSE)
    qx, qy = field.at(np.arange(x0, x1), np.arange(y0, y1))
    mx, my = stamp_xy(qx, qy)
    # as before: a mark's part beyond the layer's edge (or beyond its rotated image) was cut
    # off before the warp, so it stays cut off
    rx, ry = qx - np.float32(ox), qy - np.float32(oy)
    kept = (qx >= 0) & (qx < w) & (qy >= 0) & (qy < h) & (rx >= 0) & (rx < nw) & (ry >= 0) & (ry < nh)
    mx[~kept] = -10.0  # sampled as transparent
    src = np.asarray(stamp.convert("RGBa"))
    canvas = np.zeros((y1 - y0, x1 - x0, 4), np.uint8)
    for j in rows:  # one remap per COARSE rows, over the columns the mark can reach there
        span = np.flatnonzero(near[max(0, j - 1) : j + 2].any(axis=0))
        if span.size == 0:
            continue
        r0 = int(py[j]) - y0
        r1 = min(y1 - y0, r0 + COARSE)
        c0, c1 = int(px[span[0]]) - x0, min(x1 - x0, int(px[span[-1]]) + COARSE - x0)
        canvas[r0:r1, c0:c1] = cv2.remap(
            src, mx[r0:r1, c0:c1], my[r0:r1, c0:c1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT
        )
    mark = Image.frombuffer("RGBA", (x1 - x0, y1 - y0), canvas.tobytes(), "raw", "RGBa", 0, 1)
    mark.putalpha(mark.getchannel("A").point(lambda v, o=pl["opacity"]: round(v * o)))
    layer.alpha_composite(mark, (x0, y0))


class Watermark(Step):
    name = "watermark"
    Params = WatermarkParams
    params: WatermarkParams

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self.params.resolved()}

    def _motif(self, ctx: StepContext, crisp: bool) -> tuple[Image.Image, Image.Image] | None:
        """(light, dark) stamps: text, or the logo twice (a logo keeps its own colours)."""
        p = self.params
        if p.image:
            ctx.record["motif"] = "logo"
            logo = _logo(p.image)
            return logo, logo
        default = f"© {ctx.artist}" if ctx.artist else "© all rights reserved"
        text = (p.text if p.text is not None else default).strip()
        if not text:
            return None
        font = fonts.choose(text, p.font)
        ctx.record["motif"] = "text"
        ctx.record["font"] = str(font) if font else "built-in"
        return _text_stamp(text, font, True, crisp), _text_stamp(text, font, False, crisp)

    def layout(self, size: tuple[int, int], ctx: StepContext, aspect: float) -> list[dict[str, float]]:
        """Placements (centre, height, angle, opacity) from the seed alone: a lattice with a
        random angle, spacing and phase, one mark per lattice point, each nudged by `jitter`."""
        p = self.params
        look = p.resolved()
        w, h = size
        short = min(w, h)
        rng = ctx.rng()
        lo, hi = look["size"]
        mean_h = short * (lo + hi) / 2.0
        if look["density"] <= 0:
            return []
        # a lattice cell holds one mark: cell area = mark area / density
        cell_area = mean_h * mean_h * aspect / look["density"]
        spacing_x = max(mean_h * aspect * 1.15, math.sqrt(cell_area * aspect / 1.5))
        spacing_y = cell_area / spacing_x
        angle = float(rng.uniform(0.35, 1.0) * p.rotation * rng.choice([-1.0, 1.0]))
        phase = rng.uniform(0.0, 1.0, 2)
        a = math.radians(angle)
        ca, sa = math.cos(a), math.sin(a)
        # lattice points in rotated coordinates covering the whole picture (half a cell beyond)
        reach = math.hypot(w, h) / 2 + max(spacing_x, spacing_y)
        rows = range(-math.ceil(reach / spacing_y), math.ceil(reach / spacing_y) + 1)
        cols = range(-math.ceil(reach / spacing_x), math.ceil(reach / spacing_x) + 1)
        out = []
        for r in rows:
            shift = 0.5 * (r % 2)  # brick pattern: alternate rows half a cell over
            for c in cols:
                u = (c + phase[0] + shift + p.jitter * rng.uniform(-0.5, 0.5)) * spacing_x
                v = (r + phase[1] + p.jitter * rng.uniform(-0.5, 0.5)) * spacing_y
                cx, cy = w / 2 + u * ca - v * sa, h / 2 + u * sa + v * ca
                if not (-spacing_x / 2 < cx < w + spacing_x / 2 and -spacing_y / 2 < cy < h + spacing_y / 2):
                    continue
                out.append(
                    {
                        "x": float(cx),
                        "y": float(cy),
                        "height": float(short * rng.uniform(lo, hi)),
                        "angle": float(angle + p.jitter * rng.uniform(-8.0, 8.0)),
                        "opacity": float(rng.uniform(*look["opacity"])),
                    }
                )
        return out[:2000]

    def apply(self, image: Image.Image, ctx: StepContext) -> Image.Image:
        grid = ctx.pixel_grid or 1
        motif = self._motif(ctx, crisp=grid > 1)
        if motif is None or self.params.resolved()["density"] == 0:
            return image
        # pixel art: the overlay is made at the art's own resolution, then enlarged by whole pixels
        small = (max(1, image.width // grid), max(1, image.height // grid))
        work = image if grid == 1 else image.resize(small, Image.Resampling.NEAREST)
        base = motif[0]
        places = self.layout(work.size, ctx, base.width / base.height)
        luma = np.asarray(work.convert("L").reduce(4) if min(work.size) >= 64 else work.convert("L"))
        fy, fx = luma.shape[0] / work.height, luma.shape[1] / work.width
        layer = Image.new("RGBA", work.size, (0, 0, 0, 0))
        # A second generator for the warp: the layout stays the same if warp is changed.
        warp_rng = np.random.default_rng([ctx.seed, 1])
        field = _Field(work.size, warp_rng, self.params.warp) if grid == 1 else None
        resample = Image.Resampling.NEAREST if grid > 1 else Image.Resampling.BICUBIC
        for pl in places:
            sy = min(luma.shape[0] - 1, max(0, int(pl["y"] * fy)))
            sx = min(luma.shape[1] - 1, max(0, int(pl["x"] * fx)))
            stamp = motif[0] if luma[sy, sx] < 150 else motif[1]  # light marks on dark art
            sh = max(4, round(pl["height"]))
            sw = max(4, round(stamp.width * sh / stamp.height))
            s = stamp.resize((sw, sh), Image.Resampling.NEAREST if grid > 1 else Image.Resampling.LANCZOS)
            if field is not None:
                _draw_warped(layer, s, pl, field)
                continue
            # pixel art: whole art pixels only (nearest neighbour), on the small art-sized layer
            s = s.rotate(pl["angle"], resample, expand=True)
            s.putalpha(s.getchannel("A").point(lambda v, o=pl["opacity"]: round(v * o)))
            _paste_clipped(layer, s, round(pl["x"] - s.width / 2), round(pl["y"] - s.height / 2))
        ctx.record["marks"] = len(places)
        if field is None:
            layer = warp(layer, warp_rng, self.params.warp, resample)
        if grid > 1:  # a partial art pixel at the right/bottom edge stays unmarked
            big = layer.resize((work.width * grid, work.height * grid), Image.Resampling.NEAREST)
            layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
            layer.paste(big, (0, 0))
        if image.mode == "RGBA":  # marks only over the art, never filling transparent areas
            alpha = image.getchannel("A")
            out = image.copy()
            out.alpha_composite(layer)
            out.putalpha(alpha)
            return out
        out = image.convert("RGBA")
        out.alpha_composite(layer)
        return out.convert(image.mode)
