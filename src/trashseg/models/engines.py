"""Inference engines: one trained model run by PyTorch (fp32, or bf16 autocast) or by ONNX Runtime (the fp32 export,
or its int8 quantisation from ``trashseg export --int8``), chosen by ``infer.engine``; ``auto`` takes the fastest
that this machine and this model offer, in the order measured on CPU (docs/benchmarks.md, ``bench/engines.py``).

A run folder offers torch, torch-bf16, and the ONNX models ``trashseg export`` wrote into it (``model.onnx``,
``model.int8.onnx``) while they are still of its checkpoint; an ``X.onnx`` offers itself and ``X.int8.onnx``
beside it (an ``X.int8.onnx``, itself and ``X.onnx``).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from trashseg.config import InferConfig
from trashseg.errors import TrashsegError, require_extra
from trashseg.machine import cpu_flags  # empty off Linux: bf16 and int8 are then left to those who ask
from trashseg.models.onnx import OnnxSegmenter
from trashseg.models.segmenter import MODEL_WEIGHTS, InferenceModel, Segmenter, load_model

ENGINES = ("torch", "torch-bf16", "onnx", "onnx-int8")
# Fastest first. CPU: int8 ahead of fp32 ONNX Runtime ahead of PyTorch (bench/engines.py); int8 only where the CPU
# has VNNI / AMX and bf16 only where it computes bf16 natively (AVX512-BF16 / AMX): elsewhere they gain nothing.
# GPU: PyTorch (ONNX Runtime's CUDA provider is optional, int8 QDQ gains nothing there); infer.precision autocasts.
AUTO_ORDER = {"cpu": ("onnx-int8", "onnx", "torch-bf16", "torch"), "cuda": ("torch",)}
INT8_SUFFIX = ".int8.onnx"


def int8_path(fp32: Path) -> Path:
    """Where ``export --int8`` writes the int8 model of ``fp32`` (``model.onnx`` → ``model.int8.onnx``)."""
    return fp32.with_name(fp32.name.removesuffix(".onnx") + INT8_SUFFIX)


def engine_of(model: InferenceModel) -> str:
    """The engine a loaded model runs on, as ``infer.engine`` names it."""
    return str(model.info["engine"])


class Bf16Segmenter:
    """A ``Segmenter`` run under bf16 autocast, logits handed back in fp32: on CPUs with AVX512-BF16 or AMX about
    twice as fast; the weights stay fp32, so nothing is lost in the file."""

    def __init__(self, segmenter: Segmenter, device: torch.device | str):
        self.segmenter, self.device_type = segmenter, torch.device(device).type
        self.info: dict[str, Any] = {**segmenter.info, "engine": "torch-bf16"}

    @property
    def classes(self) -> list[str]:
        return self.segmenter.classes

    @property
    def image_size(self) -> int | tuple[int, int]:
        return self.segmenter.image_size

    @property
    def infer(self) -> InferConfig:
        return self.segmenter.infer

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.segmenter(images).float()


def native_int8() -> bool:
    """Whether the CPU has int8 dot products (VNNI, AMX): without them int8 ran no faster than ONNX Runtime fp32
    (0.96-1.18x on an AVX2-only EPYC, docs/benchmarks.md), so auto does not trade accuracy for nothing."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags())


def native_bf16(device: torch.device | str) -> bool:
    """Whether the device computes bf16 itself: a CUDA GPU that supports it, a CPU with AVX512-BF16 or AMX."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def _made_of(path: Path, checkpoint: object) -> bool:
    """Whether ``trashseg export`` made the model at `path` of `checkpoint` (the resolved path its JSON records)."""
    try:
        meta = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return checkpoint is not None and isinstance(meta, dict) and meta.get("checkpoint") == str(checkpoint)


def _onnx_files(model: InferenceModel) -> dict[str, Path]:
    """The ONNX models that stand in for `model`: {engine: file}. Only exports of the same checkpoint count, and in
    a run folder only those newer than it: a run trained further, or an int8 model left from an older export, must
    not stand in for it."""
    source = Path(model.info["source"])
    if isinstance(model, OnnxSegmenter):
        own = engine_of(model)
        other, path = (
            ("onnx-int8", int8_path(source))
            if own == "onnx"
            else ("onnx", source.with_name(source.name.removesuffix(INT8_SUFFIX) + ".onnx"))
        )
        current = path != source and path.is_file() and _made_of(path, model.meta.checkpoint)
        return {own: source, **({other: path} if current else {})}
    # a model folder (or a run's model file) exports beside its weights; a checkpoint's run is two folders up
    run, weights = (source, source / MODEL_WEIGHTS) if source.is_dir() else (source.parent.parent, source)
    files = {"onnx": run / "model.onnx", "onnx-int8": int8_path(run / "model.onnx")}
    return {
        name: path
        for name, path in files.items()
        if path.is_file() and _made_of(path, source) and path.stat().st_mtime >= weights.stat().st_mtime
    }


def offered(model: InferenceModel, device: torch.device | str) -> dict[str, Callable[[], InferenceModel]]:
    """The engines `model` can run on here, each with how to open it."""
    engines: dict[str, Callable[[], InferenceModel]] = {}
    if isinstance(model, Segmenter):
        engines["torch"] = lambda: model
        engines["torch-bf16"] = lambda: Bf16Segmenter(model, device)
    if importlib.util.find_spec("onnxruntime") is not None:
        own = Path(model.info["source"])
        for name, path in _onnx_files(model).items():
            engines[name] = (lambda: model) if path == own else partial(OnnxSegmenter, path, device)
    return engines


def select_engine(model: InferenceModel, engine: str, device: torch.device | str) -> InferenceModel:
    """`model` on the engine ``infer.engine`` names (``auto``: the first of ``AUTO_ORDER`` it offers here); its
    ``info["engine"]`` says which, for meta.json, predict's summary and serve's /info."""
    engines = offered(model, device)
    if engine == "auto":
        order = AUTO_ORDER.get(torch.device(device).type, ("torch",))
        # the model given is always usable (an X.int8.onnx given is run as int8); others only where they pay
        native = {"torch-bf16": native_bf16(device), "onnx-int8": native_int8(), engine_of(model): True}
        usable = [name for name in order if name in engines and native.get(name, True)]
        engine = usable[0] if usable else engine_of(model)
    elif engine not in engines:
        if engine.startswith("onnx"):  # a missing extra is named as every other one is
            require_extra("onnxruntime", "onnx", f"infer.engine={engine}")
        raise TrashsegError(_missing(model, engine))
    return engines[engine]() if engine in engines else model


def _missing(model: InferenceModel, engine: str) -> str:
    source = model.info["source"]
    if engine.startswith("torch"):
        return f"infer.engine={engine}: {source} is an ONNX model; give the run folder or checkpoint to run PyTorch"
    made = "`trashseg export RUN --int8`" if engine == "onnx-int8" else "`trashseg export RUN`"
    return (
        f"infer.engine={engine}: no {'int8 ' if engine == 'onnx-int8' else ''}ONNX model of {source} "
        f"(or it is older than the checkpoint); make one with {made}, or choose infer.engine=auto"
    )


def load_engine(
    path: str | os.PathLike[str], device: torch.device | str, infer: InferConfig | None = None
) -> InferenceModel:
    """``load_model`` on the engine that `infer` states (``infer.engine``), else the model's own infer section's."""
    model = load_model(path, device)
    return select_engine(model, (infer or InferConfig()).over(model.infer).engine, device)
