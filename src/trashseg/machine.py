"""Facts about the machine that change which engine or precision is fastest: the CPU's name and features.

Read from ``/proc/cpuinfo`` (Linux) without importing torch, so `trashseg doctor` and the bench scripts name the
CPU the same way; ``platform.processor()`` is empty on most Linux systems and ``platform.machine()`` says only
"x86_64" for CPUs whose bf16 speed differs by 2x.
"""

from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path

# Features that decide fp32 / bf16 / int8 speed, as /proc/cpuinfo spells them, with what each is for.
FEATURES = {
    "avx2": "fp32 kernels",
    "avx512f": "wide fp32 kernels",
    "avx512_vnni": "int8 dot products (VNNI)",
    "avx512_bf16": "bf16 dot products",
    "amx_bf16": "bf16 matrix tiles (AMX)",
    "amx_int8": "int8 matrix tiles (AMX)",
}


@cache
def _cpuinfo() -> list[str]:
    info = Path("/proc/cpuinfo")
    return info.read_text(encoding="utf-8", errors="replace").splitlines() if info.exists() else []


def cpu_name() -> str:
    """The CPU's model name (``AMD EPYC``, ``Intel(R) Xeon(R) ...``), or the architecture where none is given."""
    names = (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name"))
    return next(names, "") or platform.machine() or "unknown CPU"


def cpu_flags() -> set[str]:
    """The first core's feature flags (all cores of one machine report the same)."""
    flags = next((line.split(":", 1)[1] for line in _cpuinfo() if line.startswith("flags")), "")
    return set(flags.split())


def usable_cores() -> int:
    """Cores this process may run on (a container's or taskset's limit), not the host's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_summary() -> str:
    """One line for a benchmark row or a bug report: name, cores, and the features that set the fast precision."""
    present = [f for f in FEATURES if f in cpu_flags()]
    return f"{cpu_name()}, {usable_cores()} cores" + (f" ({', '.join(present)})" if present else "")
