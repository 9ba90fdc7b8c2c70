"""What `trashseg predict` can read: a run folder, a checkpoint, or an exported ONNX model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trashseg.errors import TrashsegError
from trashseg.infer.onnx import OnnxModel
from trashseg.infer.predictor import Model


@dataclass
class Source:
    model: Model
    classes: list[str]
    image_size: int
    info: dict[str, Any] = field(default_factory=dict)  # goes into the prediction folder's meta.json


def _run_val_miou(run_dir: Path) -> float | None:
    path = run_dir / "metrics.json"
    return json.loads(path.read_text())["best"]["miou"] if path.exists() else None


def checkpoint_of(run_or_ckpt: Path) -> Path:
    """A run folder's best checkpoint (last if no validation ran), or the checkpoint given."""
    if run_or_ckpt.is_dir():
        for name in ("best.ckpt", "last.ckpt"):
            if (run_or_ckpt / "checkpoints" / name).exists():
                return run_or_ckpt / "checkpoints" / name
        raise TrashsegError(f"{run_or_ckpt}: no checkpoints/best.ckpt or last.ckpt (is it a trashseg run folder?)")
    return run_or_ckpt


def load_source(path: str | Path, device: torch.device | str = "cpu") -> Source:
    from trashseg.train.module import load_module

    path = Path(path)
    if path.suffix == ".onnx":
        model = OnnxModel(path, device)
        return Source(model, model.meta["classes"], model.meta["image_size"],
                      {"source": str(path.resolve()), "runtime": "onnxruntime", "val_miou": model.meta.get("val_miou")})
    if not path.exists():
        raise TrashsegError(f"{path}: no such run folder, checkpoint or ONNX file")
    ckpt = checkpoint_of(path)
    module = load_module(ckpt, map_location=device).to(device)
    run_dir = ckpt.parent.parent
    cfg = module.cfg
    return Source(module, cfg.data.classes, cfg.augment.image_size,
                  {"source": str(ckpt.resolve()), "runtime": "torch", "val_miou": _run_val_miou(run_dir),
                   "arch": cfg.model.arch, "encoder": cfg.model.encoder})
