"""``trashseg export``: a run → ONNX, with a parity check against PyTorch on the same input; with ``int8``, also its
post-training int8 quantisation (``infer.quantize``), scored against fp32 on the run's val split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from trashseg.config import hw, load_config
from trashseg.data.coco import load_named_split
from trashseg.data.masks import mask_cache
from trashseg.fileio import atomic_write_json
from trashseg.infer.quantize import calibration_batches, quantize_onnx, sample_images, score_split
from trashseg.models.engines import int8_path
from trashseg.models.onnx import OnnxSegmenter, export_onnx
from trashseg.models.segmenter import Segmenter, checkpoint_of, load_segmenter


def export_run(
    run: str | Path,
    out: str | Path | None = None,
    batch: int = 2,
    *,
    int8: bool = False,
    calib: int = 64,
    data_root: Path | None = None,
) -> dict:
    """`run`'s model as ``model.onnx`` (or `out`); with `int8` also ``model.int8.onnx`` beside it, calibrated on
    `calib` training images of the run's dataset (or the one at `data_root`)."""
    run = Path(run)
    model = load_segmenter(run)  # a model folder, or a run's model file or checkpoint
    out = Path(out) if out else (run if run.is_dir() else run.parent.parent) / "model.onnx"
    meta = {
        "classes": model.classes,
        "image_size": model.image_size,
        "infer": model.infer.model_dump(),
        "val_miou": model.info.get("val_miou"),
        "checkpoint": model.info["source"],  # whose engines it may stand in for (models.engines)
    }
    export_onnx(model, out, image_size=model.image_size, meta=meta)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (batch, *hw(model.image_size), 3), dtype=np.uint8))
    with torch.inference_mode():
        reference = model(images).softmax(1)
    onnx_probs = OnnxSegmenter(out)(images).softmax(1)
    diff = float((reference - onnx_probs).abs().max())
    result: dict[str, Any] = {"onnx": str(out), "max_abs_prob_diff": diff, "parity_batch": batch}
    if int8:
        result |= _export_int8(model, out, meta, calib, data_root or _trained_on(run))
    return result


def _trained_on(run: Path) -> Path | None:
    """The dataset a run was trained on, from its ``config.yaml`` (a model file leaves machine paths out)."""
    folder = run if run.is_dir() else run.parent.parent
    recorded = folder / "config.yaml"
    return load_config(recorded).data.root if recorded.is_file() else None


def _export_int8(model: Segmenter, fp32: Path, meta: dict, calib: int, data_root: Path | None) -> dict[str, Any]:
    """Quantise `fp32` on `calib` training images, then score both models on val with the run's test-time settings;
    both mIoUs go into the int8 model's meta (``quantization``), so whoever deploys it sees what it costs."""
    data = model.config.data if data_root is None else model.config.data.model_copy(update={"root": data_root})
    train, val = load_named_split(data, "train"), load_named_split(data, "val", require_annotations=True)
    out = int8_path(fp32)
    calibration = sample_images(train, calib)
    settings = quantize_onnx(fp32, out, calibration_batches(model, calibration, model.infer))
    quantization = {**settings, "calibration_images": len(calibration), "calibration_split": str(train.path)}
    atomic_write_json(Path(f"{out}.json"), {**meta, "quantization": quantization})
    masks = mask_cache(val, data)
    scores = {
        "val_split": str(val.path),
        "val_miou_fp32": score_split(OnnxSegmenter(fp32), val, masks, model.infer),
        "val_miou_int8": score_split(OnnxSegmenter(out), val, masks, model.infer),
    }
    atomic_write_json(Path(f"{out}.json"), {**meta, "quantization": {**quantization, **scores}})
    return {"int8": str(out), "calibration_images": len(calibration), **scores}


def export_pretrained(run: str | Path, out: str | Path | None = None) -> dict:
    """The model file (``model.safetensors`` + ``model.yaml``) of a run's best checkpoint, written into `out` (the
    run folder by default): how a run trained before runs wrote it gets one, and how a model is handed on."""
    run = Path(run)
    model = Segmenter.load(run)
    folder = Path(out) if out else (run if run.is_dir() else run.parent.parent)
    model.save_pretrained(folder, model.info.get("val_miou"))
    return {"model_file": str(folder), "from": str(checkpoint_of(run))}
