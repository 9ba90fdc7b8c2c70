"""Shared by the bench scripts: replace one section of docs/benchmarks.md, keeping the others; name the CPU."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

from trashseg.fileio import atomic_write_text

HEADER = "# Benchmarks\n\nEvery figure here is written by a script under `bench/`; rerun it to refresh its section.\n"


def update_section(path: Path, title: str, body: str) -> None:
    text = path.read_text() if path.exists() else HEADER
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    atomic_write_text(path, text)


def cpu_model() -> str:
    """The CPU's model name and core count (platform.processor() is empty on most Linux systems)."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    return f"{name or platform.machine()}, {os.cpu_count()} cores"
