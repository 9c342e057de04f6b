"""Text from outside, made safe to print: one line, nothing a terminal acts on, nothing lost
from view; JSON keeps the exact value."""

from __future__ import annotations

import json
import logging

import pytest

from poster.logs import SafeFormatter
from poster.termsafe import json_text, safe, safe_block


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\nb", "a\\nb"),
        ("\r\t", "\\r\\t"),
        ("\x1b[2J", "\\x1b[2J"),  # clear screen
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),  # window title, BEL
        ("\x9b2J", "\\x9b2J"),  # C1 CSI
        ("\x7f\x00", "\\x7f\\x00"),
        ("\u202egnp.exe", "\\u202egnp.exe"),  # right-to-left override
        ("\u2066x\u2069\u200f", "\\u2066x\\u2069\\u200f"),
        ("line\u2028sep", "line\\u2028sep"),
        ("caf\udce9.png", "caf\\udce9.png"),  # an undecodable byte of a file name
    ],
)
def test_safe_escapes_what_a_terminal_acts_on(raw: str, shown: str) -> None:
    assert safe(raw) == shown


def test_safe_keeps_ordinary_text() -> None:
    text = "うさぎ 雪の日.png — ünïcödé, emoji 👩‍🎨, C:\\path"
    assert safe(text) == text


def test_safe_block_keeps_line_breaks_only() -> None:
    assert safe_block("Traceback:\n  x\x1b[2J\r") == "Traceback:\n  x\\x1b[2J\\r"


def test_json_text_is_the_same_value_without_raw_controls() -> None:
    value = {"file": "a\n\x1b[2J\x9b\x7f\u202e\udcff.png"}
    text = json_text(json.dumps(value, ensure_ascii=False))
    assert json.loads(text) == value
    assert not any(c in text for c in "\n\x1b\x9b\x7f\u202e\udcff")


def test_log_lines_are_one_line_and_a_traceback_keeps_its_lines() -> None:
    fmt = SafeFormatter("poster: %(levelname)s: %(message)s")
    record = logging.LogRecord(
        "poster", logging.ERROR, __file__, 1, "%s: held", ("a\nposter: INFO: x",), None
    )
    assert fmt.format(record) == "poster: ERROR: a\\nposter: INFO: x: held"
    try:
        raise ValueError("bad\x1b[2J name")
    except ValueError:
        import sys

        record = logging.LogRecord("poster", logging.ERROR, __file__, 1, "crashed", (), sys.exc_info())
    lines = fmt.format(record).splitlines()
    assert lines[0] == "poster: ERROR: crashed" and lines[1].startswith("Traceback")
    assert lines[-1] == "ValueError: bad\\x1b[2J name"
