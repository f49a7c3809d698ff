"""The dashboard's files ship in the built package (``pip install .`` serves them).

(The other system tests run the editable install, which reads the files from the source tree
whether or not they are declared as package data.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nexus_trio.dashboard.page import ASSETS

pytestmark = pytest.mark.system

ROOT = Path(__file__).parents[2]


def test_wheel_contains_the_dashboard_files(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "nexus_trio", source / "nexus_trio", ignore=shutil.ignore_patterns("__pycache__")
    )
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("nexus_trio-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    files = ("index.html", *ASSETS)
    for name in files:
        assert f"nexus_trio/dashboard/static/{name}" in names
    # Installed from the wheel, the package finds its files where it is installed.
    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    check = (
        "import nexus_trio, sys; from nexus_trio.dashboard.page import read_static; "
        f"assert nexus_trio.__file__.startswith({str(site)!r}), nexus_trio.__file__; "
        f"print(sum(len(read_static(name)) for name in {files!r}))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", check],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(site)},
        cwd=tmp_path,
    )
    assert int(shown.stdout) == sum(
        len((ROOT / "nexus_trio/dashboard/static" / n).read_bytes()) for n in files
    )
