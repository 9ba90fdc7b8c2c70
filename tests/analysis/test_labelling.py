"""Labels out: a prediction folder / a dataset → Label Studio tasks or CVAT COCO; read back (as the tools export
it) → the same masks; only the audit's flagged images on request."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from trashseg.config import DataConfig
from trashseg.data.coco import load_split
from trashseg.data.masks import mask_cache
from trashseg.infer.folder import PredictionFolder


def _classes(root: Path) -> list[str]:
    cats = json.loads((root / "train.json").read_text())["categories"]
    return ["Background"] + [c["name"] for c in sorted(cats, key=lambda c: c["id"])]


def _masks(root: Path, classes: list[str]) -> dict[str, np.ndarray]:
    split = load_split(root / "train.json", root, classes)
    cache = mask_cache(split, DataConfig(root=root, classes=classes))
    return {img["file_name"]: cache.get(img) for img in split.images}


@pytest.fixture
def pred(tiny: Path, tmp_path: Path) -> Path:
    """Predictions for tiny's two 32×48 images, with probabilities: a Paper box and a Metal ring (a hole), and a
    Battery disc."""
    classes = _classes(tiny)
    first = np.zeros((32, 48), np.uint8)
    first[2:14, 3:20] = 1
    cv2.circle(first, (34, 20), 9, 2, -1)
    cv2.circle(first, (34, 20), 3, 0, -1)
    second = np.zeros((32, 48), np.uint8)
    cv2.circle(second, (12, 14), 7, 3, -1)
    folder = PredictionFolder(tmp_path / "pred")
    folder.init(
        {
            "classes": classes,
            "split": str(tiny / "train.json"),
            "data_root": str(tiny),
            "source": "m1",
            "has_probs": True,
        }
    )
    for name, mask in (("batch_01/0001.png", first), ("batch_01/0002.png", second)):
        probs = np.full((len(classes), *mask.shape), 0.1 / (len(classes) - 1), np.float32)
        np.put_along_axis(probs, mask[None].astype(np.int64), 0.9, axis=0)
        folder.write(name, mask, probs)
    return folder.root


def expected_names(root: Path) -> list[str]:
    return [img["file_name"] for img in json.loads((root / "train.json").read_text())["images"]]


def _set_classes(root: Path) -> list[str]:
    return ["--set", f"data.classes=[{','.join(_classes(root))}]"]


def test_cvat_export_of_predictions_reads_back(tiny: Path, pred: Path, tmp_path: Path, cli) -> None:
    code, text = cli(["convert", "export", pred, "--format", "cvat", "--out", tmp_path / "cvat.json"])
    assert code == 0, text
    coco = json.loads((tmp_path / "cvat.json").read_text())
    assert [c["name"] for c in coco["categories"]] == _classes(tiny)[1:]
    assert {a["iscrowd"] for a in coco["annotations"]} == {0, 1}  # the ring goes as RLE, CVAT's mask
    assert all(a["attributes"]["score"] == pytest.approx(0.9, abs=1e-3) for a in coco["annotations"])
    out = tmp_path / "fixed" / "train.json"
    code, text = cli(["convert", "coco", tmp_path / "cvat.json", "--images", tiny, "--out", out, *_set_classes(tiny)])
    assert code == 0, text
    folder = PredictionFolder(pred)
    for name, mask in _masks(out.parent, _classes(tiny)).items():
        assert np.array_equal(mask, folder.mask(name.removeprefix("images/"))), name


def _label_studio_coco(tasks: list[dict], key: str, classes: list[str]) -> dict:
    """What Label Studio's COCO export makes of the tasks' `key` results: percent points → pixels, ids from 0,
    file names under images/."""
    images, anns = [], []
    for k, task in enumerate(tasks):
        first = task[key][0]["result"]
        w, h = (first[0]["original_width"], first[0]["original_height"]) if first else (48, 32)
        images.append({"id": k, "file_name": f"images/{Path(task['data']['file_name']).name}", "width": w, "height": h})
        for result in first:
            points = [v for x, y in result["value"]["points"] for v in (x * w / 100, y * h / 100)]
            anns.append(
                {
                    "id": len(anns),
                    "image_id": k,
                    "segmentation": [points],
                    "bbox": [],
                    "ignore": 0,
                    "category_id": classes.index(result["value"]["polygonlabels"][0]) - 1,
                    "iscrowd": 0,
                }
            )
    return {
        "images": images,
        "annotations": anns,
        "categories": [{"id": i - 1, "name": n} for i, n in enumerate(classes) if i],
    }


def test_label_studio_tasks_read_back(tiny: Path, pred: Path, tmp_path: Path, cli) -> None:
    classes = _classes(tiny)
    code, text = cli(["convert", "export", pred, "--truth", "--out", tmp_path / "ls" / "tasks.json"])
    assert code == 0, text
    assert "'holes_filled': 1" in text
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert [t["data"]["image"] for t in tasks] == [
        "/data/local-files/?d=batch_01/0001.png",
        "/data/local-files/?d=batch_01/0002.png",
    ]
    result = tasks[1]["predictions"][0]["result"]
    assert [r["value"]["polygonlabels"] for r in result] == [["Battery"]]
    assert result[0]["type"] == "polygonlabels" and tasks[1]["predictions"][0]["score"] == pytest.approx(0.9, 1e-3)
    config = (tmp_path / "ls" / "label_config.xml").read_text()
    assert all(f'<Label value="{name}"' in config for name in classes[1:])
    for key, expected in (
        ("annotations", _masks(tiny, classes)),
        ("predictions", {n: PredictionFolder(pred).mask(n) for n in expected_names(tiny)}),
    ):
        export = tmp_path / key / "result.json"
        export.parent.mkdir()
        export.write_text(json.dumps(_label_studio_coco(tasks, key, classes)))
        out = tmp_path / f"{key}_data" / "train.json"
        code, text = cli(["convert", "coco", export, "--images", tiny / "batch_01", "--out", out, *_set_classes(tiny)])
        assert code == 0, text
        back = _masks(out.parent, classes)
        for (name, mask), (truth_name, truth) in zip(back.items(), expected.items(), strict=True):
            if key == "predictions" and truth_name.endswith("0001.png"):
                truth = cv2.circle(truth.copy(), (34, 20), 3, 2, -1)  # a polygon cannot hold the ring's hole
            assert np.array_equal(mask, truth), (key, name)


def test_only_flagged_images_are_exported(tiny: Path, pred: Path, tmp_path: Path, cli) -> None:
    issues = tmp_path / "issues.json"
    issues.write_text(
        json.dumps(
            [
                {
                    "image_id": 2,
                    "file_name": "batch_01/0002.png",
                    "annotation_id": 12,
                    "labelled": "Battery",
                    "suggested": "Metal",
                    "kind": "class",
                    "score": 0.8,
                }
            ]
        )
    )
    code, text = cli(["convert", "export", pred, "--flagged", issues, "--out", tmp_path / "tasks.json"])
    assert code == 0, text
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert [t["data"]["image_id"] for t in tasks] == [2]
    assert tasks[0]["data"]["audit"] == "class: Battery → Metal (0.80)"
    code, text = cli(
        [
            "convert",
            "export",
            tiny,
            "--format",
            "cvat",
            "--flagged",
            issues,
            "--out",
            tmp_path / "gt.json",
            *_set_classes(tiny),
        ]
    )
    assert code == 0, text
    coco = json.loads((tmp_path / "gt.json").read_text())
    assert [img["id"] for img in coco["images"]] == [2] and [a["id"] for a in coco["annotations"]] == [12]
    issues.write_text(json.dumps([{"image_id": 42}]))
    code, text = cli(["convert", "export", pred, "--flagged", issues, "--out", tmp_path / "none.json"])
    assert code == 2 and "image ids [42]" in text
    assert not (tmp_path / "none.json").exists()


HOSTILE_NAMES = [
    'a"b',
    "it's",
    '"/><Label value="injected',
    "<b>&amp;</b>",
    "名前 🙂",
    "a,b\nc",
    "tab\tand\rcr",
    " $x ",
]


def test_label_config_round_trips_every_class_name() -> None:
    """A quote, a tag or an entity in a class name stays text: the XML parses back to exactly the names given."""
    from xml.etree import ElementTree as ET

    from trashseg.analysis.labelling import label_studio_config

    view = ET.fromstring(label_studio_config(["Background", *HOSTILE_NAMES]))
    assert [label.get("value") for label in view.iter("Label")] == HOSTILE_NAMES
    assert [e.tag for e in view] == ["Image", "PolygonLabels"]


def test_a_class_name_xml_cannot_carry_is_named() -> None:
    from trashseg.analysis.labelling import label_studio_config
    from trashseg.errors import TrashsegError

    with pytest.raises(TrashsegError, match=r"class 2 'bell\\x07'.*XML"):
        label_studio_config(["Background", "ok", "bell\x07"])


def test_exports_name_the_model_without_the_machines_folders(tiny: Path, pred: Path, tmp_path: Path, cli) -> None:
    """Tasks and COCO files are shared with annotators: the checkpoint's absolute path (the user's folders) stays
    out; the run's name and checkpoint say which model it was."""
    meta = json.loads((pred / "meta.json").read_text())
    home = tmp_path / "home" / "alice" / "secret_project"
    (pred / "meta.json").write_text(json.dumps({**meta, "source": str(home / "r7" / "checkpoints" / "best.ckpt")}))
    outputs = {"label-studio": tmp_path / "ls" / "tasks.json", "cvat": tmp_path / "cvat.json"}
    for fmt, out in outputs.items():
        code, text = cli(["convert", "export", pred, "--format", fmt, "--out", out])
        assert code == 0, text
    tasks = json.loads(outputs["label-studio"].read_text())
    assert {t["predictions"][0]["model_version"] for t in tasks} == {"r7/best.ckpt"}
    assert json.loads(outputs["cvat"].read_text())["info"]["description"] == "trashseg: predictions of r7/best.ckpt"
    for written in (*outputs.values(), tmp_path / "ls" / "label_config.xml"):
        assert "alice" not in written.read_text() and str(tmp_path) not in written.read_text(), written
