"""The package installs anywhere: a wheel built from this checkout runs in a fresh virtualenv outside it, recipes
included, and the source compiles on every Python that pyproject.toml claims."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLAIMED = ("3.11", "3.12", "3.13")  # pyproject.toml's classifiers


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built offline from a copy of the sources (setuptools from this environment), so the checkout gets no
    build/ or egg-info folders."""
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
    )
    return next(out.glob("trashseg-*.whl"))


def _fresh_venv(path: Path, python: str = sys.executable) -> Path:
    """A venv without pip: packages go in through this environment's pip (``pip --python``)."""
    subprocess.run([python, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_wheel_ships_the_recipes_as_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.removeprefix("trashseg/configs/") for n in names if n.startswith("trashseg/configs/"))
    in_checkout = sorted(p.relative_to(ROOT / "configs").as_posix() for p in (ROOT / "configs").rglob("*.yaml"))
    assert shipped == in_checkout and "data/trashcan.yaml" in shipped and "upernet_swin_b.yaml" in shipped
    assert {"trashseg/serve/page.html", "trashseg/py.typed"} <= set(names)  # the web page `serve` answers with


def test_installed_wheel_runs_outside_the_checkout(wheel, tmp_path):
    """The wheel alone (--no-deps) in a new venv; its dependencies come from this environment's site-packages
    through a .pth file, which adds the folder but not its editable install of trashseg (not processed there)."""
    python = _fresh_venv(tmp_path / "venv")
    site = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path).stdout.strip()
    )
    (site / "_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    bin_dir = python.parent
    found = _run([str(python), "-c", "import trashseg; print(trashseg.__file__)"], work)
    assert Path(found.stdout.strip()).is_relative_to(site), found  # the wheel's copy, not the checkout's
    result = _run([str(bin_dir / "trashseg"), "demo", "--help"], work)
    assert result.returncode == 0 and "Run every stage on generated data" in result.stdout, result
    result = _run([str(bin_dir / "trashseg"), "configs"], work)
    assert result.returncode == 0 and "upernet_swin_b" in result.stdout and "data/trashcan" in result.stdout, result
    # a recipe by name resolves from the installed package; the run then stops at the missing dataset
    result = _run([str(bin_dir / "trashseg"), "train", "upernet_swin_b"], work)
    assert result.returncode == 2 and "no dataset given" in result.stderr, result


def _interpreter(version: str) -> str | None:
    """pythonX.Y from PATH, or from pyenv's versions when its shim does not expose it globally."""
    candidates = [shutil.which(f"python{version}")]
    if shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
        candidates += sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"), reverse=True)
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def _venv_with_wheel(wheel: Path, tmp_path: Path, version: str) -> Path:
    python = _interpreter(version)
    if python is None:
        pytest.skip(f"Python {version} is not installed here")
    venv_python = _fresh_venv(tmp_path / "venv", python)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv_python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        check=True,
    )
    return venv_python


@pytest.mark.parametrize("version", CLAIMED)
def test_wheel_installs_and_compiles_on_each_claimed_python(wheel, tmp_path, version):
    """What can be checked offline, without the multi-GB torch of another Python: pip accepts the wheel there (tags
    and Requires-Python), every module of the installed package compiles under that Python's grammar, and the
    package imports with its metadata."""
    venv_python = _venv_with_wheel(wheel, tmp_path, version)
    package = _run([str(venv_python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path)
    compiled = _run([str(venv_python), "-m", "compileall", "-q", f"{package.stdout.strip()}/trashseg"], tmp_path)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    found = _run(
        [
            str(venv_python),
            "-c",
            "import importlib.metadata as m, trashseg; print(m.version('trashseg'), trashseg.__version__)",
        ],
        tmp_path,
    )
    assert found.stdout.split() == ["0.1.0", "0.1.0"], found


def _pins(*names: str) -> list[str]:
    lock = {line.split("==")[0].lower(): line for line in (ROOT / "requirements.lock").read_text().splitlines()}
    return [lock[n.lower()] for n in names]


@pytest.mark.slow
@pytest.mark.parametrize("version", CLAIMED[1:])
def test_recipes_cli_runs_on_newer_pythons(wheel, tmp_path, version):
    """On 3.12 / 3.13 the CLI and the shipped recipes really run: the wheel plus the light packages that
    `trashseg configs` and config loading import (pinned from requirements.lock, from PyPI; about 20 s)."""
    venv_python = _venv_with_wheel(wheel, tmp_path, version)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv_python),
            "install",
            "-q",
            "--no-deps",
            *_pins(
                "typer",
                "click",
                "rich",
                "markdown-it-py",
                "mdurl",
                "pygments",
                "shellingham",
                "typing_extensions",
                "annotated-doc",
                "pyyaml",
                "pydantic",
                "pydantic_core",
                "annotated-types",
                "typing-inspection",
            ),
        ],
        check=True,
    )
    result = _run([str(venv_python.parent / "trashseg"), "configs"], tmp_path)
    assert result.returncode == 0 and "upernet_swin_b" in result.stdout and "data/trashcan" in result.stdout, result
    loaded = _run(
        [
            str(venv_python),
            "-c",
            "from trashseg.config import load_config; print(load_config('upernet_swin_b').model.arch)",
        ],
        tmp_path,
    )
    assert loaded.stdout.strip() == "UPerNet", loaded
