"""Posting-slot syntax: `[DAYS] HH:MM[,HH:MM...]`.

A leaf module (standard library only): config validation parses slots here without
importing the scheduler, and `poster.schedule` turns them into times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from poster.i18n import _

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_ALIASES = {"daily": "*", "everyday": "*", "*": "*", "weekdays": "mon-fri", "weekends": "sat,sun"}
_TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Slot:
    day_of_week: str  # APScheduler CronTrigger syntax: "*", "mon-fri", "sat,sun"
    times: tuple[tuple[int, int], ...]


def _days(text: str) -> str:
    text = _DAY_ALIASES.get(text, text)
    if text == "*":
        return text
    for part in text.split(","):
        ends = part.split("-")
        if len(ends) > 2 or not all(e in _DAYS for e in ends):
            raise ValueError(
                _(
                    "slot days {text!r}: use mon..sun, a range like mon-fri, a list like sat,sun, or daily"
                ).format(text=text)
            )
    return text


def parse_slot(text: str) -> Slot:
    """`"mon-fri 19:00,21:00"` → Slot("mon-fri", ((19, 0), (21, 0))). ValueError if malformed."""
    words = text.lower().split()
    if not words or len(words) > 2:
        raise ValueError(
            _('slot {text!r}: write it like "mon-fri 19:00,21:00" or "sat,sun 10:00"').format(text=text)
        )
    days = _days(words[0]) if len(words) == 2 else "*"
    times = []
    for t in words[-1].split(","):
        m = _TIME_RE.match(t)
        if not m:
            raise ValueError(_("slot {text!r}: {time!r} is not a time like 19:00").format(text=text, time=t))
        times.append((int(m.group(1)), int(m.group(2))))
    return Slot(days, tuple(sorted(set(times))))
