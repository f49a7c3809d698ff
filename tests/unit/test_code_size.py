"""CONTRIBUTING's size rules hold in ``nexus_trio``: modules of at most 300 lines, functions that
fit on a screen (at most 60 lines)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "nexus_trio"
MODULE_LINES = 300
FUNCTION_LINES = 60


def oversized(package: Path) -> list[str]:
    """Every module and function over its limit, as ``path: what (lines)``."""
    found = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        name = path.relative_to(package.parent).as_posix()
        if len(text.splitlines()) > MODULE_LINES:
            found.append(f"{name}: module ({len(text.splitlines())})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > FUNCTION_LINES:
                    found.append(f"{name}: {node.name} ({length})")
    return found


def test_no_module_or_function_is_over_its_limit() -> None:
    assert oversized(PACKAGE) == []


def test_the_check_sees_a_long_module_and_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    (tmp_path / "long.py").write_text(f"def f():\n{body}\n" + "\n" * 240)
    assert oversized(tmp_path) == [
        f"{tmp_path.name}/long.py: module (301)",
        f"{tmp_path.name}/long.py: f (61)",
    ]
