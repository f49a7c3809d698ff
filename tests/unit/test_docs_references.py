"""Every reference into ``docs/`` resolves, and nothing points outside the repository.

The code, tests and README cite the behaviour contract as ``docs/<page>.md#<section>``. This
checks, over every text file of the repository: that each cited page exists and has a heading
with that anchor (GitHub's rule: lower case, punctuation dropped, spaces to ``-``, ``-1``,
``-2`` … for repeated headings); that the Markdown links of ``docs/``, ``README.md`` and
``CONTRIBUTING.md`` resolve inside the repository (anchors included); that the backticked
relative paths of ``README.md`` and ``CONTRIBUTING.md`` exist; that every path into the
repository's own trees (``nexus_trio/…``, ``tests/…``, ``bench/…``, ``scripts/…``, ``etc/…``,
``systemd/…``), anywhere, names a file or directory that exists; and that nothing cites a file
outside the repository (the old specification, ``../shared``, ``ARCHITECTURE`` rules, an
upper-case ``*.md`` that is not here).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Not scanned: its fixtures are broken on purpose.
_SELF = Path(__file__).resolve()

#: Directories never scanned: tool state, virtual environments, build and benchmark output.
_SKIP_DIRS = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}
_SKIP_SUFFIXES = {".pyc", ".png", ".gguf", ".db"}

_DOCS_REF = re.compile(r"docs/([\w./-]+?\.md)(?:#([\w-]+))?")
_MD_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_BACKTICKED_PATH = re.compile(r"`(\.{0,2}/?[\w.@-]+(?:/[\w.@-]*)+)`")
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
_OUTSIDE = re.compile(r"\bSPEC\b|\.\./shared|§\d|\bARCHITECTURE\b")
#: A path into one of the repository's own trees, as code, tests and docs cite them.
_TREE_PATH = re.compile(
    r"(?<![\w/.-])((?:nexus_trio|tests|bench|scripts|etc|systemd)/[\w./@-]*[\w/])"
)
#: An upper-case Markdown file name (``ARCHITECTURE.md``): it must be in the repository.
_CAPS_DOC = re.compile(r"(?<![\w/.-])([A-Z][A-Z_-]+\.md)\b")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (before the duplicate suffix)."""
    text = re.sub(r"[`*_~]|<[^>]*>", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every anchor the headings of a Markdown document define, outside code fences."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match is None:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def text_files(root: Path) -> Iterator[Path]:
    """The repository's text files, without tool state and ignored output."""
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(p in _SKIP_DIRS or p.endswith(".egg-info") or p == "__pycache__" for p in parts):
            continue
        if parts[:2] == ("bench", "results") or not path.is_file() or path == _SELF:
            continue
        if path.suffix not in _SKIP_SUFFIXES:
            yield path


def _ignored_prefixes(root: Path) -> tuple[str, ...]:
    """Directories ``.gitignore`` names by path (``bench/results/``): generated, not shipped."""
    gitignore = root / ".gitignore"
    lines = gitignore.read_text().splitlines() if gitignore.exists() else []
    return tuple(line.strip() for line in lines if "/" in line.strip().rstrip("/"))


def _target(root: Path, base: Path, link: str, where: str) -> list[str]:
    """Problems with one relative link ``link`` written in directory ``base``."""
    path_part, _, anchor = link.partition("#")
    target = (base / path_part).resolve() if path_part else base / "."
    if not target.is_relative_to(root):
        return [f"{where}: {link} points outside the repository"]
    if not target.exists():
        return [f"{where}: {link} does not exist"]
    if anchor and target.suffix == ".md" and anchor not in anchors(target.read_text()):
        return [f"{where}: {link}: no heading with anchor #{anchor}"]
    return []


def problems(root: Path) -> list[str]:
    """Every dangling or outside reference under ``root``, as ``file:line: what``."""
    found: list[str] = []
    ignored = _ignored_prefixes(root)
    for path in text_files(root):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        rel = path.relative_to(root)
        in_docs = rel.parts[0] == "docs"
        is_front_page = str(rel) in {"README.md", "CONTRIBUTING.md"}
        for number, line in enumerate(text.splitlines(), 1):
            where = f"{rel}:{number}"
            for match in _DOCS_REF.finditer(line):
                found += _target(root, root, match.group(0), where)
            if _OUTSIDE.search(line) and "RFC" not in line:
                found.append(f"{where}: reference to the old specification: {line.strip()}")
            if path.suffix == ".md" and (in_docs or is_front_page):
                for link in _MD_LINK.findall(line):
                    if re.match(r"^[a-z]+:", link):
                        continue  # https:, mailto:
                    link = link if link.startswith("#") or "/" in link else f"./{link}"
                    found += _target(root, path.parent, link, where)
            if is_front_page:
                for ref in _BACKTICKED_PATH.findall(line):
                    if ref.startswith(("/", *ignored)):
                        continue  # a path on the host (/etc/...), or generated output
                    found += _target(root, root, ref, where)
            found += _missing_files(root, path, line, where, ignored, reported=found)
    return list(dict.fromkeys(found))


def _missing_files(
    root: Path, path: Path, line: str, where: str, ignored: tuple[str, ...], reported: list[str]
) -> list[str]:
    """Paths into the repository's trees, and upper-case ``*.md`` names, that are not here
    (once per line: a link or backticked path already reported is not reported again)."""
    missing: list[str] = []
    for cited in _TREE_PATH.findall(line):
        if cited.startswith(ignored) or (root / cited).exists():
            continue
        if not any(f.startswith(f"{where}: {cited} ") for f in reported):
            missing.append(f"{where}: {cited} is not in the repository")
    for name in _CAPS_DOC.findall(line):
        if not (root / name).exists() and not (path.parent / name).exists():
            missing.append(f"{where}: {name} is not in the repository")
    return missing


def test_every_reference_resolves_inside_the_repository() -> None:
    found = problems(REPO)
    assert not found, "dangling references:\n" + "\n".join(found)


def test_docs_pages_exist() -> None:
    pages = {p.name for p in (REPO / "docs").glob("*.md")}
    assert {"README.md", "api.md", "proxying.md", "routing.md", "quality.md"} <= pages
    assert {"metrics.md", "configuration.md", "operations.md", "cli.md"} <= pages


def test_slug_follows_github() -> None:
    assert slug("Queue and overload") == "queue-and-overload"
    assert slug("`GET /v1/models`") == "get-v1models"
    assert slug("Timeouts, retries and the final answer") == "timeouts-retries-and-the-final-answer"
    assert slug("TTFT penalty (smart)") == "ttft-penalty-smart"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n## B c\n") == {"a", "a-1", "b-c"}


def test_broken_references_are_reported_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Page\n\n## Some section\n\n[up](../README.md)\n")
    (tmp_path / "pkg.py").write_text(
        "# see docs/a.md#some-section\n# see docs/a.md#gone\n# see docs/b.md#x\n# see SPEC §4.2\n"
        "# (ARCHITECTURE rule 4) and ARCHITECTURE.md; nexus_trio/gone.py, but pkg.py is here\n"
    )
    (tmp_path / "README.md").write_text(
        "[ok](docs/a.md#page) [out](../outside.md) [none](docs/c.md)\n"
        "the contract is `../shared/x.md`; config in `etc/missing.toml`\n"
    )
    assert problems(tmp_path) == [
        "README.md:1: docs/c.md does not exist",
        "README.md:1: ../outside.md points outside the repository",
        "README.md:2: reference to the old specification: "
        "the contract is `../shared/x.md`; config in `etc/missing.toml`",
        "README.md:2: ../shared/x.md points outside the repository",
        "README.md:2: etc/missing.toml does not exist",
        "pkg.py:2: docs/a.md#gone: no heading with anchor #gone",
        "pkg.py:3: docs/b.md#x does not exist",
        "pkg.py:4: reference to the old specification: # see SPEC §4.2",
        "pkg.py:5: reference to the old specification: "
        "# (ARCHITECTURE rule 4) and ARCHITECTURE.md; nexus_trio/gone.py, but pkg.py is here",
        "pkg.py:5: nexus_trio/gone.py is not in the repository",
        "pkg.py:5: ARCHITECTURE.md is not in the repository",
    ]
