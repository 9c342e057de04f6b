"""Protection steps know no platform: nothing under poster/protect imports poster.platforms."""

from __future__ import annotations

import ast
from pathlib import Path

import poster.protect


def test_no_step_imports_a_platform() -> None:
    for path in Path(poster.protect.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            assert not any(n.startswith("poster.platforms") for n in names), path.name
