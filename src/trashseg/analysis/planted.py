"""Planted label errors: corrupt a copy of a COCO file in known ways, then score an audit against them.

How good is ``trashseg audit``? On real data nobody knows which labels are wrong. Planting errors into a dataset
whose labels are right (the generated one, whose pixels are drawn from its labels) gives a known answer:
precision and recall at the planted count say how much of the top of the audit's list a user can trust
(``bench/audit_planted.py`` writes them to docs/benchmarks.md).

Kinds planted, one per chosen annotation: ``swap`` (another class), ``drop`` (annotation removed), ``shift``
(polygon moved by most of its size) and ``duplicate`` (a second annotation of the same object, another class).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

PLANT_KINDS = ("swap", "drop", "shift", "duplicate")


@dataclass
class PlantedError:
    kind: str
    image_id: int
    annotation_ids: set[int]  # annotations an audit may name for it (both of a duplicate pair)
    original: dict | None = field(default=None, repr=False)  # RLE where the object really is (drop, shift)


def _rle(ann: dict, h: int, w: int) -> dict:
    seg = ann["segmentation"]
    if isinstance(seg, list):
        return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    return mask_utils.frPyObjects(seg, h, w) if isinstance(seg.get("counts"), list) else seg


def _moved(polygons: list[list[float]], dx: float, dy: float, h: int, w: int) -> list[list[float]]:
    out = []
    for poly in polygons:
        xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2) + (dx, dy)
        xy = np.clip(xy, 0, (w - 1, h - 1))
        out.append([round(float(v), 1) for v in xy.ravel()])
    return out


def _set_geometry(ann: dict, h: int, w: int) -> None:
    rle = _rle(ann, h, w)
    ann["area"] = float(mask_utils.area(rle))
    ann["bbox"] = [float(v) for v in mask_utils.toBbox(rle)]


def plant_errors(
    coco: dict, share: float, seed: int = 0, min_area_share: float = 0.005, kinds: tuple[str, ...] = PLANT_KINDS
) -> tuple[dict, list[PlantedError]]:
    """A corrupted copy of `coco` and what was planted: round(share × annotations) errors, kinds in turn, on
    annotations covering at least `min_area_share` of their image (a missing 20-pixel speck is no test of an
    audit). Shifts and duplicates need polygons; RLE annotations only get swaps and drops."""
    rng = np.random.default_rng(seed)
    out = copy.deepcopy(coco)
    sizes = {img["id"]: (img["height"], img["width"]) for img in out["images"]}
    cat_ids = [c["id"] for c in out["categories"]]
    eligible = [a for a in out["annotations"] if a["area"] >= min_area_share * np.prod(sizes[a["image_id"]])]
    count = min(round(share * len(out["annotations"])), len(eligible))
    chosen = [eligible[i] for i in rng.permutation(len(eligible))]
    next_id = max(a["id"] for a in out["annotations"]) + 1
    planted: list[PlantedError] = []
    dropped: set[int] = set()
    for ann in chosen:
        if len(planted) == count:
            break
        kind = kinds[len(planted) % len(kinds)]
        if kind in ("shift", "duplicate") and not isinstance(ann["segmentation"], list):
            continue
        h, w = sizes[ann["image_id"]]
        other = int(rng.choice([c for c in cat_ids if c != ann["category_id"]]))
        if kind == "swap":
            ann["category_id"] = other
            planted.append(PlantedError(kind, ann["image_id"], {ann["id"]}))
        elif kind == "drop":
            dropped.add(ann["id"])
            planted.append(PlantedError(kind, ann["image_id"], set(), _rle(ann, h, w)))
        elif kind == "shift":
            original = _rle(ann, h, w)
            x, y, bw, bh = ann.get("bbox") or mask_utils.toBbox(original)
            angle = rng.uniform(0, 2 * np.pi)
            step = 0.75 * max(bw, bh)
            ann["segmentation"] = _moved(ann["segmentation"], step * np.cos(angle), step * np.sin(angle), h, w)
            _set_geometry(ann, h, w)
            planted.append(PlantedError(kind, ann["image_id"], {ann["id"]}, original))
        else:  # duplicate: drawn again by hand, a pixel off here and there, as another class
            twin = {**copy.deepcopy(ann), "id": next_id, "category_id": other}
            jitter = [[round(v + float(rng.uniform(-1, 1)), 1) for v in poly] for poly in ann["segmentation"]]
            twin["segmentation"] = _moved(jitter, 0, 0, h, w)
            _set_geometry(twin, h, w)
            out["annotations"].append(twin)
            planted.append(PlantedError(kind, ann["image_id"], {ann["id"], next_id}))
            next_id += 1
    out["annotations"] = [a for a in out["annotations"] if a["id"] not in dropped]
    return out, planted


def _finds(issue: dict[str, Any], error: PlantedError, min_overlap: float) -> bool:
    """An issue finds an error when it names one of its annotations, or (unlabelled regions) lies mostly where
    a dropped or moved object really is."""
    if issue["image_id"] != error.image_id:
        return False
    if issue["annotation_id"] is not None:
        return issue["annotation_id"] in error.annotation_ids or issue.get("duplicate_of") in error.annotation_ids
    if error.original is None or not issue.get("region"):
        return False
    region = issue["region"]
    inside = mask_utils.area(mask_utils.merge([region, error.original], intersect=True))
    return inside >= min_overlap * mask_utils.area(region)


def score_audit(
    issues: list[dict[str, Any]], planted: list[PlantedError], top: int | None = None, min_overlap: float = 0.5
) -> dict[str, Any]:
    """Precision and recall of the first `top` issues (default: as many as were planted). Precision: issues that
    find a planted error (two findings of one error, such as a moved polygon and the hole it left, both count);
    recall: planted errors found by at least one issue, also per kind."""
    top = len(planted) if top is None else top
    listed = issues[:top]
    found = [any(_finds(i, e, min_overlap) for i in listed) for e in planted]
    hits = sum(any(_finds(i, e, min_overlap) for e in planted) for i in listed)
    by_kind = {k: [f for f, e in zip(found, planted, strict=True) if e.kind == k] for k in PLANT_KINDS}
    return {
        "top": top,
        "listed": len(listed),
        "planted": len(planted),
        "precision": hits / len(listed) if listed else 0.0,
        "recall": sum(found) / len(planted) if planted else 0.0,
        "recall_by_kind": {k: sum(v) / len(v) for k, v in by_kind.items() if v},
    }
