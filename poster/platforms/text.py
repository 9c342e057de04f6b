"""Text helpers shared by adapters: length rules (graphemes, X's weighted count), composing a
caption with hashtags under a limit, and Bluesky rich-text facets."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable

ZWJ = "\u200d"
_URL_RE = re.compile(r"https?://[^\s]+")
_HASHTAG_RE = re.compile(r"(?:(?<=\s)|^)#([^\s#.,!?;:()\[\]{}\"'「」『』、。！？]+)")


def _is_extend(ch: str) -> bool:
    cp = ord(ch)
    return (
        unicodedata.combining(ch) != 0
        or unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or 0xFE00 <= cp <= 0xFE0F  # variation selectors
        or 0x1F3FB <= cp <= 0x1F3FF  # skin tones
        or 0xE0020 <= cp <= 0xE007F  # tag characters (flag sequences)
        or ch == ZWJ
    )


def _is_regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def graphemes(text: str) -> list[str]:
    """Split into user-perceived characters (an approximation of UAX #29 that handles
    combining marks, variation selectors, skin tones, ZWJ emoji sequences, flags, CRLF)."""
    clusters: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        start = i
        ch = text[i]
        i += 1
        if i < n and ((ch == "\r" and text[i] == "\n") or (_is_regional(ch) and _is_regional(text[i]))):
            i += 1
        else:
            while i < n:
                nxt = text[i]
                if nxt == ZWJ and i + 1 < n:
                    i += 2  # joiner plus the next character
                elif _is_extend(nxt):
                    i += 1
                else:
                    break
        clusters.append(text[start:i])
    return clusters


def grapheme_length(text: str) -> int:
    return len(graphemes(text))


def x_weighted_length(text: str) -> int:
    """X's weighted length (twitter-text v3 config): URLs count 23, code points in the
    Latin/general-punctuation ranges count 1, everything else (CJK, emoji…) counts 2."""
    total = 0
    last = 0
    for m in _URL_RE.finditer(text):
        total += _x_weight_plain(text[last : m.start()]) + 23
        last = m.end()
    return total + _x_weight_plain(text[last:])


def _x_weight_plain(text: str) -> int:
    weight = 0
    for cluster in graphemes(text):
        cp = ord(cluster[0])
        if len(cluster) > 1 and cp > 0x2000:  # emoji sequence: one emoji
            weight += 2
        elif cp <= 4351 or 8192 <= cp <= 8205 or 8208 <= cp <= 8223 or 8242 <= cp <= 8247:
            weight += len(cluster)
        else:
            weight += 2
    return weight


def _trim(text: str, limit: int, measure: Callable[[str], int]) -> str:
    if measure(text) <= limit:
        return text
    parts = graphemes(text)
    lo, hi = 0, len(parts)
    while lo < hi:  # largest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if measure("".join(parts[:mid]).rstrip() + "…") <= limit:
            lo = mid
        else:
            hi = mid - 1
    return "".join(parts[:lo]).rstrip() + "…"


def compose(
    caption: str,
    tags: Iterable[str] = (),
    *,
    limit: int | None,
    measure: Callable[[str], int] = grapheme_length,
    suffix: str = "",
) -> tuple[str, bool]:
    """Caption + hashtags (those not already in the caption) + suffix, within `limit`.

    Hashtags that do not fit are dropped first (last ones first), then the caption is
    trimmed with an ellipsis. Returns (text, trimmed?) — trimmed is True when anything the
    user wrote was cut (the adapter logs a warning).
    """
    caption = caption.strip()
    present = {t.lower() for t in _HASHTAG_RE.findall(caption)}
    hashtags = []
    for tag in tags:
        clean = re.sub(r"\s+", "_", tag.strip().lstrip("#"))
        if clean and clean.lower() not in present:
            hashtags.append("#" + clean)
            present.add(clean.lower())

    def build(cap: str, tags_: list[str]) -> str:
        body = cap
        if tags_:
            body = (body + "\n\n" if body else "") + " ".join(tags_)
        if suffix:
            body = (body + "\n" if body else "") + suffix
        return body

    if limit is None or measure(build(caption, hashtags)) <= limit:
        return build(caption, hashtags), False
    while hashtags and measure(build(caption, hashtags)) > limit:
        hashtags.pop()
    if measure(build(caption, hashtags)) <= limit:
        return build(caption, hashtags), True
    room = limit - measure(build("", [])) - (2 if suffix else 0)
    trimmed = _trim(caption, max(room, 0), measure) if room > 0 else ""
    text = build(trimmed, [])
    while measure(text) > limit and trimmed:
        trimmed = _trim(trimmed, max(measure(trimmed) - 1, 0), measure)
        text = build(trimmed, [])
    return text, True


def bluesky_facets(text: str) -> list[dict]:
    """Rich-text facets for hashtags and links; indices are UTF-8 byte offsets."""
    facets: list[dict] = []

    def byte_range(start: int, end: int) -> dict:
        return {
            "byteStart": len(text[:start].encode("utf-8")),
            "byteEnd": len(text[:end].encode("utf-8")),
        }

    for m in _URL_RE.finditer(text):
        url = m.group(0).rstrip(".,;:!?)")
        facets.append(
            {
                "index": byte_range(m.start(), m.start() + len(url)),
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": url}],
            }
        )
    for m in _HASHTAG_RE.finditer(text):
        tag = m.group(1)
        if not tag or tag.isdigit() or len(tag) > 64:
            continue
        facets.append(
            {
                "index": byte_range(m.start(), m.end()),
                "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": tag}],
            }
        )
    facets.sort(key=lambda f: f["index"]["byteStart"])
    return facets
