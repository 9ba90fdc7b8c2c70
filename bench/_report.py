"""Shared by the bench scripts: replace one section of docs/benchmarks.md, keeping the others; name the CPU."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from trashseg.fileio import atomic_write_text
from trashseg.machine import cpu_summary

HEADER = (
    "# Benchmarks\n\nA section named after a script (`bench/NAME.py`) is written by that script; rerun it to refresh "
    "the section, never edit it by hand.\n"
)


def update_section(path: Path, title: str, body: str) -> None:
    text = path.read_text() if path.exists() else HEADER
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    atomic_write_text(path, text)


def commit() -> str:
    """The checkout's commit (with ``+`` when it has uncommitted changes), so a figure names the code it measured."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()

    return (git("rev-parse", "--short", "HEAD") or "unknown") + ("+" if git("status", "--porcelain", "-uno") else "")


def cpu_model() -> str:
    """The CPU's model name, usable cores and the features that decide bf16/int8 speed (``trashseg.machine``)."""
    return cpu_summary()
