import json

import numpy as np
import pytest

from tests.helpers import run_cli
from trashseg.errors import TrashsegError
from trashseg.infer.folder import PredictionFolder
from trashseg.pseudo import confident_labels, write_pseudo


def test_confident_labels_threshold():
    probs = np.array([[[0.95, 0.5]], [[0.05, 0.5]]])
    assert confident_labels(probs, 0.9).tolist() == [[0, 255]]


def test_pseudo_then_train_with_extra_data(trained_run, sample_data, tmp_path, capsys):
    pred = tmp_path / "pred"
    assert (
        run_cli(
            ["predict", trained_run, "--data", sample_data, "--out", pred, "--save-probs", "--workers", "0"], capsys
        )[0]
        == 0
    )
    code, text = run_cli(["pseudo", pred, "--out", tmp_path / "pl", "--threshold", "0.3"], capsys)
    assert code == 0, text
    manifest = json.loads((tmp_path / "pl" / "pseudo.json").read_text())
    assert len(manifest["images"]) == 8 and manifest["threshold"] == 0.3
    recipe = trained_run / "config.yaml"
    code, text = run_cli(
        [
            "train",
            recipe,
            "--data",
            sample_data,
            "--out",
            tmp_path / "r2",
            "--extra-data",
            tmp_path / "pl",
            "--set",
            "data.extra_ratio=0.5",
        ],
        capsys,
    )
    assert code == 0, text
    code, text = run_cli(["pseudo", trained_run, "--out", tmp_path / "x"], capsys)
    assert code == 2 and "not a prediction folder" in text


def test_extra_data_is_mixed_in_with_its_ratio(trained_run, sample_data, tmp_path, capsys):
    import pytest

    from trashseg.config import load_config
    from trashseg.train.run import build_data

    pred = tmp_path / "pred"
    assert (
        run_cli(
            ["predict", trained_run, "--data", sample_data, "--out", pred, "--save-probs", "--workers", "0"], capsys
        )[0]
        == 0
    )
    assert run_cli(["pseudo", pred, "--out", tmp_path / "pl", "--threshold", "0.99"], capsys)[0] == 0
    cfg = load_config(trained_run / "config.yaml", [f"data.extra=[{tmp_path / 'pl'}]", "data.extra_ratio=0.25"])
    data = build_data(cfg)
    assert len(data.train) == 24 + 8
    assert data.sampling_weights[24:].sum() == pytest.approx(0.25)
    sample = data.train[(24, 5)]  # first pseudo-labelled test image
    assert sample["file_name"].endswith(".jpg") and sample["mask"].shape == (64, 64)
    assert 255 in sample["mask"].unique().tolist()  # unconfident pixels are ignored


@pytest.mark.parametrize("split_text", ["[1, 2]", '{"images": 3}', '{"images": [7]}', "{not json"])
def test_a_split_that_is_not_a_coco_file_is_named(tmp_path, split_text):
    """A prediction folder someone sent names its split: whatever that file holds, the error names it."""
    (tmp_path / "split.json").write_text(split_text)
    folder = PredictionFolder(tmp_path / "pred")
    meta = {"classes": ["bg", "a"], "split": str(tmp_path / "split.json"), "data_root": str(tmp_path)}
    folder.init({**meta, "has_probs": True})
    folder.write("x.png", np.zeros((4, 4), np.uint8), np.full((2, 4, 4), 0.5, np.float32))
    with pytest.raises(TrashsegError, match=r"its split .*split.json cannot be read as a COCO file"):
        write_pseudo(tmp_path / "pred", tmp_path / "out", 0.9)
