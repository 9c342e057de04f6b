"""poster.features: local features find an artwork from a crop, a turn, a mirror image and a
perspective view, never an unrelated image; the index grows in crash-safe segments."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from poster import features, store
from tests.synthetic import painting, photo_like

cv2 = pytest.importorskip("cv2")


def jpeg(im: Image.Image, q: int = 80) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


ART = {
    f"{i:064x}": (painting((900, 700), 100 + i) if i % 2 else photo_like(900, 700, 100 + i)) for i in range(6)
}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> features.FeatureIndex:
    root = tmp_path_factory.mktemp("features")
    entries = [features.entry_of(k, im) for k, im in ART.items()]
    features.Segment.write(root / "seg-000001", entries, entries[0].composition.shape[0])
    features._write_manifest(root, {"codebook": features.codebook().version, "segments": ["seg-000001"]})
    return features.FeatureIndex(root)


def _corners_error(hit: features.Hit, true_h: np.ndarray, size: tuple[int, int]) -> float:
    w, h = size
    pts = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    return float(np.abs(features._project(hit.homography, pts) - features._project(true_h, pts)).max())


def test_mirror_permutation_matches_opencv() -> None:
    """The mirrored descriptor computed by permutation equals SIFT on the mirrored image."""
    g = np.asarray(painting((500, 400), 3).convert("L"))
    sift = cv2.SIFT_create(nfeatures=300)
    k1, d1 = sift.detectAndCompute(g, None)
    k2, d2 = sift.detectAndCompute(np.ascontiguousarray(g[:, ::-1]), None)
    m = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d1[:, features._mirror_permutation()], d2, k=2)
    good = [a for a, b in m if a.distance < 0.8 * b.distance]
    right = [a for a in good if abs(g.shape[1] - 1 - k1[a.queryIdx].pt[0] - k2[a.trainIdx].pt[0]) < 2]
    assert len(good) >= 20 and len(right) > 0.9 * len(good)


@pytest.mark.parametrize(
    "attack",
    [
        "crop a third",
        "small crop",
        "turn 9 degrees + crop",
        "mirror + downscale",
        "perspective",
        "collage panel",
    ],
)
def test_artwork_and_geometry_found(index: features.FeatureIndex, attack: str) -> None:
    key = f"{4:064x}"  # photo-like: textured ground, as real art has texture
    art = ART[key]
    w, h = art.size
    if attack == "crop a third":
        # a third of the area (20 % crops of real art: benchmarks/trace.py; synthetic art
        # has far fewer distinct places than a painting)
        box = (400, 250, 400 + 480, 250 + 400)
        suspect = jpeg(art.crop(box).resize((360, 300)), 75)
        true_h = np.diag([360 / 480, 300 / 400, 1.0]) @ np.array([[1, 0, -400], [0, 1, -250], [0, 0, 1.0]])
    elif attack == "small crop":  # a quarter of the area at 250 px: enlarged before extraction
        box = (350, 200, 350 + 450, 200 + 350)
        suspect = jpeg(art.crop(box).resize((250, 194)), 80)
        true_h = np.diag([250 / 450, 194 / 350, 1.0]) @ np.array([[1, 0, -350], [0, 1, -200], [0, 0, 1.0]])
    elif attack == "turn 9 degrees + crop":
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 9, 1.0)
        turned = cv2.warpAffine(np.asarray(art), m, (w, h))
        suspect = jpeg(Image.fromarray(turned).crop((100, 80, 800, 620)))
        true_h = np.array([[1, 0, -100], [0, 1, -80], [0, 0, 1.0]]) @ np.vstack([m, [0, 0, 1]])
    elif attack == "mirror + downscale":
        suspect = jpeg(ImageOps.mirror(art).resize((450, 350)), 70)
        true_h = np.array([[-0.5, 0, 450], [0, 0.5, 0], [0, 0, 1.0]])
    elif attack == "perspective":
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = np.float32([[60, 40], [w + 20, 0], [w + 80, h + 60], [10, h + 20]])
        true_h = cv2.getPerspectiveTransform(src, dst)
        suspect = jpeg(Image.fromarray(cv2.warpPerspective(np.asarray(art), true_h, (w + 100, h + 80))))
    else:
        canvas = Image.new("RGB", (1000, 800), (240, 240, 240))
        canvas.paste(painting((480, 380), 999), (10, 10))
        canvas.paste(photo_like(480, 380, 998), (510, 410))
        canvas.paste(art.resize((450, 350)), (520, 20))
        suspect = jpeg(canvas, 85)
        true_h = np.array([[0.5, 0, 520], [0, 0.5, 20], [0, 0, 1.0]])
    f = features.extract_query(suspect)
    assert (f.scale > 1) == (max(suspect.size) < features.QUERY_MIN_LONG)
    hits = index.search(f)
    assert hits and hits[0].key == key, [(h.key[-2:], h.inliers) for h in hits]
    assert hits[0].inliers >= features.MIN_INLIERS
    assert hits[0].mirrored == (attack == "mirror + downscale")
    assert _corners_error(hits[0], true_h, (w, h)) < 0.03 * max(suspect.size)


def test_unrelated_images_find_nothing(index: features.FeatureIndex) -> None:
    for seed in range(5):
        for im in (painting((800, 600), 5000 + seed), photo_like(700, 700, 6000 + seed)):
            assert index.search(features.extract(jpeg(im), keep=features.QUERY_KEEP)) == []
    # nearly flat: no keypoints, no answer (and no error)
    assert index.search(features.extract(Image.new("RGB", (400, 300), (200, 190, 180)))) == []


def _home(tmp_path: Path, n: int) -> tuple[sqlite3.Connection, Path]:
    data = tmp_path / "data"
    conn = store.connect(data / "poster.db")
    conn.execute(
        "INSERT INTO artworks (id, content_key, name, meta, created_at) VALUES (1, 'k', 'a', '{}', 'now')"
    )
    for i in range(n):
        _add_original(conn, data, i)
    return conn, data


def _archived(i: int) -> Image.Image:
    # photo-like texture: enough keypoints at this small size (a flat synthetic painting of
    # 400 x 300 may have fewer than MIN_INLIERS, and then nothing can find it)
    return photo_like(400, 300, 300 + i)


def _add_original(conn: sqlite3.Connection, data: Path, i: int) -> str:
    key = f"{i:064x}"
    rel = f"archive/{key[:2]}/{key}.png"
    (data / rel).parent.mkdir(parents=True, exist_ok=True)
    _archived(i).save(data / rel)
    conn.execute(
        "INSERT INTO originals (artwork_id, idx, name, sha256, archive_path) VALUES (1, ?, ?, ?, ?)",
        (i, f"{i}.png", key, rel),
    )
    return key


def test_update_is_incremental_and_merges_segments(tmp_path: Path) -> None:
    conn, data = _home(tmp_path, 3)
    idx = features.update(conn, data)
    assert len(idx) == 3 and idx.covered == 3
    again = features.update(conn, data)  # nothing new: nothing rewritten
    assert again.manifest["segments"] == idx.manifest["segments"]
    for i in range(3, 7):
        _add_original(conn, data, i)
        idx = features.update(conn, data)
    assert sorted(idx.keys()) == [f"{i:064x}" for i in range(7)]
    assert len(idx.segments) <= 3  # similar-sized segments were merged
    seg_dirs = sorted(p.name for p in (data / features.INDEX_DIR).iterdir() if p.is_dir())
    assert seg_dirs == sorted(idx.manifest["segments"])  # merged-away folders removed
    # every original is found as itself: image numbers stay right through the merges
    for i in range(7):
        hits = idx.search(features.extract(jpeg(_archived(i), 90), keep=features.QUERY_KEEP))
        assert hits and hits[0].key == f"{i:064x}", (i, [(h.key[-2:], h.inliers) for h in hits])


def test_an_index_of_another_extraction_is_rebuilt_a_budget_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index written by another extraction (an older FORMAT) is unusable and rebuilt from
    the archive; the daemon's refresh adds TICK_BUDGET originals a tick, so a large archive
    does not hold one tick (and the posts due) for the whole rebuild."""
    from types import SimpleNamespace

    from poster import daemon

    conn, data = _home(tmp_path, 5)
    root = data / features.INDEX_DIR
    old = features.update(conn, data)
    manifest = json.loads((root / features.MANIFEST).read_text())
    (root / features.MANIFEST).write_text(json.dumps(dict(manifest, codebook="1:0123456789abcdef")))
    assert len(features.FeatureIndex(root)) == 0  # another extraction's segments are not read
    monkeypatch.setattr(features, "TICK_BUDGET", 2)
    cfg = SimpleNamespace(data_dir=data)
    sizes = []
    for _ in range(3):
        daemon.refresh_trace_index(cfg, conn, [])  # type: ignore[arg-type]
        sizes.append(len(features.FeatureIndex(root)))
    assert sizes == [2, 4, 5]
    assert sorted(features.FeatureIndex(root).keys()) == sorted(old.keys())
    # the old extraction's segment folders are gone once the new manifest is written
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(
        features.FeatureIndex(root).manifest["segments"]
    )


def test_missing_archive_file_is_skipped_then_retried(tmp_path: Path) -> None:
    conn, data = _home(tmp_path, 2)
    key = f"{1:064x}"
    lost = data / "archive" / key[:2] / f"{key}.png"
    moved = lost.with_suffix(".bak")
    lost.rename(moved)
    idx = features.update(conn, data)
    assert idx.keys() == [f"{0:064x}"] and idx.manifest["retry"] == [f"{1:064x}"]
    moved.rename(lost)  # restored from a backup
    idx = features.update(conn, data)
    assert sorted(idx.keys()) == [f"{0:064x}", f"{1:064x}"] and idx.manifest["retry"] == []


def test_a_crash_leaves_a_usable_index(tmp_path: Path) -> None:
    """A segment folder left half-written and a damaged manifest never break a trace."""
    conn, data = _home(tmp_path, 2)
    idx = features.update(conn, data)
    root = data / features.INDEX_DIR
    (root / "seg-999999.tmp").mkdir()  # an interrupted write
    (root / "seg-999999.tmp" / "postings.npy").write_bytes(b"partial")
    again = features.FeatureIndex(root)
    assert sorted(again.keys()) == sorted(idx.keys())
    (root / features.MANIFEST).write_text("{not json")
    rebuilt = features.update(conn, data)  # an unreadable manifest: rebuilt from the archive
    assert sorted(rebuilt.keys()) == sorted(idx.keys())
    assert json.loads((root / features.MANIFEST).read_text())["covered"] == 2
    assert not (root / "seg-999999.tmp").exists()


def test_stop_words_and_batched_reads(index: features.FeatureIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    """Words with lists longer than `longest_list` are not read; reading the lists in small
    batches gives the same matches as reading them at once."""
    f = features.extract(jpeg(ART[f"{4:064x}"]), keep=features.QUERY_KEEP)
    whole = index.matches(f)
    assert len(whole[0]) > 50
    monkeypatch.setattr(features, "READ_BATCH", 3)  # a few postings at a time
    batched = index.matches(f)
    key = lambda m: sorted(zip(*(a.tolist() for a in m), strict=True))  # noqa: E731
    assert key(batched) == key(whole)
    words, _ = features.quantise(f.desc, index.book, 2)
    lens = index.list_lengths(np.unique(words))
    index._longest = int(np.median(lens[lens > 0]))  # every longer list is a stop word now
    fewer = index.matches(f)
    assert 0 < len(fewer[0]) < len(whole[0]) and set(key(fewer)) <= set(key(whole))
    index._longest = 0
    assert len(index.matches(f)[0]) == 0
    index._longest = None
    assert index.longest_list == features.MIN_LIST_CAP  # a small index: nothing is a stop word


@pytest.mark.parametrize("attack", ["turn 7 degrees + crop", "mirror + downscale"])
def test_two_images_matched_directly(attack: str) -> None:
    """match_images (the evidence report's own geometry, no index): the same map as the
    truth, mirror included; nothing for an unrelated pair."""
    art = ART[f"{4:064x}"]
    w, h = art.size
    if attack == "mirror + downscale":
        suspect = jpeg(ImageOps.mirror(art).resize((450, 350)), 75)
        true_h = np.array([[-0.5, 0, 450], [0, 0.5, 0], [0, 0, 1.0]])
    else:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 7, 0.8)
        turned = cv2.warpAffine(np.asarray(art), m, (w, h))
        suspect = jpeg(Image.fromarray(turned).crop((150, 100, 750, 600)))
        true_h = np.array([[1, 0, -150], [0, 1, -100], [0, 0, 1.0]]) @ np.vstack([m, [0, 0, 1]])
    hit = features.match_images(art, suspect)
    assert hit is not None and hit.mirrored == (attack == "mirror + downscale")
    # inliers count places once (SIFT's several orientations at one point); pairs keeps them all
    assert hit.inliers >= features.MIN_INLIERS and len(hit.pairs) >= hit.inliers
    assert _corners_error(hit, true_h, (w, h)) < 0.03 * max(suspect.size)
    # the pairs are where the map says: original points projected land on the copy's points
    projected = features._project(hit.homography, hit.pairs[:, :2].astype(np.float64))
    assert np.median(np.abs(projected - hit.pairs[:, 2:])) < 3
    assert features.match_images(art, jpeg(photo_like(700, 700, 6001))) is None


def test_tight_crop_of_a_sketch_is_matched_directly(tmp_path: Path) -> None:
    """A 22 % crop of a pencil sketch (soft, densely hatched: few places the index's quantised
    keypoints agree on) is on the index's short list, and the direct match of the original's
    own keypoints finds it with the right geometry; unrelated art against the same original
    finds nothing."""
    from tests.conftest import data_path

    with Image.open(data_path("revoy_pencil_sketch.jpeg")) as src:
        sketch = src.convert("RGB")
    key = f"{99:064x}"
    root = tmp_path
    entries = [features.entry_of(k, im) for k, im in {**ART, key: sketch}.items()]
    features.Segment.write(root / "seg-000001", entries, entries[0].composition.shape[0])
    features._write_manifest(root, {"codebook": features.codebook().version, "segments": ["seg-000001"]})
    index = features.FeatureIndex(root)
    w, h = sketch.size
    cw, ch = round(w * 0.47), round(h * 0.47)
    x0, y0 = round(w * 0.5), round(h * 0.1)
    crop = jpeg(sketch.crop((x0, y0, x0 + cw, y0 + ch)).resize((round(cw * 0.7), round(ch * 0.7))), 75)
    true_h = np.diag([round(cw * 0.7) / cw, round(ch * 0.7) / ch, 1.0]) @ np.array(
        [[1, 0, -x0], [0, 1, -y0], [0, 0, 1.0]]
    )
    shortlist: dict[str, int] = {}
    index.search(features.extract_query(crop), shortlist=shortlist)
    assert key in shortlist and len(shortlist) <= 2 * features.SHORTLIST  # seen and mirrored
    original = features.pair_features(sketch)
    hit = features.match_features(original, features.pair_features(crop), key=key)
    assert hit is not None and hit.key == key and not hit.mirrored
    assert hit.inliers >= features.MIN_INLIERS
    assert _corners_error(hit, true_h, (w, h)) < 0.03 * max(crop.size)
    for name in ("kodim05.jpg", "revoy_chaosah_family.jpg"):
        with Image.open(data_path(name)) as other:
            o = other.convert("RGB")
        for box in ((0, 0, *o.size), (o.width // 4, o.height // 4, 3 * o.width // 4, 3 * o.height // 4)):
            assert features.match_features(original, features.pair_features(jpeg(o.crop(box)))) is None


def test_matches_equal_a_brute_force_over_several_segments(tmp_path: Path) -> None:
    """The lists read from each segment's file, the query's bits spread word by word, the
    image numbers made global: every (keypoint, image, x, y) a plain loop over the stored
    entries finds, and nothing else (also where one word serves several query keypoints)."""
    entries = [features.entry_of(k, im) for k, im in ART.items()]
    dims = entries[0].composition.shape[0]
    root = tmp_path / "features"
    root.mkdir()
    features.Segment.write(root / "seg-000001", entries[:2], dims)
    features.Segment.write(root / "seg-000002", entries[2:], dims)
    features._write_manifest(
        root, {"codebook": features.codebook().version, "segments": ["seg-000001", "seg-000002"]}
    )
    idx = features.FeatureIndex(root)
    f = features.extract(jpeg(ART[f"{3:064x}"].crop((100, 80, 700, 600))), keep=features.QUERY_KEEP)
    words, sigs = features.quantise(f.desc, idx.book, 2)
    assert len(np.unique(words)) < words.size  # some word serves several query entries
    got = idx.matches(f)
    expected = []
    for j, slot in np.ndindex(words.shape):
        for img, e in enumerate(entries):
            same = np.nonzero(e.words == words[j, slot])[0]
            bits = np.bitwise_count(e.sigs[same] ^ sigs[j, slot])
            for i in same[bits <= features.HAMMING]:
                expected.append((j, img, e.xy[i, 0] / features.POS_SCALE, e.xy[i, 1] / features.POS_SCALE))
    assert len(expected) > 50
    assert sorted(zip(*(a.tolist() for a in got), strict=True)) == sorted(expected)


def test_pale_flat_art_is_found_from_a_part_of_it(tmp_path: Path) -> None:
    """A pale flat-colour background (light blue silhouettes on white clouds: 4 SIFT keypoints
    at OpenCV's default contrast threshold, so no copy of it could be found) keeps keypoints
    in every part that has shapes (features.CONTRAST), and a turned, grainy crop of it is on
    the index's short list and matched directly with the right geometry; the other artworks'
    originals find nothing in it."""
    from tests.conftest import data_path

    with Image.open(data_path("kenney_flat_castles_bg.png")) as src:
        castles = src.convert("RGB")
    grey = np.asarray(castles.convert("L"))
    assert len(cv2.SIFT_create().detect(grey, None)) < 20  # what the default would keep
    f = features.extract(castles)
    assert len(f) >= 200
    # the silhouettes' band (towers, trees, cloud edges) holds keypoints across its width
    band = f.xy[(f.xy[:, 1] > 0.25 * f.size[1]) & (f.xy[:, 1] < 0.7 * f.size[1])]
    assert (
        len(np.unique(np.minimum(band[:, 0] * features.GRID // f.size[0], features.GRID - 1)))
        == features.GRID
    )

    key = f"{77:064x}"
    entries = [features.entry_of(k, im) for k, im in {**ART, key: castles}.items()]
    features.Segment.write(tmp_path / "seg-000001", entries, entries[0].composition.shape[0])
    features._write_manifest(tmp_path, {"codebook": features.codebook().version, "segments": ["seg-000001"]})
    index = features.FeatureIndex(tmp_path)
    # 40 % of the area around the castles, turned 6 degrees, with grain, shrunk and re-encoded
    w, h = castles.size
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 6, 1.0)
    turned = cv2.warpAffine(np.asarray(castles), m, (w, h), borderMode=cv2.BORDER_REFLECT)
    x0, y0, x1, y1 = 180, 280, 830, 900
    part = turned[y0:y1, x0:x1].astype(np.float32)
    part += np.random.default_rng(3).normal(0, 3, part.shape)
    crop = jpeg(Image.fromarray(np.clip(part, 0, 255).astype(np.uint8)).resize((455, 434)), 75)
    true_h = (
        np.diag([455 / (x1 - x0), 434 / (y1 - y0), 1.0])
        @ np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1.0]])
        @ np.vstack([m, [0, 0, 1]])
    )
    shortlist: dict[str, int] = {}
    index.search(features.extract_query(crop), shortlist=shortlist)
    assert key in shortlist
    suspect = features.pair_features(crop)
    hit = features.match_features(features.pair_features(castles), suspect, key=key)
    assert hit is not None and hit.inliers >= features.MIN_INLIERS and not hit.mirrored
    assert _corners_error(hit, true_h, (w, h)) < 0.03 * max(crop.size)
    for im in ART.values():
        assert features.match_features(features.pair_features(im), suspect) is None


def _collage(art: Image.Image, slot: int, seed: int) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Four 400 px cells with 12 px gutters on a light canvas, `art` in cell `slot` and
    procedural paintings (not indexed) in the others; the art's box in the collage."""
    cell, gap = 400, 12
    canvas = Image.new("RGB", (2 * cell + 3 * gap, 2 * cell + 3 * gap), (248, 248, 246))
    box = (0, 0, 0, 0)
    for i in range(4):
        x, y = gap + (i % 2) * (cell + gap), gap + (i // 2) * (cell + gap)
        panel = art if i == slot else painting((cell, cell), seed + i)
        p = ImageOps.contain(panel.convert("RGB"), (cell, cell))
        at = (x + (cell - p.width) // 2, y + (cell - p.height) // 2)
        canvas.paste(p, at)
        if i == slot:
            box = (at[0], at[1], at[0] + p.width, at[1] + p.height)
    return jpeg(canvas, 85), box


def test_a_collage_splits_along_its_gutters_and_not_elsewhere() -> None:
    """`panels` gives the four cells of a collage (largest first, in image pixels: the gutters
    found at PANEL_LONG are scaled back), and nothing for a picture without gutters, a
    framed one (a border is not a gutter), or one whose flat sky touches the edges."""
    art = ART[f"{1:064x}"]
    collage, _ = _collage(art, 2, 500)
    boxes = features.panels(collage)
    assert len(boxes) == 4
    cells = [(12 + (i % 2) * 412, 12 + (i // 2) * 412) for i in range(4)]
    for x, y in cells:  # each cell inside one box, with at most the margin and half a gutter
        (b,) = [b for b in boxes if b[0] <= x + 2 and b[1] <= y + 2 and b[2] >= x + 398 and b[3] >= y + 398]
        assert b[2] - b[0] <= 400 + 12 + 8 and b[3] - b[1] <= 400 + 12 + 8
    assert features.panels(art) == []
    assert features.panels(ImageOps.expand(art, 40, (255, 255, 255))) == []
    sky = Image.new("RGB", (900, 700), (120, 170, 230))
    sky.paste(art.resize((900, 400)), (0, 300))
    assert features.panels(sky) == []


def test_rows_of_a_collage_are_split_into_their_own_cells() -> None:
    """A collage whose two rows do not share a column (the upper split at 1/3, the lower at
    2/3): no gutter runs across the whole picture but the one between the rows, and each row
    is split again along its own, so its four cells are parts too, after the two rows."""
    gap, w, h = 12, 900, 400
    canvas = Image.new("RGB", (w + 2 * gap, 2 * h + 3 * gap), (248, 248, 246))
    cells = []
    for row, split in enumerate((300, 600)):
        y = gap + row * (h + gap)
        for x0, x1 in ((gap, gap + split - gap // 2), (gap + split + gap // 2, gap + w)):
            canvas.paste(painting((x1 - x0, h), 600 + len(cells)), (x0, y))
            cells.append((x0, y, x1, y + h))
    boxes = features.panels(jpeg(canvas, 85))
    assert len(boxes) == 6
    for x0, y0, x1, y1 in cells:  # each cell inside a box of about its own size
        assert any(
            b[0] <= x0 + 2
            and b[1] <= y0 + 2
            and b[2] >= x1 - 2
            and b[3] >= y1 - 2
            and (b[2] - b[0]) * (b[3] - b[1]) <= (x1 - x0 + 2 * gap) * (y1 - y0 + 2 * gap)
            for b in boxes
        ), (x0, y0, x1, y1)
    # the rows first (the largest parts), then the cells
    assert all((b[2] - b[0]) >= w - gap for b in boxes[:2])


def test_a_hit_in_a_panel_is_placed_in_the_whole_collage(index: features.FeatureIndex) -> None:
    """A soft painting in a collage of paintings: the collage searched whole finds nothing,
    the art's cell alone finds its original, and `in_panel` maps the geometry back into the
    collage: the original's corners land on the art's box there."""
    key = f"{5:064x}"
    art = ART[key]
    collage, (x0, y0, x1, y1) = _collage(art, 2, 900)
    assert index.search(features.extract_query(collage)) == []
    (box,) = [b for b in features.panels(collage) if b[0] <= x0 and b[1] <= y0 and b[2] >= x1 and b[3] >= y1]
    part = collage.crop(box)
    (hit, *_) = index.search(features.extract_query(part))
    assert hit.key == key
    whole = features.in_panel(hit, box)
    true_h = np.array([[(x1 - x0) / art.width, 0, x0], [0, (y1 - y0) / art.height, y0], [0, 0, 1.0]])
    assert _corners_error(whole, true_h, art.size) < 4
    assert _corners_error(hit, true_h, art.size) > 100  # the panel's own geometry is elsewhere
    assert np.allclose(whole.pairs[:, 2:] - hit.pairs[:, 2:], [box[0], box[1]])
