"""A class name is data, any string: rich markup, matplotlib mathtext, HTML, CSV and XML specials, newlines and
emoji go through every stage and come out intact where they are shown."""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from tests.helpers import RECIPE, TINY
from trashseg.data.sample import write_sample_dataset

pytestmark = pytest.mark.slow

HOSTILE = ["Background", "[/x]", "$\\foo{$", "<b>&\"'", "名前 🙂", "a,b\nc"]


def _hostile_dataset(root: Path) -> None:
    """The sample dataset with its ten categories folded onto the hostile names (id k → name (k - 1) % 5 + 1)."""
    write_sample_dataset(root, n_train=6, n_val=4, n_test=2, size=64, seed=0)
    objects = len(HOSTILE) - 1
    for split in ("train", "val", "test", "train_all"):
        path = root / f"{split}.json"
        data = json.loads(path.read_text())
        data["categories"] = [{"id": i, "name": HOSTILE[i], "supercategory": "x"} for i in range(1, objects + 1)]
        for ann in data.get("annotations", []):
            ann["category_id"] = (ann["category_id"] - 1) % objects + 1
        path.write_text(json.dumps(data, ensure_ascii=False))


def test_hostile_class_names_survive_the_whole_pipeline(tmp_path: Path, cli) -> None:
    data = tmp_path / "data"
    _hostile_dataset(data)
    config = tmp_path / "hostile.yaml"
    config.write_text(
        yaml.safe_dump(
            {"_base_": [str(RECIPE)], "data": {"classes": HOSTILE, "cache_dir": str(tmp_path / "cache")}},
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    opts = ["-c", config]

    code, text = cli(["data", "check", data, *opts, "--report", tmp_path / "check.json", "--workers", "1"])
    assert code == 0, text

    code, text = cli(["eda", data, *opts, "--out", tmp_path / "eda", "--examples", "1"])
    assert code == 0, text
    eda = json.loads((tmp_path / "eda" / "eda.json").read_text(encoding="utf-8"))
    assert list(eda["per_class"]) == HOSTILE
    page = (tmp_path / "eda" / "index.html").read_text(encoding="utf-8")
    assert all(html.escape(name) in page for name in HOSTILE[1:])

    run = tmp_path / "run"
    code, text = cli(["train", config, "--data", data, "--out", run, *(a for o in TINY for a in ("--set", o))])
    assert code == 0, text
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "plots" / "confusion_last.png").is_file()
    assert "[/x]" in text and "$\\foo{$" in text  # the validation table shows the names as they are
    history = json.loads((run / "history.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert list(history["per_class"]) == HOSTILE

    pred = tmp_path / "pred"
    code, text = cli(["predict", run, "--data", data, "--split", "val", "--out", pred, "--workers", "0"])
    assert code == 0, text
    assert json.loads((pred / "meta.json").read_text(encoding="utf-8"))["classes"] == HOSTILE
    code, text = cli(["evaluate", pred, "--data", data, "--split", "val", "--out", tmp_path / "scores.json"])
    assert code == 0, text
    assert "[/x]" in text and "名前 🙂" in text
    assert list(json.loads((tmp_path / "scores.json").read_text(encoding="utf-8"))["per_class"]) == HOSTILE

    code, text = cli(["report", pred, "--out", tmp_path / "report"])
    assert code == 0, text
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert all(html.escape(name) in page for name in HOSTILE[1:])
    report = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert list(report["folders"]["pred"]["per_class"]) == HOSTILE
    code, text = cli(["overlay", pred, "--limit", "2"])
    assert code == 0 and len(list((pred / "overlays").rglob("*.jpg"))) == 2, text

    code, text = cli(["convert", "export", pred, "--truth", "--out", tmp_path / "ls" / "tasks.json"])
    assert code == 0, text
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text(encoding="utf-8"))
    labels = {r["value"]["polygonlabels"][0] for t in tasks for r in t["annotations"][0]["result"]}
    assert labels and labels <= set(HOSTILE[1:])
    view = ElementTree.parse(tmp_path / "ls" / "label_config.xml").getroot()
    assert [label.get("value") for label in view.iter("Label")] == HOSTILE[1:]

    test_pred = tmp_path / "test_pred"
    code, text = cli(["predict", run, "--data", data, "--split", "test", "--out", test_pred, "--workers", "0"])
    assert code == 0, text
    code, text = cli(["submit", test_pred, "--data", data, "--out", tmp_path / "sub.csv"])
    assert code == 0, text
    with open(tmp_path / "sub.csv", newline="", encoding="utf-8") as fh:
        assert len(list(csv.reader(fh))) == 3  # header and the two test images
