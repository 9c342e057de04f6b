"""Fuzzing the entry points that read untrusted bytes: only our own error type may come out.

Bounded for CI (a few hundred examples each); raise POSTER_FUZZ_EXAMPLES for a longer run.
"""

from __future__ import annotations

import io
import os
import warnings
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from poster import imaging, sidecar, store
from poster.errors import InputError
from tests.conftest import artwork

EXAMPLES = int(os.environ.get("POSTER_FUZZ_EXAMPLES", "250"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def _seed(fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    artwork((260, 260), seed=1).save(buf, fmt, **kw)
    return buf.getvalue()


SEEDS = [
    _seed("PNG"),
    _seed("JPEG", quality=80),
    _seed("GIF"),
    _seed("WEBP"),
    _seed("TIFF", compression="tiff_lzw"),
    _seed("BMP"),
]


@st.composite
def mutated_image(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.booleans()):
        pos = draw(st.integers(0, len(data)))
        data[pos:pos] = draw(st.binary(max_size=64))
    return bytes(data)


@FUZZ
@given(st.one_of(mutated_image(), st.binary(max_size=2048)))
def test_loading_any_bytes_raises_only_input_error(data: bytes) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            im = imaging.load(data, "fuzz.png", max_pixels=4_000_000)
        except InputError as exc:
            assert "fuzz.png" in str(exc) and "\n" not in str(exc)
            im = None
    # a warning would reach the user's terminal as a raw Python line
    assert not caught, [str(w.message) for w in caught]
    assert im is None or (isinstance(im, Image.Image) and im.mode in ("RGB", "RGBA"))


TOML_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def _toml_value(v: object) -> str:
    import json

    if v is None:
        return '""'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    assert isinstance(v, dict)
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=512),
        st.dictionaries(
            st.sampled_from(
                ["title", "caption", "tags", "alt", "rating", "targets", "at", "ai_generated", "x"]
            ),
            TOML_VALUES,
            max_size=6,
        ).map(lambda d: "\n".join(f"{k} = {_toml_value(v)}" for k, v in d.items()).encode()),
    )
)
def test_parsing_any_sidecar_raises_only_input_error(text: bytes) -> None:
    try:
        side, warnings = sidecar.parse(text, "fuzz.toml", max_bytes=65536)
    except InputError as exc:
        assert str(exc).startswith("fuzz.toml: ") and "\n" not in str(exc)
        return
    assert side.rating in ("general", "r18", "r18g")
    assert all(w.startswith("fuzz.toml: ") for w in warnings)


# any date-time TOML can write: years 1 to 9999, offsets up to ±23:59, with or without one
TOML_DATETIMES = st.builds(
    lambda dt, minutes: dt.replace(tzinfo=None if minutes is None else timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.one_of(st.none(), st.integers(-(24 * 60 - 1), 24 * 60 - 1)),
)


@FUZZ
@given(
    st.one_of(
        TOML_DATETIMES.map(lambda dt: dt.isoformat()),
        TOML_DATETIMES.map(lambda dt: f'"{dt.isoformat()}"'),
        st.integers().map(str),
        st.floats(allow_nan=False).map(repr),  # 'inf', '1e+300' are TOML floats too
    )
)
def test_a_sidecar_at_is_refused_with_one_line_or_is_safe_to_use_later(value: str) -> None:
    """What intake and planning do with `at` (add a target's delay of up to a week, store it
    in UTC, show it in any zone) must never overflow: `at` 9999-12-31T23:59:59-12:00 once
    left a file waiting for ever on "internal error: date value out of range"."""
    try:
        side, _ = sidecar.parse(f"at = {value}\n".encode(), "fuzz.toml", max_bytes=65536)
    except InputError as exc:
        assert str(exc).startswith("fuzz.toml: ") and "\n" not in str(exc)
        return
    assert side.at is not None and side.at.utcoffset() is not None
    for shifted in (side.at + timedelta(days=7), side.at - timedelta(days=7)):
        assert store.parse_iso(store.iso(shifted)) == shifted
        shifted.astimezone(timezone(timedelta(hours=14)))
        shifted.astimezone(timezone(timedelta(hours=-12)))
    assert side.at.astimezone(UTC).year in range(2000, 3000)
