"""Opening an exported ONNX model: ONNX Runtime runs no code from the file; what it or its meta JSON cannot
provide is a named error (issue 16.1)."""

import json

import pytest
from onnx import TensorProto, helper

from trashseg.errors import TrashsegError
from trashseg.models.onnx import OnnxSegmenter

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
        ('{"classes": "bg,a", "image_size": 8}', r"model.onnx.json: needs 'classes' \(a list of names\)"),
        ('["bg", "a"]', "model.onnx.json: needs 'classes'"),
        ('{"classes": ["bg", "a"], "image_size": [8]}', r"'image_size' \(a positive integer, or \[height, width\]\)"),
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
