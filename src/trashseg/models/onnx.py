"""ONNX export of a Segmenter (normalisation included, dynamic batch and size) and the ONNX Runtime model that
stands in for it at inference: the same call (uint8 images → logits), classes, image size and info."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from torch.onnx.symbolic_helper import parse_args  # (v: a graph value, is: constant ints, b: a constant bool)

from trashseg.config import InferConfig, check_class_names, hw, parse_size, validate_as
from trashseg.errors import ModelNotFoundError, TrashsegError, require_extra
from trashseg.fileio import atomic_write_json, atomic_write_with

# 18: the first opset whose Resize antialiases (timm's ViT position embeddings are resampled that way, see
# _bicubic_antialiased); ONNX Runtime has run it since 1.14.
OPSET = 18
# Each side of the meta's image_size. The predictor feeds image_size × its TTA scales (up to 2 in recipes) and keeps
# one float32 probability map per class and view: at 4096² and 11 classes that is already 0.7 GB per image at
# scale 1, 3 GB at scale 2, beside the network's own activations. No recipe trains above 512; a larger value
# is a corrupt or hostile file (60000 would ask for 10.8 GB of input alone per image at scale 1).
MAX_SIDE = 4096
MAX_CLASS_NAME = 100  # characters of one class name: names are shown in tables, legends and the web page
MAX_META_BYTES = 1_000_000  # what export writes is under 10 kB; this bounds what a hostile file makes us parse


def export_onnx(
    module: torch.nn.Module,
    path: Path,
    *,
    image_size: int | tuple[int, int],
    meta: dict[str, Any],
    opset: int = OPSET,
) -> None:
    """Input: uint8 N×H×W×3 RGB (``images``); output: float logits N×C×H×W (``logits``). Batch, height and width
    are dynamic. ``<path>.json`` beside it carries the classes and sizes that predict needs."""
    require_extra("onnx", "onnx", "ONNX export")  # torch's exporter writes the file with it
    _register_symbolics(opset)
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


@cache
def _register_symbolics(opset: int) -> None:
    """ONNX forms for the operators that the TorchScript exporter gets wrong at a dynamic input size: without the
    first two UPerNet (the Swin recipes), PSPNet and DPT do not export, and without the third a Swin stage smaller
    than its window shift gives other logits than PyTorch. Registered once for the process: they stand in for the
    exporter's own forms of these operators, which are right only at a static size."""
    torch.onnx.register_custom_op_symbolic("aten::adaptive_avg_pool2d", _adaptive_avg_pool2d, opset)
    torch.onnx.register_custom_op_symbolic("aten::_upsample_bicubic2d_aa", _bicubic_antialiased, opset)
    torch.onnx.register_custom_op_symbolic("aten::roll", _roll, opset)


@parse_args("v", "is")
def _adaptive_avg_pool2d(g: Any, x: Any, output_size: list[int]) -> Any:
    """adaptive_avg_pool2d at any input size, as two matrix products: each output row (column) is the mean of input
    rows floor(i·H/n) to ceil((i+1)·H/n), torch's own bins. The exporter's AveragePool form needs a static size
    that the bins divide (pyramid pooling's 2, 3 and 6 bins, and PSPNet's `area` interpolation, which is this)."""
    if list(output_size) == [1, 1]:
        return g.op("GlobalAveragePool", x)
    shape = g.op("Shape", x)
    rows = _bin_means(g, x, g.op("Gather", shape, _const(g, 2)), output_size[0])
    cols = _bin_means(g, x, g.op("Gather", shape, _const(g, 3)), output_size[1])
    return g.op("MatMul", g.op("MatMul", rows, x), g.op("Transpose", cols, perm_i=[1, 0]))


def _bin_means(g: Any, like: Any, length: Any, bins: int) -> Any:
    """bins × length matrix whose row i averages the positions of adaptive pooling's bin i (in `like`'s dtype)."""
    index = _const(g, list(range(bins)))
    start = g.op("Div", g.op("Mul", index, length), _const(g, bins))  # integer division: floor, as all are >= 0
    ceiling = g.op("Add", g.op("Mul", g.op("Add", index, _const(g, 1)), length), _const(g, bins - 1))
    end = g.op("Div", ceiling, _const(g, bins))  # ceil((i+1)·length / bins)
    positions = g.op("Unsqueeze", g.op("Range", _const(g, 0), length, _const(g, 1)), _const(g, [0]))
    inside = g.op(
        "And",
        g.op("GreaterOrEqual", positions, g.op("Unsqueeze", start, _const(g, [1]))),
        g.op("Less", positions, g.op("Unsqueeze", end, _const(g, [1]))),
    )
    counts = g.op("Unsqueeze", g.op("Sub", end, start), _const(g, [1]))
    return g.op("Div", g.op("CastLike", inside, like), g.op("CastLike", counts, like))


@parse_args("v", "v", "b", "none")
def _bicubic_antialiased(g: Any, x: Any, output_size: Any, align_corners: bool, scale_factors: Any) -> Any:
    """F.interpolate(bicubic, antialias=True), which timm uses to resample a ViT's position embeddings to each
    input's grid (DPT): ONNX's antialiased cubic Resize, with torch's (Pillow's) kernel: a = -0.5 and the weights
    of taps outside the input dropped and renormalised."""
    if output_size.node().mustBeNone():
        raise torch.onnx.errors.OnnxExporterError("antialiased bicubic interpolation by a scale factor: give a size")
    batch_channels = g.op("Slice", g.op("Shape", x), _const(g, [0]), _const(g, [2]))
    size = g.op("Concat", batch_channels, g.op("Cast", output_size, to_i=7), axis_i=0)  # 7: TensorProto.INT64
    return g.op(
        "Resize",
        x,
        _none(g),
        _none(g),
        size,
        mode_s="cubic",
        cubic_coeff_a_f=-0.5,
        exclude_outside_i=1,
        antialias_i=1,
        coordinate_transformation_mode_s="align_corners" if align_corners else "half_pixel",
    )


@parse_args("v", "is", "is")
def _roll(g: Any, x: Any, shifts: list[int], dims: list[int]) -> Any:
    """torch.roll along `dims`, the shift taken modulo each dim's size as torch does. The exporter's own form slices
    at the shift itself, which at a size smaller than the shift rolls by nothing (Swin's window shift of 6 on a
    4×4 stage: inputs under 192 px)."""
    if len(shifts) != len(dims):
        raise torch.onnx.errors.OnnxExporterError("torch.roll without dims (of the flattened tensor)")
    shape = g.op("Shape", x)
    for shift, dim in zip(shifts, dims, strict=True):
        size = g.op("Gather", shape, _const(g, [dim]))
        split = g.op("Sub", size, g.op("Mod", _const(g, [shift]), size))  # integer Mod: the divisor's sign
        head = g.op("Slice", x, split, size, _const(g, [dim]))
        tail = g.op("Slice", x, _const(g, [0]), split, _const(g, [dim]))
        x = g.op("Concat", head, tail, axis_i=dim)
    return x


def _const(g: Any, value: int | list[int]) -> Any:
    return g.op("Constant", value_t=torch.tensor(value, dtype=torch.int64))


def _none(g: Any) -> Any:
    """An omitted optional input (Resize's roi and scales)."""
    value = g.op("prim::Constant")
    value.setType(torch._C.OptionalType.ofTensor())
    return value


def _bounded_size(value: object) -> int | tuple[int, int]:
    """S or [H, W] (parse_size's one message for both spellings), each side at most MAX_SIDE."""
    size = parse_size(value, floor=1)
    if max(hw(size)) > MAX_SIDE:
        raise ValueError(f"each side at most {MAX_SIDE} (the size predict feeds the network); got {value!r}")
    return size


ClassName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CLASS_NAME)]


class OnnxMeta(BaseModel):
    """``<model>.onnx.json``, which travels with the model and may come from anyone: what predict trusts from it
    is bounded here. Other keys are kept and ignored, so later exports may add their own (``engine``, ``int8``)
    and older readers still open the file."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    classes: Annotated[list[ClassName], AfterValidator(check_class_names)]
    image_size: Annotated[int | tuple[int, int], BeforeValidator(_bounded_size)]  # as augment.image_size
    infer: dict[str, Any] = Field(default_factory=dict)  # the run's test-time settings, checked as an InferConfig
    val_miou: float | None = Field(None, ge=0, le=1)
    checkpoint: str | None = Field(None, max_length=4096)  # what it was exported from (models.engines matches it)
    quantization: dict[str, Any] | None = None  # how `export --int8` made it; None for an fp32 export


class ClassCountMismatch(TrashsegError):
    """An ONNX model whose network outputs a different number of classes than its ``.onnx.json`` names: its masks
    would hold class ids that name nothing, or miss some."""


def _read_meta(path: Path) -> OnnxMeta:
    """The classes and input size that `trashseg export` writes beside the model, checked before they are used."""
    try:
        if path.stat().st_size > MAX_META_BYTES:
            raise TrashsegError(f"{path}: larger than {MAX_META_BYTES} bytes; export the model again")
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrashsegError(f"{path}: missing (export with `trashseg export` writes it)") from None
    except (OSError, ValueError) as exc:
        raise TrashsegError(f"{path}: cannot read it as JSON ({exc}); export the model again") from None
    return validate_as(OnnxMeta, raw, str(path))


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
        self.infer = validate_as(InferConfig, self.meta.infer, f"{self.path}.json: infer")
        wanted = ["CUDAExecutionProvider"] if torch.device(device).type == "cuda" else []
        chosen = [p for p in (*wanted, "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:  # ONNX Runtime runs no code from the file, and refuses external data outside the model's folder
            self.session = ort.InferenceSession(str(self.path), providers=chosen)
        except Exception as exc:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
            raise TrashsegError(f"{self.path}: cannot load as an ONNX model: {exc}") from None
        self._check_graph()
        self.classes: list[str] = self.meta.classes
        self.image_size: int | tuple[int, int] = self.meta.image_size
        self.info: dict[str, Any] = {
            "source": str(self.path.resolve()),
            "runtime": "onnxruntime",
            "engine": "onnx-int8" if self.meta.quantization is not None else "onnx",  # export --int8 records how
            "val_miou": self.meta.val_miou,
        }

    def _check_graph(self) -> None:
        """The export's input and output names, and its class count where the graph states it (a fixed number of
        output channels, as `trashseg export` writes); a dynamic one is checked on each output instead."""
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        if inputs != ["images"] or "logits" not in outputs:
            raise TrashsegError(
                f"{self.path}: not a model that `trashseg export` wrote (inputs {inputs}, outputs "
                f"{list(outputs)}; expected images → logits)"
            )
        channels = outputs["logits"][1] if len(outputs["logits"]) == 4 else None
        if isinstance(channels, int):
            self._check_classes(channels)

    def _check_classes(self, channels: int) -> None:
        if channels != len(self.meta.classes):
            raise ClassCountMismatch(
                f"{self.path}: the network outputs {channels} classes but {self.path}.json: classes names "
                f"{len(self.meta.classes)}; export the model again"
            )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        batch = np.ascontiguousarray(images.cpu().numpy().astype(np.uint8))
        logits = self.session.run(["logits"], {"images": batch})[0]
        self._check_classes(logits.shape[1])  # before any caller turns these logits into a mask
        return torch.from_numpy(logits)
