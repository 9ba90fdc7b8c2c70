"""``trashseg export``: a run → ONNX, with a parity check against PyTorch on the same input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trashseg.config import hw
from trashseg.models.onnx import OnnxSegmenter, export_onnx
from trashseg.models.segmenter import Segmenter, checkpoint_of, load_segmenter


def export_run(run: str | Path, out: str | Path | None = None, batch: int = 2) -> dict:
    run = Path(run)
    model = load_segmenter(run)  # a model folder, or a run's model file or checkpoint
    out = Path(out) if out else (run if run.is_dir() else run.parent.parent) / "model.onnx"
    meta = {
        "classes": model.classes,
        "image_size": model.image_size,
        "infer": model.infer.model_dump(),
        "val_miou": model.info.get("val_miou"),
        "checkpoint": model.info["source"],
    }
    export_onnx(model, out, image_size=model.image_size, meta=meta)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (batch, *hw(model.image_size), 3), dtype=np.uint8))
    with torch.inference_mode():
        reference = model(images).softmax(1)
    onnx_probs = OnnxSegmenter(out)(images).softmax(1)
    diff = float((reference - onnx_probs).abs().max())
    return {"onnx": str(out), "max_abs_prob_diff": diff, "parity_batch": batch}


def export_pretrained(run: str | Path, out: str | Path | None = None) -> dict:
    """The model file (``model.safetensors`` + ``model.yaml``) of a run's best checkpoint, written into `out` (the
    run folder by default): how a run trained before runs wrote it gets one, and how a model is handed on."""
    run = Path(run)
    model = Segmenter.load(run)
    folder = Path(out) if out else (run if run.is_dir() else run.parent.parent)
    model.save_pretrained(folder, model.info.get("val_miou"))
    return {"model_file": str(folder), "from": str(checkpoint_of(run))}
