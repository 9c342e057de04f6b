"""The `poster` package of another git revision, for the benchmarks' before/after columns."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def export(rev: str, into: Path) -> Path:
    """The `poster` package at `rev`, unpacked into `into` (git archive: this tree's checkout
    is not touched); put `into` first on PYTHONPATH to run that code."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "poster"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into
