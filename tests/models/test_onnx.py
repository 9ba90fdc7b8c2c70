"""Opening an exported ONNX model: ONNX Runtime runs no code from the file; what it or its meta JSON cannot
provide is a named error (issue 16.1), and the meta is bounded (issue 27)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from tests.helpers import write_image
from trashseg.errors import TrashsegError
from trashseg.models.onnx import ClassCountMismatch, OnnxSegmenter, export_onnx

META = {"classes": ["bg", "a"], "image_size": 8}


def _model_reading(path, location: str) -> None:
    """A graph whose only tensor is stored as "external data" at `location`: a way to read any file on load."""
    tensor = TensorProto(name="w", data_type=TensorProto.UINT8, dims=[6], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", "6")):
        tensor.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["logits"])],
        "g",
        [],
        [helper.make_tensor_value_info("logits", TensorProto.UINT8, [6])],
        [tensor],
    )
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    path.with_name(f"{path.name}.json").write_text(json.dumps(META))


@pytest.mark.parametrize("location", ["../secret.txt", "{secret}", "link.bin"])
def test_external_data_outside_the_models_folder_is_refused(tmp_path, location):
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "link.bin").symlink_to(secret)
    _model_reading(tmp_path / "m" / "model.onnx", location.format(secret=secret))
    with pytest.raises(TrashsegError, match=r"model.onnx: cannot load as an ONNX model: .*External data path"):
        OnnxSegmenter(tmp_path / "m" / "model.onnx")


@pytest.mark.parametrize(
    "meta, error",
    [
        (None, "model.onnx: cannot load as an ONNX model"),
        ("{not json", "model.onnx.json: cannot read it as JSON"),
        (
            '{"classes": "bg,a", "image_size": 8}',
            r"model.onnx.json: invalid config\n  classes: Input should be a valid list",
        ),
        ('["bg", "a"]', r"model.onnx.json: invalid config\n  \(root\): Input should be a valid dictionary"),
        (
            '{"classes": ["bg", "a"], "image_size": [8]}',
            r"image_size: Value error, expected a side S \(S×S\) or \[height",
        ),
        (json.dumps({**META, "infer": {"hflip": "sideways"}}), r"model.onnx.json: infer: invalid config\n  hflip: "),
    ],
    ids=["corrupt-model", "corrupt-meta", "classes-not-a-list", "meta-not-a-mapping", "not-a-size", "infer-not-valid"],
)
def test_unusable_model_or_meta_is_named(tmp_path, meta, error):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not an onnx model")
    path.with_name("model.onnx.json").write_text(meta or json.dumps(META))
    with pytest.raises(TrashsegError, match=error):
        OnnxSegmenter(path)


# --- the meta beside a real export -----------------------------------------------------------------------------

CLASSES = ["background", "paper", "metal"]


class _Tiny(nn.Module):
    """uint8 N×H×W×3 in, logits of 3 classes out: the smallest network that exports as `trashseg export` does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, len(CLASSES), 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(images.permute(0, 3, 1, 2).float() / 255)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    export_onnx(_Tiny(), path, image_size=8, meta={"classes": CLASSES, "image_size": 8})
    return path


def _with_meta(model: Path, folder: Path, meta: dict) -> Path:
    """A copy of the exported model in `folder`, with `meta` as its .onnx.json."""
    path = folder / "model.onnx"
    shutil.copyfile(model, path)
    path.with_name("model.onnx.json").write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize(
    "meta, error",
    [
        ({"image_size": 60000}, r"image_size: Value error, each side at most 4096 .*got 60000"),
        ({"image_size": [8, 60000]}, r"image_size: Value error, each side at most 4096 .*got \[8, 60000\]"),
        ({"image_size": 0}, r"image_size: Value error, expected a side S"),
        ({"classes": []}, r"classes: Value error, needs at least 2 classes"),
        ({"classes": ["background", "paper", "paper"]}, r"classes: Value error, duplicate class names \['paper'\]"),
        ({"classes": ["background", ""]}, r"classes\.1: String should have at least 1 character"),
        ({"classes": ["background", "x" * 101]}, r"classes\.1: String should have at most 100 characters"),
        ({"classes": ["background", 5]}, r"classes\.1: Input should be a valid string"),
        ({"classes": [f"c{i}" for i in range(300)]}, r"classes: Value error, at most 255 classes"),
        ({"val_miou": 7}, r"val_miou: Input should be less than or equal to 1"),
        ({"infer": ["hflip"]}, r"infer: Input should be a valid dictionary"),
        ({"padding": "x" * 1_000_000}, r"larger than 1000000 bytes; export the model again"),
    ],
    ids=[
        "huge-size",
        "huge-side",
        "zero-size",
        "no-classes",
        "duplicate-class",
        "empty-name",
        "long-name",
        "name-not-a-string",
        "too-many-classes",
        "miou-out-of-range",
        "infer-not-a-mapping",
        "huge-file",
    ],
)
def test_hostile_meta_is_refused_by_file_and_field(exported: Path, tmp_path: Path, meta: dict, error: str) -> None:
    path = _with_meta(exported, tmp_path, {"classes": CLASSES, "image_size": 8, **meta})
    with pytest.raises(TrashsegError, match=rf"{tmp_path}/model.onnx.json: (invalid config\n  )?{error}"):
        OnnxSegmenter(path)


@pytest.mark.parametrize("classes", [CLASSES[:2], [*CLASSES, "glass"]], ids=["fewer", "more"])
def test_class_list_that_does_not_fit_the_networks_outputs_is_refused_on_opening(
    exported: Path, tmp_path: Path, classes: list[str]
) -> None:
    path = _with_meta(exported, tmp_path, {"classes": classes, "image_size": 8})
    with pytest.raises(
        ClassCountMismatch,
        match=rf"model.onnx: the network outputs 3 classes but .*model.onnx.json: classes names "
        rf"{len(classes)}",
    ):
        OnnxSegmenter(path)


def test_keys_of_later_exports_are_kept_and_ignored(exported: Path, tmp_path: Path) -> None:
    extra = {"engine": "onnxruntime", "int8": {"val_miou": 0.41}, "checkpoint": "runs/x/checkpoints/best.ckpt"}
    path = _with_meta(exported, tmp_path, {"classes": CLASSES, "image_size": [8, 16], "val_miou": 0.42, **extra})
    model = OnnxSegmenter(path)
    assert model.classes == CLASSES and model.image_size == (8, 16) and model.info["val_miou"] == 0.42
    assert model(torch.zeros(1, 8, 16, 3, dtype=torch.uint8)).shape == (1, 3, 8, 16)


def _channels_as_classes(path: Path, classes: list[str]) -> Path:
    """A graph that returns its input's channels as class logits: its class count (3 for RGB) is known only when it
    runs, as the input's channel dimension is symbolic."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
            helper.make_node("Transpose", ["x"], ["logits"], perm=[0, 3, 1, 2]),
        ],
        "g",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["n", "h", "w", "c"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", "c", "h", "w"])],
    )
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    path.with_name(f"{path.name}.json").write_text(json.dumps({"classes": classes, "image_size": 8}))
    return path


def test_class_count_of_a_dynamic_graph_is_checked_on_its_first_output_before_any_mask(tmp_path: Path, cli) -> None:
    """A graph whose class count is symbolic opens (it is unknown until it runs); predict then stops at the first
    batch, with the named error, and writes no mask."""
    path = _channels_as_classes(tmp_path / "model.onnx", CLASSES[:2])
    model = OnnxSegmenter(path)
    with pytest.raises(ClassCountMismatch, match="the network outputs 3 classes but .*onnx.json: classes names 2"):
        model(torch.from_numpy(np.zeros((1, 8, 8, 3), np.uint8)))

    write_image(tmp_path / "photos" / "a.png")
    code, text = cli(["predict", path, "--images", tmp_path / "photos", "--out", tmp_path / "pred", "--workers", "0"])
    assert code != 0 and "the network outputs 3 classes" in " ".join(text.split()), text
    assert not list((tmp_path / "pred").rglob("*.png"))
    assert OnnxSegmenter(_channels_as_classes(tmp_path / "fits.onnx", CLASSES))(torch.zeros(1, 8, 8, 3)).shape[1] == 3
