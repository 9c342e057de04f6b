"""Dense registration: where a copy of smooth art sits in its original, found from the pixels.

Local features (poster.features) need corners. Pale flat art and soft paintings have few
(features.STRONG_RESPONSE: 4 and 16-85 strong keypoints in the test set's castles and
synthetic paintings, against 700-2000 in drawn art), and on an X copy of such art most of the
suspect's keypoints are the platform's grain and the post's own watermark letters, which the
original does not have: a crop of it reaches neither MIN_INLIERS in the index nor in a direct
match (benchmarks/TRACE_RESULTS.md, section 13). Its pixels still agree with the original's,
so the geometry is found from them, for the hidden ID read with the original to confirm:

1. **Coarse search** (`locate`): the suspect, mirrored or not, turned by each of TURNS and
   scaled so that its long edge spans SPAN fractions of the original's, is slid over the
   original at COARSE_LONG px (OpenCV's matchTemplate, normalised correlation), the original
   padded by PAD so that a whole picture with a thin margin has a place too. This is a
   similarity; a suspect that is more than the art (a caption band, a collage) has no good
   place in it and is searched part by part by the caller (features.panels).
2. **Refinement**: ECC (Evangelidis & Psarakis 2008, OpenCV findTransformECC) fits an affine
   map at REFINE_LONG px on the suspect's side: lossy rescaling stretches a copy's two axes
   differently, and the similarity of step 1 is near the true map, not on it (the hidden ID
   read failed through the coarse map of 3 of 3 centre crops, and read through the refined
   one).

A correlation is no evidence of the artwork by itself: a smooth gradient matches many smooth
gradients. The caller names nothing from it; it only tells where to read the hidden ID.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

COARSE_LONG = 128  # the original's long edge (px) in the coarse search
REFINE_LONG = 512  # the suspect's long edge (px) in the refinement
MIN_TEMPLATE = 12  # smallest side (coarse px) of the slid suspect
TURNS = (0.0, -5.0, 5.0, -10.0, 10.0, -2.5, 2.5, -7.5, 7.5)  # degrees, the issue's ±10°
# the suspect's long edge as a share of the original's: a crop of 20 % of the area at an
# extreme aspect ratio spans ~0.3 of it, the whole picture 1, and the whole picture fitted
# into a collage's cell or a frame with a margin a little more
SPAN = tuple(float(v) for v in np.exp(np.linspace(math.log(0.3), math.log(1.1), 24)))
PAD = 0.06  # of the original's long edge, added around it (edge pixels repeated) for those
ROTATED_MARGIN = 0.1  # share of a turned template's short side cut off (the corners it turns in)
ECC_ITERATIONS = 60
ECC_EPS = 1e-5
ECC_SMOOTH = 5  # Gaussian filter (px) ECC applies to both images: grain and JPEG blocks
MIN_CORRELATION = 0.8  # refined correlation below which no read is attempted (a cost bound)


@dataclass(frozen=True)
class Located:
    """Where a suspect sits in an original."""

    homography: np.ndarray  # 3 x 3: original px -> suspect px (negative determinant: mirrored)
    correlation: float  # ECC's correlation of the two images under the refined map
    mirrored: bool


def _cv2() -> Any:
    from poster import features

    return features._cv2()


def _grey(image: Image.Image, long: int) -> tuple[np.ndarray, float]:
    """Float grey at most `long` px on the long edge, and the scale applied."""
    from poster import features

    g, s = features.grey(image, long)
    return g.astype(np.float32), s


def _coarse(
    cv2: Any, host: np.ndarray, suspect: np.ndarray
) -> tuple[float, bool, float, float, tuple[int, int], int, tuple[int, int]] | None:
    """(correlation, mirrored, turn, scale, place, margin, template size) of the best
    placement of `suspect` in `host` (both grey)."""
    best: tuple[float, bool, float, float, tuple[int, int], int, tuple[int, int]] | None = None
    long = max(host.shape)
    pad = round(PAD * long)
    host = cv2.copyMakeBorder(host, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    hh, hw = host.shape
    for mirrored in (False, True):
        src = np.ascontiguousarray(suspect[:, ::-1]) if mirrored else suspect
        for deg in TURNS:
            for share in SPAN:
                s = share * long / max(src.shape)
                tw, th = round(src.shape[1] * s), round(src.shape[0] * s)
                if min(tw, th) < MIN_TEMPLATE or tw > hw or th > hh:
                    continue
                t = cv2.resize(src, (tw, th), interpolation=cv2.INTER_AREA)
                m = 0
                if deg:
                    turn = cv2.getRotationMatrix2D((tw / 2, th / 2), deg, 1.0)
                    t = cv2.warpAffine(t, turn, (tw, th), borderMode=cv2.BORDER_REFLECT)
                    m = int(ROTATED_MARGIN * min(tw, th))
                    t = t[m : th - m, m : tw - m]
                score = cv2.matchTemplate(host, t, cv2.TM_CCOEFF_NORMED)
                _, top, _, place = cv2.minMaxLoc(score)
                if np.isfinite(top) and (best is None or top > best[0]):
                    best = (float(top), mirrored, deg, s, (place[0] - pad, place[1] - pad), m, (tw, th))
    return best


def locate(original: Image.Image, suspect: Image.Image) -> Located | None:
    """The map from `original`'s pixels to `suspect`'s, if the suspect (all of it) shows a
    part of the original turned by at most ±10°, mirrored or not; None when no placement
    converges."""
    cv2 = _cv2()
    host, so = _grey(original, COARSE_LONG)
    # the suspect at twice the coarse size at most: every template is shrunk from it
    small, ss = _grey(suspect, 2 * COARSE_LONG)
    found = _coarse(cv2, host, small)
    if found is None:
        return None
    _, mirrored, deg, s, place, m, (tw, th) = found
    # suspect px -> coarse original px: the mirror, the scale, the turn, the place
    width = small.shape[1]
    flip = np.array([[-1.0, 0.0, width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) if mirrored else np.eye(3)
    turn = np.vstack([cv2.getRotationMatrix2D((tw / 2, th / 2), deg, 1.0), [0.0, 0.0, 1.0]])
    shift = np.array([[1.0, 0.0, place[0] - m], [0.0, 1.0, place[1] - m], [0.0, 0.0, 1.0]])
    to_host = shift @ turn @ np.diag([s, s, 1.0]) @ flip @ np.diag([ss, ss, 1.0])
    to_original = np.diag([1 / so, 1 / so, 1.0]) @ to_host  # suspect px -> original px
    return _refine(cv2, original, suspect, to_original, mirrored)


def _refine(
    cv2: Any,
    original: Image.Image,
    suspect: Image.Image,
    to_original: np.ndarray,
    mirrored: bool,
) -> Located | None:
    """ECC's affine map from the suspect (at REFINE_LONG) to the original at the same pixel
    density, started from the coarse map."""
    gs, ss = _grey(suspect, REFINE_LONG)
    density = math.sqrt(abs(np.linalg.det(to_original[:2, :2])))  # original px per suspect px
    ro = min(1.0, 1.0 / (density * ss)) if density > 0 else 1.0  # original scale at that density
    go, ro = _grey(original, max(16, round(max(original.size) * ro)))
    start = np.diag([ro, ro, 1.0]) @ to_original @ np.diag([1 / ss, 1 / ss, 1.0])
    warp = (start / start[2, 2])[:2].astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, ECC_EPS)
    try:
        cc, warp = cv2.findTransformECC(gs, go, warp, cv2.MOTION_AFFINE, criteria, None, ECC_SMOOTH)
    except cv2.error:  # did not converge, or the map left the original
        return None
    back = np.diag([1 / ro, 1 / ro, 1.0]) @ np.vstack([warp.astype(np.float64), [0.0, 0.0, 1.0]])
    back = back @ np.diag([ss, ss, 1.0])  # suspect px -> original px
    try:
        h = np.linalg.inv(back)
    except np.linalg.LinAlgError:
        return None
    if not np.isfinite(h).all():
        return None
    return Located(h / h[2, 2], float(cc), mirrored)
