"""Planted label errors: what is planted is what is recorded, and the scoring counts findings as documented."""

from __future__ import annotations

import json
from pathlib import Path

from pycocotools import mask as mask_utils

from trashseg.analysis.planted import plant_errors, score_audit


def _coco(sample_data: Path) -> dict:
    return json.loads((sample_data / "train.json").read_text())


def test_each_kind_is_planted_as_recorded(sample_data: Path) -> None:
    clean = _coco(sample_data)
    corrupted, planted = plant_errors(clean, 0.2, seed=1)
    assert len(planted) == round(0.2 * len(clean["annotations"]))
    assert {p.kind for p in planted} == {"swap", "drop", "shift", "duplicate"}
    before = {a["id"]: a for a in clean["annotations"]}
    after = {a["id"]: a for a in corrupted["annotations"]}
    sizes = {i["id"]: (i["height"], i["width"]) for i in clean["images"]}
    for p in planted:
        h, w = sizes[p.image_id]
        if p.kind == "swap":
            (ann_id,) = p.annotation_ids
            assert after[ann_id]["category_id"] != before[ann_id]["category_id"]
        elif p.kind == "drop":
            assert not p.annotation_ids and p.original is not None
            assert len(after) - len(before) == sum(q.kind == "duplicate" for q in planted) - sum(
                q.kind == "drop" for q in planted
            )
        elif p.kind == "shift":
            (ann_id,) = p.annotation_ids
            moved = mask_utils.merge(mask_utils.frPyObjects(after[ann_id]["segmentation"], h, w))
            assert mask_utils.iou([moved], [p.original], [0])[0][0] < 0.5
        else:
            original, twin = sorted(p.annotation_ids)
            assert twin not in before and after[twin]["category_id"] != after[original]["category_id"]
            rles = [mask_utils.merge(mask_utils.frPyObjects(after[i]["segmentation"], h, w)) for i in (original, twin)]
            assert mask_utils.iou(rles[:1], rles[1:], [0])[0][0] > 0.8
    assert clean == _coco(sample_data)  # the input is left as it was


def test_scoring_counts_named_annotations_and_regions_where_the_object_was(sample_data: Path) -> None:
    _, planted = plant_errors(_coco(sample_data), 0.2, seed=1, kinds=("swap", "drop"))
    swap = next(p for p in planted if p.kind == "swap")
    drop = next(p for p in planted if p.kind == "drop")
    right = [
        {"image_id": swap.image_id, "annotation_id": next(iter(swap.annotation_ids))},
        {"image_id": drop.image_id, "annotation_id": None, "region": drop.original},
    ]
    wrong = [
        {"image_id": swap.image_id, "annotation_id": -1},
        {"image_id": drop.image_id + 1000, "annotation_id": None, "region": drop.original},
    ]
    scored = score_audit(right + wrong, planted, top=4)
    assert scored["precision"] == 0.5 and scored["recall"] == 2 / len(planted)
    assert score_audit(wrong + right, planted, top=2)["precision"] == 0.0
