"""The generated sample dataset: what tests, tutorials and smoke runs rely on."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from trashseg.data.sample import write_sample_dataset

NAMES = [
    "General trash",
    "Paper",
    "Paper pack",
    "Metal",
    "Glass",
    "Plastic",
    "Styrofoam",
    "Plastic bag",
    "Battery",
    "Clothing",
]
SMALL = dict(n_train=24, n_val=4, n_test=4, size=128)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, int]]]:
    """Two runs with seed 0 and one with seed 1, generated once for the whole module."""
    out = {}
    for name, seed in (("a", 0), ("b", 0), ("other", 1)):
        root = tmp_path_factory.mktemp(f"sample_{name}")
        out[name] = (root, write_sample_dataset(root, seed=seed, **SMALL))
    return out


@pytest.fixture(scope="module")
def root(runs: dict) -> Path:
    return runs["a"][0]


def _load(root: Path, name: str) -> dict:
    return json.loads((root / name).read_text())


def _ann_mask(ann: dict, h: int, w: int) -> np.ndarray:
    seg = ann["segmentation"]
    if isinstance(seg, list):
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, h, w)))
    if isinstance(seg["counts"], list):
        return mask_utils.decode(mask_utils.frPyObjects(seg, h, w))
    return mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode("ascii")})


def _label_map(anns: list[dict], h: int, w: int) -> np.ndarray:
    """What a consumer does: paint annotations largest area first, so small objects end on top."""
    labels = np.zeros((h, w), np.uint8)
    for ann in sorted(anns, key=lambda a: a["area"], reverse=True):
        labels[_ann_mask(ann, h, w).astype(bool)] = ann["category_id"]
    return labels


def _images_with(doc: dict) -> dict[int, set[int]]:
    out: dict[int, set[int]] = defaultdict(set)
    for ann in doc["annotations"]:
        out[ann["category_id"]].add(ann["image_id"])
    return out


def test_same_seed_gives_identical_files(runs: dict) -> None:
    (a, _), (b, _) = runs["a"], runs["b"]
    for name in ("train.json", "val.json", "test.json", "train_all.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    files = sorted(p.relative_to(a) for p in a.rglob("*.jpg"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.jpg"))
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_different_seed_differs(runs: dict) -> None:
    a, other = runs["a"][0], runs["other"][0]
    assert (a / "train.json").read_bytes() != (other / "train.json").read_bytes()
    first = _load(a, "train.json")["images"][0]["file_name"]
    assert not np.array_equal(cv2.imread(str(a / first)), cv2.imread(str(other / first)))


def test_split_files_and_counts(root: Path, runs: dict) -> None:
    counts = runs["a"][1]
    train, val, test = (_load(root, f"{s}.json") for s in ("train", "val", "test"))
    train_all = _load(root, "train_all.json")
    assert [len(d["images"]) for d in (train, val, test)] == [24, 4, 4]
    assert counts == {
        "train": 24,
        "val": 4,
        "test": 4,
        "annotations": len(train["annotations"]) + len(val["annotations"]),
    }
    assert "annotations" not in test
    assert train_all["images"] == train["images"] + val["images"]
    assert train_all["annotations"] == train["annotations"] + val["annotations"]
    assert len({a["id"] for a in train_all["annotations"]}) == len(train_all["annotations"])
    all_images = train["images"] + val["images"] + test["images"]
    assert len({img["id"] for img in all_images}) == len(all_images)
    assert len({img["file_name"] for img in all_images}) == len(all_images)  # no file shared between splits
    for img in all_images:
        assert img["file_name"].split("/")[0] in {"batch_01_vt", "batch_02_vt", "batch_03"}
        assert img["file_name"].endswith(".jpg")
        pixels = cv2.imread(str(root / img["file_name"]))
        assert pixels is not None and pixels.shape == (img["height"], img["width"], 3) == (128, 128, 3)


def test_categories_are_the_competition_ones(root: Path) -> None:
    for name in ("train.json", "val.json", "test.json", "train_all.json"):
        cats = _load(root, name)["categories"]
        assert [c["id"] for c in cats] == list(range(1, 11))
        assert [c["name"] for c in cats] == NAMES


def test_every_class_in_train_and_battery_is_rare(root: Path) -> None:
    images_with = _images_with(_load(root, "train.json"))
    assert set(images_with) == set(range(1, 11))
    battery = len(images_with[NAMES.index("Battery") + 1])
    others = sorted(len(ids) for cat, ids in images_with.items() if cat != NAMES.index("Battery") + 1)
    assert battery < others[len(others) // 2]  # fewer images than most other classes


def test_multipart_polygons_and_both_rle_forms_exist(root: Path) -> None:
    segs = [a["segmentation"] for a in _load(root, "train.json")["annotations"]]
    assert any(isinstance(s, list) and len(s) >= 2 for s in segs)
    assert any(isinstance(s, dict) and isinstance(s["counts"], str) for s in segs)
    assert any(isinstance(s, dict) and isinstance(s["counts"], list) for s in segs)


def test_annotations_are_valid_coco(root: Path) -> None:
    doc = _load(root, "train_all.json")
    images = {img["id"]: img for img in doc["images"]}
    tiny = 0
    for ann in doc["annotations"]:
        img = images[ann["image_id"]]
        h, w = img["height"], img["width"]
        assert ann["iscrowd"] == 0 and 1 <= ann["category_id"] <= 10
        seg = ann["segmentation"]
        if isinstance(seg, list):
            for part in seg:
                assert len(part) >= 6 and len(part) % 2 == 0
                assert all(round(v, 1) == v for v in part)
                assert 0 <= min(part[0::2]) and max(part[0::2]) <= w and 0 <= min(part[1::2]) and max(part[1::2]) <= h
        else:
            assert seg["size"] == [h, w]
        mask = _ann_mask(ann, h, w)
        assert mask.shape == (h, w) and mask.any()
        assert ann["area"] == int(mask.sum())
        ys, xs = np.nonzero(mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        tiny += ann["area"] < 100
    assert tiny >= 1


def test_rasterised_labels_match_drawn_colours(root: Path) -> None:
    """Labels painted largest-first land on pixels of the right look: bright paper, dark trash, vivid plastic."""
    doc = _load(root, "train.json")
    anns: dict[int, list[dict]] = defaultdict(list)
    for ann in doc["annotations"]:
        anns[ann["image_id"]].append(ann)
    hsv_by_class: dict[int, list[np.ndarray]] = defaultdict(list)
    for img in doc["images"]:
        labels = _label_map(anns[img["id"]], img["height"], img["width"])
        hsv = cv2.cvtColor(cv2.imread(str(root / img["file_name"])), cv2.COLOR_BGR2HSV).astype(np.float32) / 255
        for cat in np.unique(labels):
            hsv_by_class[int(cat)].append(hsv[labels == cat])
    mean = {cat: np.concatenate(chunks).mean(0) for cat, chunks in hsv_by_class.items()}  # (hue, sat, value)
    cat = {name: NAMES.index(name) + 1 for name in NAMES}
    assert set(mean) == set(range(11))  # every class keeps visible pixels
    assert mean[cat["Paper"]][2] > mean[cat["General trash"]][2] + 0.3
    assert mean[cat["Styrofoam"]][2] > mean[cat["General trash"]][2] + 0.3
    assert mean[cat["Plastic"]][1] > mean[cat["Metal"]][1] + 0.3
    assert mean[cat["Styrofoam"]][1] < 0.15


def test_overlaps_are_drawn_smaller_object_on_top(root: Path) -> None:
    """Where largest-first and smallest-first painting disagree, the pixels look like the largest-first owner.

    Each class's colour is measured where only one object lies; a contested pixel counts for the order whose
    owner's colour is nearer. Drawing in the wrong order would flip most of these.
    """
    doc = _load(root, "train.json")
    anns: dict[int, list[dict]] = defaultdict(list)
    for ann in doc["annotations"]:
        anns[ann["image_id"]].append(ann)
    alone: dict[int, list[np.ndarray]] = defaultdict(list)
    contested = []
    for img in doc["images"]:
        h, w, own = img["height"], img["width"], anns[img["id"]]
        bgr = cv2.imread(str(root / img["file_name"])).astype(np.float32)
        masks = [(ann["category_id"], _ann_mask(ann, h, w).astype(bool)) for ann in own]
        cover = np.sum([m for _, m in masks], axis=0)
        for cat, m in masks:
            alone[cat].append(bgr[m & (cover == 1)])
        largest_first = _label_map(own, h, w)
        smallest_first = _label_map([{**a, "area": -a["area"]} for a in own], h, w)
        differ = largest_first != smallest_first
        contested.append((bgr[differ], largest_first[differ], smallest_first[differ]))
    mean = np.zeros((11, 3), np.float32)
    for cat, chunks in alone.items():
        mean[cat] = np.concatenate(chunks).mean(0)
    right = wrong = 0
    for pixels, by_largest, by_smallest in contested:
        d_right = np.linalg.norm(pixels - mean[by_largest], axis=1)
        d_wrong = np.linalg.norm(pixels - mean[by_smallest], axis=1)
        right += int((d_right < d_wrong).sum())
        wrong += int((d_wrong < d_right).sum())
    assert right > 2 * wrong
