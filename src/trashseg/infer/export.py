"""``trashseg export``: a run → ONNX, with a parity check against PyTorch on the same input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trashseg.infer.onnx import OnnxModel, export_onnx
from trashseg.infer.sources import checkpoint_of, load_source


def export_run(run: str | Path, out: str | Path | None = None, batch: int = 2) -> dict:
    run = Path(run)
    source = load_source(run)
    out = Path(out) if out else (run if run.is_dir() else run.parent.parent) / "model.onnx"
    meta = {"classes": source.classes, "image_size": source.image_size, "val_miou": source.info.get("val_miou"),
            "checkpoint": str(checkpoint_of(run))}
    export_onnx(source.model, out, source.image_size, meta)
    rng = np.random.default_rng(0)
    size = source.image_size
    images = torch.from_numpy(rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
    with torch.inference_mode():
        reference = source.model(images).softmax(1)
    onnx_probs = OnnxModel(out)(images).softmax(1)
    diff = float((reference - onnx_probs).abs().max())
    return {"onnx": str(out), "max_abs_prob_diff": diff, "parity_batch": batch}
