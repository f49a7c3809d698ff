"""CONTRIBUTING.md's package map and the package tree agree: every package and root module has
its row, every row names something that exists, and every package says what it owns."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "nexus_trio"


def map_rows(contributing: str, package: str = "nexus_trio") -> list[str]:
    """The first column of the package map's table, in order."""
    section = contributing.split("### Package map", 1)[1].split("\n## ", 1)[0]
    row = re.compile(rf"^\| `({package}/[\w/]*(?:\.py)?)` \|")
    return [match.group(1) for line in section.splitlines() if (match := row.match(line))]


def tree_entries(package: Path) -> set[str]:
    """Every package (``<package>/x/``) and root module (``<package>/x.py``) but the root's own
    ``__init__`` and ``__main__``."""
    entries = {
        f"{init.parent.relative_to(package.parent).as_posix()}/"
        for init in package.rglob("__init__.py")
        if init.parent != package
    }
    entries |= {
        f"{package.name}/{module.name}"
        for module in package.glob("*.py")
        if module.name not in ("__init__.py", "__main__.py")
    }
    return entries


def test_the_map_lists_the_tree_and_nothing_else() -> None:
    rows = map_rows((REPO / "CONTRIBUTING.md").read_text())
    assert len(rows) == len(set(rows)), "a package is listed twice"
    tree = tree_entries(PACKAGE)
    assert sorted(tree - set(rows)) == [], "in the tree, missing from CONTRIBUTING's map"
    assert sorted(set(rows) - tree) == [], "in CONTRIBUTING's map, not in the tree"


def test_every_package_says_what_it_owns() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        assert docstring, f"{init.relative_to(REPO)} has no docstring"
        if init.parent != PACKAGE:
            assert len(docstring) > 80, f"{init.relative_to(REPO)}: say what it owns"


def test_the_map_reader_sees_changes(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "a").mkdir(parents=True)
    for name in ("__init__.py", "errors.py", "a/__init__.py"):
        (tmp_path / "pkg" / name).write_text('"""x"""\n')
    assert tree_entries(tmp_path / "pkg") == {"pkg/a/", "pkg/errors.py"}
    text = "### Package map\n\n| `pkg/a/` | owns |\n| `pkg/b.py` | gone |\n## Next\n"
    assert map_rows(text, "pkg") == ["pkg/a/", "pkg/b.py"]
