"""The label-error audit on hand-built images whose answer is known: one test per kind of suspect, and the
report files a user opens (gallery, issues list, COCO subset for a labelling tool)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from trashseg.analysis.audit import (
    AuditSettings,
    Issue,
    audit_image,
    confident_classes,
    flagged_coco,
    read_issues,
)
from trashseg.data.masks import rasterize
from trashseg.errors import TrashsegError

NAMES = ["Background", "Paper", "Metal"]
CATS = {1: 1, 2: 2}  # category id → class index
THRESHOLDS = np.array([0.5, 0.5, 0.5], np.float32)
IMAGE = {"id": 7, "file_name": "a/7.jpg", "height": 40, "width": 40}


def _square(ann_id: int, cat: int, x0: int, y0: int, x1: int, y1: int) -> dict:
    return {
        "id": ann_id,
        "image_id": 7,
        "category_id": cat,
        "area": float((x1 - x0) * (y1 - y0)),
        "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
    }


def _probs(*regions: tuple[int, slice, slice], p: float = 0.9) -> np.ndarray:
    """Background everywhere at `p`, then each (class, rows, cols) region given to that class at `p`."""
    probs = np.full((3, 40, 40), (1 - p) / 2, np.float32)
    probs[0] = p
    for cls, rows, cols in regions:
        probs[:, rows, cols] = (1 - p) / 2
        probs[cls, rows, cols] = p
    return probs


def _audit(anns: list[dict], probs: np.ndarray, **settings) -> list[Issue]:
    labels, _ = rasterize(anns, 40, 40, CATS)
    return audit_image(IMAGE, anns, probs, labels, THRESHOLDS, CATS, NAMES, AuditSettings(**settings))


def test_confident_class_is_the_most_probable_above_its_threshold() -> None:
    probs = np.array([[0.5, 0.2], [0.45, 0.3], [0.05, 0.5]], np.float32)[:, :, None]  # 3 classes, 2 pixels
    thresholds = np.array([0.9, 0.4, 0.5], np.float32)  # background needs 0.9: pixel 0 is confidently class 1
    assert confident_classes(probs, thresholds)[:, 0].tolist() == [1, 2]
    assert confident_classes(probs, np.ones(3, np.float32))[:, 0].tolist() == [-1, -1]


def test_object_whose_class_the_model_contradicts_is_listed_with_the_suggested_class() -> None:
    anns = [_square(1, 1, 10, 10, 30, 30), _square(2, 2, 0, 32, 8, 40)]  # Paper (wrong), Metal (right)
    found = _audit(anns, _probs((2, slice(10, 30), slice(10, 30)), (2, slice(32, 40), slice(0, 8))))
    assert [(i.annotation_id, i.kind, i.labelled, i.suggested) for i in found] == [(1, "class", "Paper", "Metal")]
    assert found[0].score == pytest.approx(0.9 - 0.05, abs=1e-3) and found[0].share == pytest.approx(1.0)
    assert found[0].bbox == [10, 10, 20, 20]


def test_contradiction_over_a_minority_of_the_object_is_not_listed() -> None:
    anns = [_square(1, 1, 10, 10, 30, 30)]
    minority = _probs((1, slice(10, 30), slice(10, 30)), (2, slice(10, 16), slice(10, 30)))  # 30% says Metal
    assert _audit(anns, minority) == [] and _audit(anns, minority, min_share=0.25) == []  # mostly Paper
    majority = _probs((1, slice(10, 30), slice(10, 30)), (2, slice(10, 22), slice(10, 30)))  # 60% says Metal
    assert [i.suggested for i in _audit(anns, majority)] == ["Metal"]
    assert _audit(anns, majority, min_share=0.7) == []


def test_object_the_model_calls_background_is_a_background_suspect() -> None:
    found = _audit([_square(3, 2, 5, 5, 15, 15)], _probs())
    assert [(i.annotation_id, i.kind, i.labelled, i.suggested) for i in found] == [
        (3, "background", "Metal", "Background")
    ]


def test_confident_region_without_annotation_is_an_unlabelled_suspect() -> None:
    found = _audit([], _probs((1, slice(20, 30), slice(5, 17))))
    assert [(i.annotation_id, i.kind, i.labelled, i.suggested, i.area) for i in found] == [
        (None, "unlabelled", "Background", "Paper", 120)
    ]
    assert found[0].bbox == [5, 20, 12, 10] and found[0].score == pytest.approx(0.85, abs=1e-3)


def test_unlabelled_region_smaller_than_its_class_usually_is_ranks_below_one_of_ordinary_size() -> None:
    labels = np.zeros((40, 40), np.int64)
    probs = _probs((1, slice(0, 5), slice(0, 5)), (1, slice(20, 30), slice(5, 17)))  # 25 px and 120 px of Paper
    found = audit_image(IMAGE, [], probs, labels, THRESHOLDS, CATS, NAMES, AuditSettings(), typical={1: 100.0})
    assert sorted((i.area, round(i.score, 3)) for i in found) == [(25, round(0.85 * 25 / 100, 3)), (120, 0.85)]


def test_unlabelled_slack_around_an_annotation_of_the_same_class_and_tiny_regions_are_not_listed() -> None:
    ann = _square(1, 1, 10, 10, 20, 20)
    slack = _probs((1, slice(9, 21), slice(9, 21)))  # the model's Paper is one pixel wider than the polygon
    assert _audit([ann], slack, margin=0.05) == []
    speck = _probs((2, slice(0, 3), slice(0, 3)))  # 9 px < min_pixels
    assert _audit([], speck) == []


def test_one_object_labelled_twice_as_two_classes_reports_the_label_the_model_believes_less() -> None:
    anns = [_square(4, 1, 10, 10, 30, 30), _square(5, 2, 10, 10, 30, 30)]
    found = _audit(anns, _probs((1, slice(10, 30), slice(10, 30))))  # the model says Paper
    assert [(i.annotation_id, i.kind, i.labelled, i.suggested, i.duplicate_of) for i in found] == [
        (5, "duplicate", "Metal", "Paper", 4)
    ]
    assert found[0].score == pytest.approx(1.0)


def test_overlapping_annotations_of_one_class_or_little_overlap_are_not_duplicates() -> None:
    same_class = [_square(4, 1, 10, 10, 30, 30), _square(5, 1, 12, 12, 30, 30)]
    assert _audit(same_class, _probs((1, slice(10, 30), slice(10, 30)))) == []
    overlapping = [_square(4, 1, 10, 10, 30, 30), _square(5, 2, 24, 24, 40, 40)]  # IoU 36 / 620
    probs = _probs((1, slice(10, 30), slice(10, 30)), (2, slice(24, 40), slice(24, 40)))
    assert _audit(overlapping, probs) == []


def test_flagged_items_export_as_a_coco_subset_with_the_verdict(tmp_path: Path) -> None:
    from trashseg.data.coco import load_split

    anns = [_square(1, 1, 10, 10, 30, 30), _square(2, 2, 0, 32, 8, 40)]
    (tmp_path / "train.json").write_text(
        json.dumps(
            {
                "images": [IMAGE, {**IMAGE, "id": 8, "file_name": "a/8.jpg"}],
                "annotations": anns,
                "categories": [{"id": 1, "name": "Paper"}, {"id": 2, "name": "Metal"}],
            }
        )
    )
    split = load_split(tmp_path / "train.json", tmp_path, NAMES)
    found = _audit(
        anns,
        _probs((2, slice(10, 30), slice(10, 30)), (2, slice(32, 40), slice(0, 8)), (1, slice(0, 8), slice(30, 40))),
    )
    coco = flagged_coco(found, split)
    assert [img["id"] for img in coco["images"]] == [7]
    by_kind = {a["attributes"]["audit_kind"]: a for a in coco["annotations"]}
    assert set(by_kind) == {"class", "unlabelled"}
    assert by_kind["class"]["id"] == 1 and by_kind["class"]["attributes"]["audit_suggested"] == "Metal"
    proposed = by_kind["unlabelled"]
    assert proposed["id"] == 3 and proposed["category_id"] == 1 and proposed["bbox"] == [30, 0, 10, 8]
    assert proposed["segmentation"] and all(len(p) >= 6 for p in proposed["segmentation"])


@pytest.mark.parametrize(
    ("records", "error"),
    [
        ({"image_id": 1}, r"\(root\): Input should be a valid list"),
        ([{"image_id": [1]}], r"0\.image_id: Input should be a valid integer"),
        ([{"image_id": 1}, {"image_id": 2, "score": "high"}], r"1\.score: Input should be a valid number"),
        ([{"image_id": 1, "kind": "x" * 2000}], r"0\.kind: String should have at most 1000 characters"),
    ],
)
def test_an_issues_json_that_is_not_an_audits_is_named_by_file_and_field(tmp_path: Path, records, error) -> None:
    """A list image id was a TypeError (unhashable), a text score a ValueError in the export's format string."""
    path = tmp_path / "issues.json"
    path.write_text(json.dumps(records))
    with pytest.raises(TrashsegError, match=rf"issues\.json: invalid issues\.json of `trashseg audit`\n  {error}"):
        read_issues(path)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(
        st.dictionaries(
            st.sampled_from(["image_id", "kind", "labelled", "suggested", "score", "bbox"]),
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) | st.lists(st.integers()),
        ),
        max_size=4,
    ),
    raw=st.binary(max_size=60),
)
def test_fuzzed_issues_read_or_give_a_named_error(tmp_path: Path, records, raw) -> None:
    path = tmp_path / "issues.json"
    for content in (json.dumps(records).encode("utf-8"), raw):
        path.write_bytes(content)
        try:
            read_issues(path)
        except TrashsegError as exc:
            assert str(exc).startswith(str(path)), exc
