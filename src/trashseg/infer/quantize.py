"""Post-training static int8 quantisation of an exported ONNX model (ONNX Runtime's QDQ format), calibrated on
training images fed through the predictor exactly as predict feeds them, and the split score that says what the
int8 model gave up against fp32.

The uint8 → float normalisation at the graph's start and everything after its last convolution (the upsampling to
the input size, the logit bias) stay fp32: they cost little, and int8 there would round the logits themselves.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trashseg.config import InferConfig
from trashseg.data.coco import CocoSplit
from trashseg.data.masks import MaskCache
from trashseg.errors import require_extra
from trashseg.fileio import atomic_write_with
from trashseg.infer.predictor import Predictor
from trashseg.metrics import COMPETITION_SIZE, ConfusionMeter, resize_nearest
from trashseg.models.engines import engine_of
from trashseg.models.segmenter import InferenceModel
from trashseg.progress import progress_bar

# How the int8 model is made (recorded in its meta): QDQ keeps the graph readable by every ONNX Runtime provider;
# per-channel weights keep the depthwise convolutions of mobile encoders accurate; MinMax ranges over the
# calibration images. QOperator (fused QLinearConv nodes), the other format, ONNX Runtime 1.32 could not make for
# FPN-Lite0 ("Graph is not a DAG"; bench/engines.py tries it).
SETTINGS: dict[str, Any] = {"format": "QDQ", "per_channel": True, "activations": "uint8", "weights": "int8"}


def sample_images(split: CocoSplit, n: int, seed: int = 0) -> list[np.ndarray]:
    """`n` images of `split` drawn at random (all of them if it has fewer): spread over its videos or scenes
    rather than the first ones, which are often frames of the same one."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(split.images), size=min(n, len(split.images)), replace=False)
    return [split.load_image(split.images[i]) for i in sorted(chosen)]


def calibration_batches(model: InferenceModel, images: list[np.ndarray], cfg: InferConfig) -> list[np.ndarray]:
    """The uint8 batches the predictor feeds the network for `images` under `cfg` (same resize, TTA views and
    batch size as predict), so that calibration sees the activations inference will."""
    batches: list[np.ndarray] = []

    def record(chunk: torch.Tensor) -> torch.Tensor:
        batches.append(chunk.cpu().numpy())
        return torch.zeros(len(chunk), len(model.classes), *chunk.shape[1:3])

    Predictor(record, model.image_size, cfg).predict_masks(images)
    return batches


def quantize_onnx(fp32: Path, out: Path, batches: list[np.ndarray], quant_format: str = "QDQ") -> dict[str, Any]:
    """`fp32` → int8 `out` (written atomically), activation ranges from `batches`; returns the settings used.
    `quant_format` QOperator (fused QLinearConv nodes) is there for bench/engines.py to compare against."""
    quantization = require_extra("onnxruntime.quantization", "onnx", "int8 quantisation")
    onnx = require_extra("onnx", "onnx", "int8 quantisation")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # ONNX shape inference and graph optimisation first; the symbolic pass cannot resolve the dynamic height
        # and width through the decoders' upsampling ("Incomplete symbolic shape inference"), and is not needed
        quantization.quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        float_ends = _float_ends(onnx.load(str(prepared)))
        reader = _Reader(batches)

        def write(path: str) -> None:
            quantization.quantize_static(
                str(prepared),
                path,
                reader,
                quant_format=quantization.QuantFormat[quant_format],
                per_channel=SETTINGS["per_channel"],
                activation_type=quantization.QuantType.QUInt8,
                weight_type=quantization.QuantType.QInt8,
                nodes_to_exclude=float_ends,
                calibrate_method=quantization.CalibrationMethod.MinMax,
            )

        atomic_write_with(out, write)
    return {**SETTINGS, "format": quant_format, "calibration_batches": len(batches), "fp32_nodes": len(float_ends)}


def _float_ends(model: Any) -> list[str]:
    """The nodes kept fp32: those before the first convolution (normalisation), after the last one (upsampling,
    logit bias), and every node of the shape arithmetic between them (the TF-style "same" padding of the
    EfficientNet-Lite encoders computes its pads from the input's size: quantised, 16 became 14 and the graph broke)."""
    graph = model.graph
    nodes = list(graph.node)
    convs = [i for i, node in enumerate(nodes) if node.op_type == "Conv"]
    if not convs:
        return []
    constants = {t.name for t in graph.initializer} | {o for n in nodes if n.op_type == "Constant" for o in n.output}
    shape_math: set[str] = set()  # tensors computed from a Shape node and constants only
    kept = {node.name for node in nodes[: convs[0]] + nodes[convs[-1] + 1 :]}
    for node in nodes:  # ONNX lists nodes in topological order
        inputs = [name for name in node.input if name and name not in constants]
        if node.op_type == "Shape" or (inputs and all(name in shape_math for name in inputs)):
            shape_math.update(node.output)
            kept.add(node.name)
    return sorted(kept)


class _Reader:
    """ONNX Runtime's CalibrationDataReader over recorded batches (duck-typed: it only calls ``get_next``)."""

    def __init__(self, batches: list[np.ndarray]):
        self.batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {"images": batch}


def score_split(model: InferenceModel, split: CocoSplit, masks: MaskCache, cfg: InferConfig) -> float:
    """Mean IoU of `model` on `split` with the test-time settings `cfg`, scored as ``trashseg evaluate`` scores a
    prediction folder (one confusion matrix, masks at the competition's 256×256 nearest), without writing one."""
    predictor = Predictor(model, model.image_size, cfg)
    meter = ConfusionMeter(len(split.classes))
    with progress_bar() as bar:
        task = bar.add_task(f"{engine_of(model)} on {split.name}", total=len(split.images), rate="-")
        for start in range(0, len(split.images), cfg.batch_size):
            infos = split.images[start : start + cfg.batch_size]
            predicted = predictor.predict_masks([split.load_image(info) for info in infos])
            for info, mask in zip(infos, predicted, strict=True):
                meter.update(resize_nearest(mask, COMPETITION_SIZE), resize_nearest(masks.get(info), COMPETITION_SIZE))
            bar.update(task, advance=len(infos))
    return meter.compute().miou
