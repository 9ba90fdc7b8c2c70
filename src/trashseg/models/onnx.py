"""ONNX export of a Segmenter (normalisation included, dynamic batch and size) and the ONNX Runtime model that
stands in for it at inference: the same call (uint8 images → logits), classes, image size and info."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trashseg.config import InferConfig, hw, parse_size, validate_as
from trashseg.errors import ModelNotFoundError, TrashsegError, require_extra
from trashseg.fileio import atomic_write_json, atomic_write_with


def export_onnx(
    module: torch.nn.Module, path: Path, *, image_size: int | tuple[int, int], meta: dict[str, Any], opset: int = 17
) -> None:
    """Input: uint8 N×H×W×3 RGB (``images``); output: float logits N×C×H×W (``logits``). Batch, height and width
    are dynamic. ``<path>.json`` beside it carries the classes and sizes that predict needs."""
    require_extra("onnx", "onnx", "ONNX export")  # torch's exporter writes the file with it
    module = module.eval().cpu()
    example = torch.zeros(1, *hw(image_size), 3, dtype=torch.uint8)
    axes = {"images": {0: "batch", 1: "height", 2: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}}

    def write(tmp: str) -> None:
        # dynamo=False: the TorchScript exporter needs no onnxscript and handles smp/timm models well
        torch.onnx.export(
            module,
            (example,),
            tmp,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )

    atomic_write_with(path, write)
    atomic_write_json(Path(f"{path}.json"), meta)


def _read_meta(path: Path) -> dict[str, Any]:
    """The classes and input size that `trashseg export` writes beside the model, checked before they are used."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrashsegError(f"{path}: missing (export with `trashseg export` writes it)") from None
    except (OSError, ValueError) as exc:
        raise TrashsegError(f"{path}: cannot read it as JSON ({exc}); export the model again") from None
    classes, size = (meta.get("classes"), meta.get("image_size")) if isinstance(meta, dict) else (None, None)
    if not (
        isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) for c in classes) and _is_size(size)
    ):
        raise TrashsegError(
            f"{path}: needs 'classes' (a list of names) and 'image_size' (a positive integer, or [height, width]); "
            "export the model again"
        )
    return meta


def _is_size(size: object) -> bool:
    """S, or [H, W] as JSON writes a (height, width) tuple: what the config accepts, any side >= 1."""
    try:
        parse_size(size, floor=1)
    except ValueError:
        return False
    return True


class OnnxSegmenter:
    """An exported model on ONNX Runtime, used like a ``Segmenter``: called on a uint8 B×H×W×3 tensor it returns
    logits; ``classes``, ``image_size`` and ``info`` (for a prediction folder's meta.json) come from the JSON that
    ``trashseg export`` writes beside it."""

    def __init__(self, path: str | Path, device: torch.device | str = "cpu"):
        ort = require_extra("onnxruntime", "onnx", "Running an ONNX model")
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelNotFoundError(f"{self.path}: ONNX model not found")
        self.meta = _read_meta(Path(f"{self.path}.json"))
        # the run's test-time settings; models exported before they were recorded get the library's defaults
        self.infer = validate_as(InferConfig, self.meta.get("infer", {}), f"{self.path}.json: infer")
        wanted = ["CUDAExecutionProvider"] if torch.device(device).type == "cuda" else []
        chosen = [p for p in (*wanted, "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:  # ONNX Runtime runs no code from the file, and refuses external data outside the model's folder
            self.session = ort.InferenceSession(str(self.path), providers=chosen)
        except Exception as exc:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
            raise TrashsegError(f"{self.path}: cannot load as an ONNX model: {exc}") from None
        self.classes: list[str] = self.meta["classes"]
        self.image_size = parse_size(self.meta["image_size"], floor=1)
        self.info: dict[str, Any] = {
            "source": str(self.path.resolve()),
            "runtime": "onnxruntime",
            "val_miou": self.meta.get("val_miou"),
        }

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        batch = np.ascontiguousarray(images.cpu().numpy().astype(np.uint8))
        return torch.from_numpy(self.session.run(["logits"], {"images": batch})[0])
