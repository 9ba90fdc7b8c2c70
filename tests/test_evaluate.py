"""`trashseg evaluate`: the score of a prediction folder and of a CSV against a value computed independently here."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tests.helpers import CLASSES, make_coco, run_cli
from trashseg.config import DataConfig
from trashseg.data.coco import load_split
from trashseg.data.masks import mask_cache
from trashseg.infer.folder import PredictionFolder
from trashseg.infer.submit import submit


def _miou_by_hand(pairs: list[tuple[np.ndarray, np.ndarray]], n: int) -> float:
    """The competition's formula from its definition: per class |P∩G| / |P∪G| summed over all images, then the
    mean over classes present in either."""
    inter, union = np.zeros(n), np.zeros(n)
    for pred, gt in pairs:
        for c in range(n):
            inter[c] += np.logical_and(pred == c, gt == c).sum()
            union[c] += np.logical_or(pred == c, gt == c).sum()
    return float(np.mean(inter[union > 0] / union[union > 0]))


@pytest.fixture
def spoiled(tmp_path):
    """The tiny dataset's ground truth as a prediction folder, with known mistakes: image 1's Metal square called
    Paper, and a 6×10 block of image 2 called Battery."""
    make_coco(tmp_path)
    split = load_split(tmp_path / "train.json", tmp_path, CLASSES)
    truth = mask_cache(split, DataConfig(root=tmp_path, classes=CLASSES, cache_dir=tmp_path / "cache"))
    folder = PredictionFolder(tmp_path / "pred")
    folder.init({"classes": CLASSES, "split": str(split.path), "data_root": str(tmp_path)})
    pairs = []
    for image in split.images:
        gt = truth.get(image)
        pred = gt.copy()
        if image["id"] == 1:
            pred[pred == 2] = 1
        else:
            pred[20:26, 30:40] = 3
        folder.write(image["file_name"], pred)
        pairs.append((pred, gt))
    return tmp_path, split, pairs


def test_a_folder_scores_what_the_formula_gives_at_its_own_size_and_at_256(spoiled, capsys):
    root, split, pairs = spoiled
    expected = _miou_by_hand(pairs, len(CLASSES))
    assert 0.3 < expected < 0.95  # the mistakes cost something, and not everything
    at_256 = [tuple(cv2.resize(m, (256, 256), interpolation=cv2.INTER_NEAREST) for m in pair) for pair in pairs]
    for size, want in ((0, expected), (256, _miou_by_hand(at_256, len(CLASSES)))):
        args = ["evaluate", root / "pred", "--data", root, "--split", "train.json", "--size", size]
        code, text = run_cli([*args, "--out", root / f"s{size}.json", "--set", f"data.classes={CLASSES}"], capsys)
        assert code == 0, text
        assert json.loads((root / f"s{size}.json").read_text())["miou"] == pytest.approx(want, abs=1e-9)


def test_a_csv_scores_the_same_as_the_folder_it_was_written_from(spoiled, capsys):
    root, split, pairs = spoiled
    submit(root / "pred", split, root / "sub.csv")
    at_256 = [tuple(cv2.resize(m, (256, 256), interpolation=cv2.INTER_NEAREST) for m in pair) for pair in pairs]
    args = ["evaluate", root / "sub.csv", "--data", root, "--split", "train", "--out", root / "csv.json"]
    code, text = run_cli([*args, "--set", f"data.classes={CLASSES}"], capsys)
    assert code == 0, text
    assert json.loads((root / "csv.json").read_text())["miou"] == pytest.approx(_miou_by_hand(at_256, len(CLASSES)))
