"""The import graph of ``nexus_trio`` follows the layers drawn in its ``__init__`` docstring: no
import runs up a layer, and no two packages import each other, even through others."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "nexus_trio"
_LAYER_LINE = re.compile(r"^(\d+)\. ([^—]+?) —", re.MULTILINE)


def layers(package: Path) -> dict[str, int]:
    """Each top-level package or module named in the docstring's numbered list, by layer."""
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    found: dict[str, int] = {}
    for number, names in _LAYER_LINE.findall(docstring):
        for name in re.findall(r"``([\w.]+)``", names):
            found[name] = int(number)
    return found


def top_level_imports(package: Path) -> dict[str, set[str]]:
    """For each top-level package or module, the others it imports (anywhere in its code)."""
    graph: dict[str, set[str]] = {}
    members = {p.stem for p in package.glob("*.py")} | {
        p.parent.name for p in package.glob("*/__init__.py")
    }
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        if parts in (("__init__",), ("__main__",)):
            continue
        owner = parts[0]
        edges = graph.setdefault(owner, set())
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
                if node.module == package.name:
                    names = [f"{package.name}.{alias.name}" for alias in node.names]
            for name in names:
                pieces = name.split(".")
                # ``members`` leaves out ``from nexus_trio import __version__``.
                inside = pieces[0] == package.name and len(pieces) > 1
                if inside and pieces[1] != owner and pieces[1] in members:
                    edges.add(pieces[1])
    return graph


def upward_imports(graph: dict[str, set[str]], layer_of: dict[str, int]) -> list[str]:
    return sorted(
        f"{owner} (layer {layer_of[owner]}) imports {target} (layer {layer_of[target]})"
        for owner, targets in graph.items()
        for target in targets
        if layer_of[target] > layer_of[owner]
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one package (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_every_package_has_a_layer() -> None:
    graph = top_level_imports(PACKAGE)
    assert sorted(set(graph) - set(layers(PACKAGE))) == []


def test_no_import_runs_up_the_layers() -> None:
    assert upward_imports(top_level_imports(PACKAGE), layers(PACKAGE)) == []


def test_no_packages_import_each_other() -> None:
    assert cycles(top_level_imports(PACKAGE)) == []


def test_the_checks_see_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    for name in ("low", "high", "other"):
        (package / name).mkdir(parents=True)
        (package / name / "__init__.py").write_text("")
    (package / "__init__.py").write_text('"""x\n\n1. ``low`` — a\n2. ``high``, ``other`` — b\n"""')
    (package / "low" / "a.py").write_text("from pkg.high import x\n")
    (package / "high" / "b.py").write_text("import pkg.other.c\n")
    (package / "other" / "c.py").write_text("from pkg import low\n")
    graph = top_level_imports(package)
    assert graph == {"low": {"high"}, "high": {"other"}, "other": {"low"}}
    assert upward_imports(graph, layers(package)) == ["low (layer 1) imports high (layer 2)"]
    assert cycles(graph) == [["high", "low", "other"]]
