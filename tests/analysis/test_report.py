import csv
import json
from pathlib import Path

import numpy as np
import pytest

from trashseg.analysis.report import source_runs, write_report
from trashseg.config import load_config
from trashseg.data.coco import load_named_split
from trashseg.data.masks import MaskCache
from trashseg.evaluate import evaluate
from trashseg.infer.folder import PredictionFolder


@pytest.fixture
def val(sample_data: Path):
    cfg = load_config(None, [f"data.root={sample_data}"])
    return load_named_split(cfg.data, "val", True)


def _folder(root: Path, split, cache: MaskCache, spoil: dict[str, int]) -> Path:
    """Predictions equal to the ground truth, except that the images named in `spoil` become that class."""
    folder = PredictionFolder(root)
    folder.init({"classes": split.classes, "source": "test", "split": str(split.path)})
    for img in split.images:
        mask = cache.get(img)
        folder.write(
            img["file_name"], np.full_like(mask, spoil[img["file_name"]]) if img["file_name"] in spoil else mask
        )
    return root


def test_scores_worst_images_and_files(val, tmp_path: Path):
    cache = MaskCache(val, tmp_path / "cache")
    bad = val.images[3]["file_name"]
    perfect = _folder(tmp_path / "perfect", val, cache, {})
    spoiled = _folder(tmp_path / "spoiled", val, cache, {bad: 0})
    numbers = write_report([perfect, spoiled], val, tmp_path / "r", cache, worst=3)
    assert numbers["folders"]["perfect"]["miou"] == 1.0
    # the split-level number is exactly `trashseg evaluate`'s
    assert numbers["folders"]["spoiled"]["miou"] == pytest.approx(evaluate(spoiled, val, cache).miou)
    perfect_sizes = numbers["folders"]["perfect"]["iou_by_size"].values()
    assert {b["all"] for b in perfect_sizes} <= {None, 1.0} and sum(b["objects"] for b in perfect_sizes) > 0
    spoiled_sizes = [b["all"] for b in numbers["folders"]["spoiled"]["iou_by_size"].values() if b["all"] is not None]
    assert min(spoiled_sizes) < 1.0
    with open(tmp_path / "r" / "per_image.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(val.images)
    by_name = {r["file_name"]: r for r in rows}
    assert float(by_name[bad]["miou:spoiled"]) < 1.0 and float(by_name[bad]["miou:perfect"]) == 1.0
    assert all(float(r["miou:spoiled"]) == 1.0 for n, r in by_name.items() if n != bad)
    assert json.loads((tmp_path / "r" / "per_image.json").read_text())[3]["file_name"] == bad
    html = (tmp_path / "r" / "index.html").read_text()
    gallery = html[html.index("worst images") :]
    assert gallery.index(bad) < gallery.index(val.images[0]["file_name"])  # the spoiled image leads the gallery
    assert gallery.count("data:image/jpeg") == 3 * 4  # image, truth, two predictions per row
    assert 'class="sortable"' in gallery


def test_missing_predictions_and_wrong_classes_are_named(val, tmp_path: Path):
    cache = MaskCache(val, tmp_path / "cache")
    folder = PredictionFolder(tmp_path / "p")
    folder.init({"classes": val.classes, "source": "test"})
    folder.write(val.images[0]["file_name"], cache.get(val.images[0]))
    with pytest.raises(Exception, match=r"no prediction for 7 image\(s\)"):
        write_report([tmp_path / "p"], val, tmp_path / "r", cache)


def test_cli_report_follows_the_run_for_its_learning_curve(cli, trained_run: Path, sample_data: Path, tmp_path: Path):
    pred = tmp_path / "pred"
    code, text = cli(["predict", trained_run, "--data", sample_data, "--split", "val", "--out", pred, "--workers", "0"])
    assert code == 0, text
    assert source_runs(PredictionFolder(pred)) == [trained_run.resolve()]
    code, text = cli(["report", pred, "--out", tmp_path / "r", "--worst", "2"])
    assert code == 0, text
    assert "mIoU" in text and (tmp_path / "r" / "index.html").is_file()
    html = (tmp_path / "r" / "index.html").read_text()
    assert "Learning curves" in html and "confusion matrix of pred" in html
