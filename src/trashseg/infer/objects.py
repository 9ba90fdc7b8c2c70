"""Objects out of a class mask: what a sorter acts on is an object (a connected region of one class), not a share.

Each connected region of each non-background class (index 0 is the background) becomes one ``SegmentObject``: its
class, area in pixels, COCO bounding box ``[x, y, w, h]``, centroid ``(x, y)`` and mean confidence (the mean of its
class's probability over its pixels). Regions come from OpenCV's ``connectedComponentsWithStats``, one call per
class present; 8-connectivity by default (pixels touching at a corner belong to one object), 4 on request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import cv2
import numpy as np

from trashseg.errors import TrashsegError

Connectivity = Literal[4, 8]


@dataclass(frozen=True)
class SegmentObject:
    class_id: int
    class_name: str
    area: int  # pixels
    bbox: tuple[int, int, int, int]  # x, y, width, height of the tightest box (COCO's convention)
    centroid: tuple[float, float]  # x, y: the mean of the region's pixel coordinates
    confidence: float | None  # mean probability of `class_id` over the region; None without probabilities

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples become lists."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


def find_objects(
    mask: np.ndarray,
    classes: list[str],
    probs: np.ndarray | None = None,
    *,
    min_area: int = 0,
    connectivity: Connectivity = 8,
    scores: np.ndarray | None = None,
) -> list[SegmentObject]:
    """The connected regions of every non-background class of `mask` (class ids, H×W) with at least `min_area`
    pixels, largest first (ties: by class, then top to bottom). `probs` (C×H×W, the mask's probabilities) give each
    region's confidence, or `scores` (H×W, each pixel's probability of its mask class: the same confidences without
    the other classes' maps, ``Predictor.segment``)."""
    if connectivity not in (4, 8):
        raise TrashsegError(f"connectivity {connectivity}: must be 4 or 8")
    if min_area < 0:
        raise TrashsegError(f"min_area {min_area}: must be 0 or more pixels")
    if probs is not None and probs.shape != (len(classes), *mask.shape):
        raise TrashsegError(
            f"probabilities of shape {probs.shape} do not match {len(classes)} classes and a mask of shape {mask.shape}"
        )
    if scores is not None and scores.shape != mask.shape:
        raise TrashsegError(f"scores of shape {scores.shape} do not match a mask of shape {mask.shape}")
    found = []
    for class_id in np.unique(mask).tolist():
        if 0 < class_id < len(classes):
            found += _regions(
                mask == class_id,
                class_id,
                classes[class_id],
                scores if probs is None else probs[class_id],
                min_area,
                connectivity,
            )
    return sorted(found, key=lambda obj: -obj.area)


def _regions(
    binary: np.ndarray, class_id: int, name: str, prob: np.ndarray | None, min_area: int, connectivity: Connectivity
) -> list[SegmentObject]:
    """One class's regions, in OpenCV's label order (by each region's first pixel in raster order)."""
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(
        binary.astype(np.uint8), connectivity=connectivity
    )
    areas = stats[:, cv2.CC_STAT_AREA]
    means = None
    if prob is not None:
        means = np.bincount(labels.ravel(), weights=prob.ravel().astype(np.float64), minlength=count) / areas
    return [
        SegmentObject(
            class_id=class_id,
            class_name=name,
            area=int(areas[i]),
            bbox=_box(stats[i, :4]),
            centroid=(float(centroids[i, 0]), float(centroids[i, 1])),
            confidence=None if means is None else float(means[i]),
        )
        for i in range(1, count)
        if areas[i] >= min_area
    ]  # label 0: everything outside the class


def _box(stat: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, width, height) from a row of OpenCV's component stats."""
    x, y, w, h = (int(v) for v in stat)
    return x, y, w, h
