"""Objects out of a mask: exact areas, boxes, centroids and confidences on a hand-built mask."""

from __future__ import annotations

import numpy as np
import pytest

from trashseg.errors import TrashsegError
from trashseg.infer.objects import SegmentObject, find_objects

CLASSES = ["bg", "paper", "metal"]


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """paper: a 4×3 rectangle and a lone pixel; metal: two pixels touching at a corner only."""
    mask = np.zeros((10, 12), np.uint8)
    probs = np.zeros((3, 10, 12), np.float32)
    mask[1:4, 1:5] = 1
    probs[1, 1:4, 1:5] = 0.9
    mask[8, 10] = 1
    probs[1, 8, 10] = 0.6
    mask[5, 5] = mask[6, 6] = 2
    probs[2, 5, 5], probs[2, 6, 6] = 0.7, 0.5
    return mask, probs


def test_regions_have_exact_area_box_centroid_and_confidence() -> None:
    mask, probs = _scene()
    found = find_objects(mask, CLASSES, probs)
    assert found == [
        SegmentObject(1, "paper", 12, (1, 1, 4, 3), (2.5, 2.0), pytest.approx(0.9)),
        SegmentObject(2, "metal", 2, (5, 5, 2, 2), (5.5, 5.5), pytest.approx(0.6)),  # 8-connected: one object
        SegmentObject(1, "paper", 1, (10, 8, 1, 1), (10.0, 8.0), pytest.approx(0.6)),
    ]  # largest first
    assert found[0].to_dict() == {
        "class_id": 1,
        "class_name": "paper",
        "area": 12,
        "bbox": [1, 1, 4, 3],
        "centroid": [2.5, 2.0],
        "confidence": pytest.approx(0.9),
    }


def test_four_connectivity_splits_diagonal_neighbours() -> None:
    mask, probs = _scene()
    metal = [o for o in find_objects(mask, CLASSES, probs, connectivity=4) if o.class_name == "metal"]
    assert [(o.area, o.bbox, o.confidence) for o in metal] == [
        (1, (5, 5, 1, 1), pytest.approx(0.7)),
        (1, (6, 6, 1, 1), pytest.approx(0.5)),
    ]


def test_min_area_drops_small_regions_and_background_is_never_an_object() -> None:
    mask, probs = _scene()
    assert [(o.class_name, o.area) for o in find_objects(mask, CLASSES, probs, min_area=2)] == [
        ("paper", 12),
        ("metal", 2),
    ]
    assert find_objects(np.zeros((4, 4), np.uint8), CLASSES) == []


def test_without_probabilities_confidence_is_none() -> None:
    mask, _ = _scene()
    assert all(o.confidence is None for o in find_objects(mask, CLASSES))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_area": -1}, "min_area -1: must be 0 or more"),
        ({"connectivity": 6}, "connectivity 6: must be 4 or 8"),
        ({"probs": np.zeros((2, 10, 12), np.float32)}, "do not match 3 classes"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, message: str) -> None:
    mask, _ = _scene()
    with pytest.raises(TrashsegError, match=message):
        find_objects(mask, CLASSES, **kwargs)
