"""Where the signature goes, and what the detectors behind it find, on hand-marked corpus art.

    .venv/bin/python benchmarks/placement.py

1. Faces: for each corpus image with faces marked by hand (drawn characters, and one
   photograph), which faces each bundled OpenCV cascade finds (a detection counts when it
   overlaps a marked face by at least 30 % of the smaller box), and how many detections hit
   no marked face (false alarms cost nothing but a spot the signature avoids).
2. The signature: with the default settings (auto placement, X's heavy size), does its box
   touch a marked face or subject? Also where it landed.
3. Pixel art: what `pixelart.detect` says for every corpus image (and the share of
   in-between pixels at colour changes, the measure it thresholds).

Needs ../shared/corpus. Takes a few minutes on two busy cores.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CORPUS = REPO.parent / "shared" / "corpus"
Box = tuple[int, int, int, int]

# Marked by hand on the full-size originals (x0, y0, x1, y1).
FACES: dict[str, list[Box]] = {
    "revoy_forest_painting.jpg": [(1204, 1948, 1445, 2190)],  # the witch
    "revoy_chaosah_family.jpg": [
        (476, 577, 707, 866),
        (736, 866, 996, 1155),
        (1112, 924, 1314, 1213),
        (1357, 924, 1631, 1213),
        (1227, 1415, 1530, 1646),  # the cat
    ],
    "revoy_shichimi_concept.jpg": [(505, 356, 816, 727), (1024, 1395, 1484, 1752)],  # girl, fox
    "sachi_standing_alpha.png": [(1008, 833, 1579, 1447)],
    "kodim04.png": [(106, 240, 403, 557)],  # a photograph
}
# Whole subjects (a character with its body) where one stands apart from the background.
SUBJECTS: dict[str, list[Box]] = {
    "revoy_forest_painting.jpg": [(1116, 1795, 1620, 2627), (591, 2474, 919, 2627)],  # witch, cat
    "revoy_shichimi_concept.jpg": [(300, 250, 1250, 2300), (1000, 1390, 1560, 2375)],  # girl, fox
    "sachi_standing_alpha.png": [(650, 250, 2060, 3400)],
}


def overlap(a: Box, b: Box, share: float = 0.0) -> bool:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    if share == 0.0:
        return ix * iy > 0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy >= share * smaller


def faces_table() -> None:
    import cv2
    import numpy as np

    from poster.protect import subject

    print("1. faces found by each bundled cascade (at the working size poster uses)")
    print(f"{'image':<30}{'cascade':<22}{'found':>8}{'false alarms':>14}")
    totals: dict[str, list[int]] = {}
    for name, marked in FACES.items():
        with Image.open(CORPUS / name) as im:
            rgb = im.convert("RGB")
        w, h = rgb.size
        r = min(1.0, subject.FACE_WORK / max(w, h))
        g = cv2.equalizeHist(np.asarray(rgb.convert("L").resize((round(w * r), round(h * r)))))
        for cname, cascade in subject._cascades():
            eye = cname == "eye"
            side = max(12, int(min(g.shape) * (0.02 if eye else 0.04)))
            views = [(g, False), (cv2.flip(g, 1), True)] if cname == "profileface" else [(g, False)]
            boxes: list[Box] = []
            for view, flipped in views:
                for x, y, bw, bh in cascade.detectMultiScale(view, 1.2, 4, minSize=(side, side)):
                    x = view.shape[1] - x - bw if flipped else x
                    if eye:
                        x, y, bw, bh = x - 1.5 * bw, y - bh, 4 * bw, 4 * bh
                    boxes.append((int(x / r), int(y / r), int((x + bw) / r), int((y + bh) / r)))
            found = sum(any(overlap(b, f, 0.3) for b in boxes) for f in marked)
            false = sum(not any(overlap(b, f, 0.3) for f in marked) for b in boxes)
            t = totals.setdefault(cname, [0, 0, 0])
            t[0] += found
            t[1] += len(marked)
            t[2] += false
            print(f"{name:<30}{cname:<22}{found:>5}/{len(marked):<2}{false:>14}")
        union = subject.faces(rgb)
        found = sum(any(overlap(b, f, 0.3) for b in union) for f in marked)
        t = totals.setdefault("all (as used)", [0, 0, 0])
        t[0] += found
        t[1] += len(marked)
        t[2] += sum(not any(overlap(b, f, 0.3) for f in marked) for b in union)
    print(f"{'total':<30}")
    for cname, (found, n, false) in totals.items():
        print(f"{'':<30}{cname:<22}{found:>5}/{n:<2}{false:>14}")


def signature_table() -> None:
    from poster.protect import StepContext, build_step
    from poster.protect.fit import resize

    print("\n2. the signature (heavy size at X's 2048 px, auto placement): does it touch a marked box?")
    print(f"{'image':<30}{'box (original px)':<28}{'on a face':>10}{'on a subject':>14}{'s':>6}")
    for name in sorted(set(FACES) | set(SUBJECTS)):
        with Image.open(CORPUS / name) as im:
            src = im.convert("RGBA") if "A" in im.getbands() else im.convert("RGB")
        w, h = src.size
        r = min(1.0, 2048 / max(w, h))
        image = resize(src, (round(w * r), round(h * r)))
        ctx = StepContext(seed=1, artist="David Revoy")
        t = time.perf_counter()
        build_step("signature", {}, "bench").apply(image, ctx)
        x0, y0, x1, y1 = (round(v / r) for v in ctx.record["box"])
        box = (x0, y0, x1, y1)
        on_face = any(overlap(box, f) for f in FACES.get(name, []))
        on_subject = any(overlap(box, s) for s in SUBJECTS.get(name, []))
        print(f"{name:<30}{box!s:<28}{on_face!s:>10}{on_subject!s:>14}{time.perf_counter() - t:>6.1f}")


def pixel_art_table() -> None:
    from poster.protect import pixelart

    print("\n3. pixel-art detection on every corpus image")
    print(f"{'image':<40}{'detected':>10}{'art px':>8}{'colours':>9}{'in-between':>12}")
    for path in sorted(CORPUS.glob("*.*")):
        if path.suffix == ".md":
            continue
        with Image.open(path) as im:
            im.load()
            found = pixelart.detect(im)
            windows = [pixelart._clean(a) for a, _o in pixelart._windows(im)]
        between, changes = map(sum, zip(*(pixelart._between_share(a) for a in windows), strict=True))
        share = between / max(1, changes)
        art = found.scale if found else "-"
        colours = found.colours if found else "-"
        print(f"{path.name:<40}{bool(found)!s:>10}{art!s:>8}{colours!s:>9}{share:>11.1%}")


if __name__ == "__main__":
    faces_table()
    signature_table()
    pixel_art_table()
