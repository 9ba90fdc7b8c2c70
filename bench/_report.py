"""Shared by the bench scripts: replace one section of docs/benchmarks.md, keeping the others; name the CPU."""

from __future__ import annotations

import re
from pathlib import Path

from trashseg.fileio import atomic_write_text
from trashseg.machine import cpu_summary

HEADER = "# Benchmarks\n\nEvery figure here is written by a script under `bench/`; rerun it to refresh its section.\n"


def update_section(path: Path, title: str, body: str) -> None:
    text = path.read_text() if path.exists() else HEADER
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    atomic_write_text(path, text)


def cpu_model() -> str:
    """The CPU's model name, usable cores and the features that decide bf16/int8 speed (``trashseg.machine``)."""
    return cpu_summary()
