"""poster.dense: a crop of smooth art is placed in its original from the pixels alone, under a
turn, a mirror, axes rescaled unequally and lossy compression."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from poster import dense, features
from tests.synthetic import painting

cv2 = pytest.importorskip("cv2")

ART = painting((1400, 1000), 7)  # soft circles on gradients: few strong keypoints


def _jpeg(im: Image.Image, q: int = 75) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _copy(
    box: tuple[int, int, int, int], turn: float, size: tuple[int, int], *, mirror: bool = False
) -> tuple[Image.Image, np.ndarray]:
    """The part `box` of ART turned by `turn` degrees about its centre, cut to the box, mirrored
    if asked, resized to `size` (each axis on its own), JPEG 75; and the true map from ART's
    pixels to the copy's."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    t = math.radians(turn)
    c, s = math.cos(t), math.sin(t)
    # copy-box px -> ART px: about the box's centre, turned
    back = np.array([[c, -s, cx - c * cx + s * cy], [s, c, cy - s * cx - c * cy], [0, 0, 1]]) @ np.array(
        [[1, 0, x0], [0, 1, y0], [0, 0, 1]], float
    )
    w, h = x1 - x0, y1 - y0
    cut = ART.transform((w, h), Image.Transform.AFFINE, tuple(back[:2].ravel()), Image.Resampling.BICUBIC)
    to_copy = np.diag([size[0] / w, size[1] / h, 1.0])
    if mirror:
        cut = cut.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        to_copy = np.array([[-1.0, 0.0, size[0]], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ to_copy
    return _jpeg(cut.resize(size, Image.Resampling.LANCZOS)), to_copy @ np.linalg.inv(back)


def _error(found: np.ndarray, truth: np.ndarray, size: tuple[int, int]) -> float:
    """Largest distance (copy px) between where the two maps put the copy's corners."""
    w, h = size
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], float)
    back = corners @ np.linalg.inv(truth).T  # the copy's corners in ART
    a = back @ found.T
    b = back @ truth.T
    return float(np.abs(a[:, :2] / a[:, 2:] - b[:, :2] / b[:, 2:]).max())


def test_the_art_has_too_few_strong_keypoints_for_the_features() -> None:
    assert features.few_strong(features.pair_features(ART))


@pytest.mark.parametrize(
    ("box", "turn", "size", "mirror"),
    [
        ((300, 200, 1066, 748), 0.0, (420, 240), False),  # 30 % of the area, axes 0.55 and 0.44
        ((700, 400, 1330, 900), 7.0, (500, 330), False),  # 22 %, turned 7°
        ((100, 350, 800, 900), -9.0, (560, 330), True),  # mirrored and turned the other way
    ],
)
def test_a_crop_is_placed_where_it_was_cut(
    box: tuple[int, int, int, int], turn: float, size: tuple[int, int], mirror: bool
) -> None:
    copy, truth = _copy(box, turn, size, mirror=mirror)
    found = dense.locate(ART, copy)
    assert found is not None
    assert found.mirrored is mirror and bool(np.linalg.det(found.homography[:2, :2]) < 0) is mirror
    assert found.correlation >= 0.95 > dense.MIN_CORRELATION
    assert _error(found.homography, truth, size) < 3.0


def test_a_crop_of_other_art_of_the_same_kind_correlates_less() -> None:
    copy, _ = _copy((300, 200, 1066, 748), 0.0, (420, 240))
    own = dense.locate(ART, copy)
    other = dense.locate(painting((1400, 1000), 8), copy)
    assert own is not None and (other is None or other.correlation < own.correlation - 0.1)


def test_a_flat_suspect_is_not_placed() -> None:
    """ECC cannot fit an image without any variation: no map, no exception."""
    assert dense.locate(ART, Image.new("RGB", (300, 200), (120, 130, 140))) is None
