"""The numpy PDQ hash and the crop search: the properties trace relies on, on real art."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from poster import fingerprint as fp
from tests.conftest import artwork, data_path

NAMES = ("revoy_forest_painting.jpg", "kodim23.png", "revoy_chaosah_family.jpg", "kenney_flat_castles_bg.png")


@pytest.fixture(scope="module")
def corpus() -> dict[str, Image.Image]:
    out = {}
    for name in NAMES:
        with Image.open(data_path(name)) as im:
            im.draft("RGB", (1024, 1024))
            out[name] = im.convert("RGB")
    return out


def jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def noisy(im: Image.Image, sigma: float) -> Image.Image:
    a = np.asarray(im, dtype=np.float32) + np.random.default_rng(0).normal(0, sigma, (im.height, im.width, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


ATTACKS = {
    "jpeg q40": lambda im: jpeg(im, 40),
    "half size": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR),
    "blur r4": lambda im: im.filter(ImageFilter.GaussianBlur(4)),
    "noise σ20": lambda im: noisy(im, 20),
    "saturation+brightness": lambda im: ImageEnhance.Brightness(ImageEnhance.Color(im).enhance(1.7)).enhance(
        1.15
    ),
}


def test_hash_is_256_bits_and_deterministic(corpus: dict[str, Image.Image]) -> None:
    im = corpus["kodim23.png"]
    h = fp.pdq(im)
    assert len(h) == 32
    assert fp.pdq(im.copy()) == h
    # median threshold: half the bits set, up to ties
    assert 120 <= int(np.unpackbits(np.frombuffer(h, np.uint8)).sum()) <= 136


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_robust_to_benign_edits(corpus: dict[str, Image.Image], attack: str) -> None:
    for name, im in corpus.items():
        assert fp.distance(fp.pdq(im), fp.pdq(ATTACKS[attack](im))) <= 40, name


def test_unrelated_images_are_far_apart(corpus: dict[str, Image.Image]) -> None:
    hashes = [fp.pdq(im) for im in corpus.values()] + [fp.pdq(artwork(seed=s)) for s in range(4)]
    for i in range(len(hashes)):
        for j in range(i + 1, len(hashes)):
            assert fp.distance(hashes[i], hashes[j]) >= 80


def test_dihedral_hashes_equal_hashes_of_transformed_images(corpus: dict[str, Image.Image]) -> None:
    """The 8 hashes computed from DCT signs must be those of the actually flipped/rotated image
    (identity, mirror, flip, rot180, transpose, …); trace relies on index 1 being the mirror."""
    im = corpus["revoy_chaosah_family.jpg"]
    q = fp.query(im)
    T = Image.Transpose
    transforms = [
        lambda i: i,
        ImageOps.mirror,
        ImageOps.flip,
        lambda i: i.transpose(T.ROTATE_180),
        lambda i: i.transpose(T.TRANSPOSE),
    ]
    for t, op in enumerate(transforms):
        assert fp.distance(q.hashes[t], fp.pdq(op(im))) <= 2, t
    # and the rotations are found among the eight
    for op in (T.ROTATE_90, T.ROTATE_270, T.TRANSVERSE):
        h = fp.pdq(im.transpose(op))
        assert min(fp.distance(h, x) for x in q.hashes) <= 2


def test_index_finds_the_source_among_many(corpus: dict[str, Image.Image]) -> None:
    names = list(corpus)
    prints = [fp.of_image(corpus[n]) for n in names] + [fp.of_image(artwork(seed=s)) for s in range(6)]
    idx = fp.Index.from_rows(list(range(1, len(prints) + 1)), prints, [b""] * len(prints))
    for k, name in enumerate(names):
        suspect = ImageOps.mirror(ATTACKS["blur r4"](corpus[name]))
        d, t, _ = idx.distances(fp.query(suspect))
        assert int(d.argmin()) == k
        assert int(t[k]) == 1  # found through the mirror hash
        assert d[k] <= 30 and np.delete(d, k).min() >= 80


def test_missing_prints_never_match() -> None:
    idx = fp.Index.from_rows([1, 2], [b"", b"\x00" * 3], [b"", b""])
    d, _, _ = idx.distances(fp.query(artwork()))
    assert (d > 256).all()


def test_flat_images_have_low_quality() -> None:
    assert fp.query(Image.new("RGB", (300, 200), (120, 130, 140))).quality < fp.MIN_QUALITY
    assert fp.query(artwork()).quality >= fp.MIN_QUALITY


def test_crop_search_finds_off_grid_crops(corpus: dict[str, Image.Image]) -> None:
    """Crops that fit none of the stored windows: the thumbnail search finds the window."""
    rng = np.random.default_rng(3)
    thumbs = {n: fp.thumbnail(im) for n, im in corpus.items()}
    for name, im in corpus.items():
        w, h = im.size
        left, top, right, bottom = rng.uniform(0.03, 0.17, 4)
        crop = im.crop((int(left * w), int(top * h), int(w - right * w), int(h - bottom * h)))
        crop = jpeg(crop.resize((crop.width // 2, crop.height // 2)), 60)
        q = fp.query(crop)
        own = fp.align(q, crop.size, thumbs[name])
        assert own is not None and own.distance <= 48, name
        assert abs(own.box[0] - left) <= 0.03 and abs(own.box[1] - top) <= 0.03
        others = [fp.align(q, crop.size, t) for n, t in thumbs.items() if n != name]
        assert min(a.distance for a in others if a is not None) >= 70


def test_for_files_survives_unreadable_files(tmp_path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    good = tmp_path / "good.png"
    artwork().save(good)
    out = fp.for_files(good, bad)
    assert len(out["variant_fp"]) == fp.FP_BYTES and len(out["variant_thumb"]) == fp.THUMB_BYTES
    assert out["original_fp"] == b""


def test_for_files_takes_a_known_original_print_without_reading_the_original(tmp_path) -> None:
    good = tmp_path / "good.png"
    artwork().save(good)
    known = fp.for_files(good, good)["original_fp"]
    out = fp.for_files(good, tmp_path / "gone.png", known)  # the original is not read again
    assert out["original_fp"] == known == fp.of_image(fp.load_file(good))


# Meta's reference PDQ (pdqhash 0.2.8, the C++ implementation; vector reversed into this
# module's bit order), computed on these very files in tests/data.
REFERENCE = {
    "kodim23.png": "6e776b5d784773e763b67c5bc58bc305303030d2878b595c581e8787b268316c",
    "revoy_forest_painting.jpg": "d5fff0404e8a6a28b2adc08ae3d3882a9cffa880cfcd8a2ba433aa853bdcaa3f",
    "revoy_chaosah_family.jpg": "2d1e870dde2385b7c3c81bc3786194b0e35a821ed8ed3748cbb23f30c4ecf8cb",
    "revoy_pencil_sketch.jpeg": "cf36938934c988c9db32d666b09c25a1ee6d391bc333c4d27cc62661f3991f1c",
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_agrees_with_metas_reference_implementation(name: str) -> None:
    """Same algorithm, different downsampling filter (box vs Jarosz): a few bits apart, far
    inside the match threshold; unrelated images are ~128 apart."""
    with Image.open(data_path(name)) as im:
        mine = fp.pdq(im.convert("RGB"))
    assert fp.distance(mine, bytes.fromhex(REFERENCE[name])) <= 16
    others = [bytes.fromhex(h) for n, h in REFERENCE.items() if n != name]
    assert min(fp.distance(mine, h) for h in others) >= 80


def test_range_search_agrees_with_the_scan(
    corpus: dict[str, Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large ledger's faiss range search gives the scan's distance, transform and region
    for every row within the radius, and NO_MATCH beyond it; rows without prints never match."""
    names = list(corpus)
    prints = [fp.of_image(corpus[n]) for n in names] + [fp.of_image(artwork(seed=s)) for s in range(6)]
    prints[-1] = b""  # a row without a variant print
    originals = [b""] * (len(prints) - 2) + [fp.of_image(corpus[names[0]]), b""]
    idx = fp.Index.from_rows(list(range(1, len(prints) + 1)), prints, originals)
    for name in names[:4]:
        for suspect in (
            ImageOps.mirror(ATTACKS["blur r4"](corpus[name])),
            corpus[name].transpose(Image.Transpose.ROTATE_90),
        ):
            q = fp.query(suspect)
            scan = idx.distances(q)
            monkeypatch.setattr(fp, "SCAN_ROWS", 0)
            d, t, r = idx.distances(q, radius=100)
            monkeypatch.setattr(fp, "SCAN_ROWS", 50_000)
            near = scan[0] <= 100
            assert near.any() and (d[~near] == fp.NO_MATCH).all()
            assert (d[near] == scan[0][near]).all()
            assert (t[near] == scan[1][near]).all() and (r[near] == scan[2][near]).all()
