"""Building the gateway's wheel and installing it with pipx, as the README says, offline once the
dependencies' wheels are cached.

The wheels of the runtime dependencies, of ``pip`` and of the build backend are kept in
``~/.cache/nexus-trio/wheelhouse/<key>/`` (``$NEXUS_WHEELHOUSE_DIR``), the key hashing the
requirements and the Python version: the first run fetches them (through pip and its cache),
every later one installs with ``--no-index`` from there. The wheel is built from a copy of the
sources in a temporary directory, so the clone is never written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "-q")


def requirements() -> list[str]:
    """What an offline install needs: the build backend, pip (pipx's shared libraries) and the
    runtime dependencies, from ``pyproject.toml``."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    return ["pip", *project["build-system"]["requires"], *project["project"]["dependencies"]]


def wheelhouse() -> Path:
    """The cached directory of wheels for :func:`requirements`, made once per key (staged, then
    renamed, so a run cut short leaves nothing half made)."""
    wanted = requirements()
    key_text = "\n".join([sys.version.split()[0], *sorted(wanted)])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    root = Path(
        os.environ.get("NEXUS_WHEELHOUSE_DIR", Path.home() / ".cache/nexus-trio/wheelhouse")
    )
    directory = root / key
    if directory.is_dir():
        return directory
    staging = root / f".{key}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run(
        [*PIP_WHEEL, "--wheel-dir", str(staging), *wanted],
        check=True,
        capture_output=True,
    )
    try:
        staging.rename(directory)
    except OSError:  # another run made it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def build_wheel(wheels: Path, directory: Path) -> Path:
    """Build the gateway's wheel from a copy of the sources in ``directory``, offline from
    ``wheels``; returns its path."""
    source = directory / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "nexus_trio", source / "nexus_trio", ignore=shutil.ignore_patterns("__pycache__")
    )
    dist = directory / "dist"
    subprocess.run(
        [
            *PIP_WHEEL,
            "--no-deps",
            "--no-index",
            "--find-links",
            str(wheels),
            "-w",
            str(dist),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("nexus_trio-*.whl")
    return wheel


def pipx_install(wheel: Path, wheels: Path, directory: Path) -> Path:
    """``pipx install`` the wheel with its home, bin and shared libraries in ``directory``,
    dependencies from ``wheels`` only; returns the installed ``nexus-trio``."""
    pipx = Path(sys.executable).with_name("pipx")
    env = {
        **os.environ,
        "PIPX_HOME": str(directory / "pipx"),
        "PIPX_BIN_DIR": str(directory / "bin"),
        "PIPX_MAN_DIR": str(directory / "man"),
        "PIPX_SHARED_LIBS": str(directory / "shared"),
        "PYTHONPATH": "",
    }
    subprocess.run(
        [str(pipx), "install", f"--pip-args=--no-index --find-links={wheels}", str(wheel)],
        check=True,
        capture_output=True,
        env=env,
    )
    return directory / "bin" / "nexus-trio"
