"""Inference engines through the CLI and the API: `export --int8` makes a model that predict and the API run, with
what it cost in its meta; `infer.engine` picks, records and refuses engines by name."""

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import trashseg
from tests.helpers import predict_val
from trashseg.cli import main
from trashseg.config import InferConfig
from trashseg.errors import TrashsegError
from trashseg.infer.export import export_run
from trashseg.infer.folder import PredictionFolder
from trashseg.models.engines import ENGINES, native_bf16, native_int8, select_engine
from trashseg.models.onnx import OnnxSegmenter
from trashseg.models.segmenter import load_model


@pytest.fixture(scope="module")
def int8_export(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`trashseg export RUN --out m.onnx --int8 --calib 3` in a folder of its own: the fp32 model's path."""
    out = tmp_path_factory.mktemp("int8") / "m.onnx"
    try:
        main(["export", str(trained_run), "--out", str(out), "--int8", "--calib", "3"])
    except SystemExit as exc:
        assert not exc.code, f"export --int8 exited with {exc.code}"
    return out


def test_export_int8_scores_both_models_on_val_and_records_the_calibration(int8_export, sample_data) -> None:
    fp32 = int8_export
    meta = json.loads(Path(f"{fp32.with_name('m.int8.onnx')}.json").read_text())
    q = meta["quantization"]
    assert q["calibration_images"] == 3  # --calib, not the default 64 (the sample's train split has 24)
    assert q["format"] == "QDQ" and q["per_channel"] is True
    assert 0 <= q["val_miou_fp32"] <= 1 and 0 <= q["val_miou_int8"] <= 1
    assert q["val_split"] == str((sample_data / "val.json").resolve())
    assert meta["classes"] == json.loads(Path(f"{fp32}.json").read_text())["classes"]


def test_an_int8_model_runs_at_other_sizes_as_tta_scales_need(int8_export) -> None:
    """Its shape arithmetic (the encoder's "same" padding from the input size) stays fp32: quantised with the
    calibration size's ranges, larger inputs got wrong pads and the graph failed."""
    fp32, int8 = OnnxSegmenter(int8_export), OnnxSegmenter(int8_export.with_name("m.int8.onnx"))
    for h, w in ((64, 64), (96, 160), (256, 256)):
        images = torch.from_numpy(np.random.default_rng(h).integers(0, 256, (2, h, w, 3), dtype=np.uint8))
        got, expected = int8(images), fp32(images)
        assert got.shape == expected.shape == (2, 11, h, w)
        assert (got.argmax(1) == expected.argmax(1)).float().mean() > 0.5


def test_an_int8_model_predicts_masks_through_predict_and_the_api(int8_export, sample_data, tmp_path, cli) -> None:
    fp32 = int8_export
    int8 = fp32.with_name("m.int8.onnx")
    code, text = cli(predict_val(int8, sample_data, tmp_path / "pred"))
    assert code == 0, text
    assert "'engine': 'onnx-int8'" in text  # the summary says which engine ran
    folder = PredictionFolder(tmp_path / "pred")
    assert folder.meta().engine == "onnx-int8"
    names = [i["file_name"] for i in json.loads((sample_data / "val.json").read_text())["images"]]
    assert folder.names() == sorted(names) and folder.mask(names[0]).shape == (128, 128)
    model = trashseg.load(int8, device="cpu")
    result = model.predict(np.full((40, 56, 3), 90, np.uint8))
    assert model.info["engine"] == "onnx-int8" and result.mask.shape == (40, 56)
    assert result.mask.max() < len(model.classes)


def test_auto_prefers_the_int8_model_beside_an_fp32_one_unless_told(int8_export, sample_data, tmp_path, cli) -> None:
    fp32 = int8_export
    assert trashseg.load(fp32, device="cpu").info["engine"] == ("onnx-int8" if native_int8() else "onnx")
    assert trashseg.load(fp32, device="cpu", infer=InferConfig(engine="onnx-int8")).info["engine"] == "onnx-int8"
    code, text = cli(predict_val(fp32, sample_data, tmp_path / "pred", "--set", "infer.engine=onnx"))
    assert code == 0, text
    assert PredictionFolder(tmp_path / "pred").meta().engine == "onnx"


def test_auto_picks_an_engine_the_run_offers_and_records_it(trained_run, sample_data, tmp_path, cli) -> None:
    code, text = cli(predict_val(trained_run, sample_data, tmp_path / "pred"))
    assert code == 0, text
    engine = PredictionFolder(tmp_path / "pred").meta().engine
    assert engine == ("torch-bf16" if native_bf16("cpu") else "torch")  # the run has no ONNX export of its own
    assert f"'engine': '{engine}'" in text


def test_a_run_offers_its_own_exports_while_they_are_current(trained_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    export_run(run)  # run/model.onnx, made of run's checkpoint
    torch_model = load_model(run)
    assert select_engine(torch_model, "onnx", "cpu").info["engine"] == "onnx"
    assert select_engine(torch_model, "auto", "cpu").info["engine"] == "onnx"
    later = (run / "model.onnx").stat().st_mtime + 60
    os.utime(run / "model.safetensors", (later, later))  # trained further after the export: it no longer stands in
    with pytest.raises(TrashsegError, match=r"infer.engine=onnx: no ONNX model of .*older than the checkpoint"):
        select_engine(torch_model, "onnx", "cpu")
    assert select_engine(torch_model, "auto", "cpu").info["engine"] in ("torch", "torch-bf16")


def test_an_engine_the_model_does_not_offer_is_named_with_the_fix(trained_run, sample_data, tmp_path, cli) -> None:
    code, text = cli(predict_val(trained_run, sample_data, tmp_path / "p", "--set", "infer.engine=onnx-int8"))
    assert code != 0 and "infer.engine=onnx-int8" in text and "trashseg export RUN --int8" in text, text
    assert "Traceback" not in text
    code, text = cli(predict_val(trained_run, sample_data, tmp_path / "q", "--set", "infer.engine=tensorrt"))
    assert code != 0 and "infer.engine: Input should be 'auto', 'torch', 'torch-bf16', 'onnx' or" in text, text
    assert "Traceback" not in text
    assert set(ENGINES) | {"auto"} == set(InferConfig.model_fields["engine"].annotation.__args__)


def test_export_int8_without_the_onnx_extra_names_it(trained_run, tmp_path, cli, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)  # as if not installed
    code, text = cli(["export", trained_run, "--out", tmp_path / "m.onnx", "--int8"])
    assert code != 0 and 'pip install "trashseg[onnx]"' in text and "int8 quantisation" in text, text
    assert not (tmp_path / "m.int8.onnx").exists()
