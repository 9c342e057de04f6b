"""Sidecar values: each checked once, at parse time, with one line naming the file and the key,
so nothing later (planning, the ledger, `status`) meets a value it cannot handle."""

from __future__ import annotations

from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest

from poster import sidecar, store
from poster.errors import InputError


def parse(text: str) -> sidecar.Sidecar:
    return sidecar.parse(text.encode(), "a.toml", max_bytes=65536)[0]


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59-12:00",  # the year 10000 in UTC: converting it overflowed
        "0001-01-01T00:00:00+14:00",  # the year 0 in UTC
        '"9999-12-31T23:59:59-12:00"',  # the same as a string
        "1999-12-31T23:59:59Z",
        "3000-01-01T00:00:00Z",
        "99999999999999999999999999",  # a number is not a date (pydantic read it as seconds)
        "1700000000",
        "inf",
        "true",
        "2026-11-22",  # a date without a time
        "2026-11-22T19:00:00",  # no UTC offset
    ],
)
def test_at_values_that_could_fail_later_are_refused_naming_the_key(value: str) -> None:
    with pytest.raises(InputError) as caught:
        parse(f"at = {value}\n")
    message = str(caught.value)
    assert message.startswith("a.toml: at: ") and "\n" not in message, message


@pytest.mark.parametrize(
    "value", ["2000-01-01T14:00:00+14:00", "2999-12-31T11:59:59-12:00", "2026-11-22T19:00:00+09:00"]
)
def test_at_within_range_survives_what_is_done_with_it_later(value: str) -> None:
    at = parse(f"at = {value}\n").at
    assert at is not None
    # planning adds a target's delay (at most 7 days), the store writes UTC, status shows local
    later = at + timedelta(days=7)
    assert store.parse_iso(store.iso(later)) == later
    later.astimezone(ZoneInfo("Pacific/Kiritimati"))
    (at - timedelta(days=1)).astimezone(UTC)


def test_over_large_sidecar_says_over_the_limit_naming_the_setting() -> None:
    with pytest.raises(InputError) as caught:
        sidecar.parse(b"x" * 300, "a.toml", max_bytes=256)
    assert str(caught.value) == "a.toml: sidecar is over the 256-byte limit (intake.max_sidecar_bytes)"
