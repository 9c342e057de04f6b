"""Text from outside (file names, sidecar text, server answers) made safe to print.

A file name is whatever bytes the file system allows: a newline can forge a line of output
("posted job 99 …"), an ANSI escape can clear the screen or retitle the terminal, a bidi
override can make `gnp.exe` read as `exe.png`. Every line of human output and every log line
goes through `safe`, which shows such characters as visible escapes (`\\n`, `\\x1b`,
`\\u202e`) instead of sending them to the terminal. JSON output keeps the exact values:
`json_text` only spells the same characters as JSON `\\u` escapes, which decode back to them.
"""

from __future__ import annotations

import re

# C0 controls, DEL and C1 controls (all of Unicode category Cc); the bidi embeddings,
# overrides, isolates and marks; line and paragraph separators; lone surrogates (file names
# that are not valid UTF-8 arrive as these and would make the terminal's encoder fail).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)
_UNSAFE_KEEP_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)
# In JSON text the C0 controls are already escaped by `json.dumps`; the rest are not.
_UNSAFE_IN_JSON = re.compile(
    "[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: object) -> str:
    """`text` (anything, as `str()` shows it) on one line, with every control character, bidi
    control and undecodable byte shown as a visible escape."""
    return _UNSAFE.sub(_escape, str(text))


def safe_block(text: object) -> str:
    """Like `safe`, but line breaks stay line breaks: for multi-line text poster composes
    itself (a traceback), whose lines may quote outside text."""
    return _UNSAFE_KEEP_NEWLINE.sub(_escape, str(text))


def json_text(dumped: str) -> str:
    """JSON text from `json.dumps(..., ensure_ascii=False)` with the characters `safe` escapes
    written as `\\uXXXX` escapes: the same JSON value, harmless on a terminal. (These
    characters only ever occur inside JSON strings, where such escapes are valid.)"""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)
