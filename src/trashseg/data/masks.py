"""COCO annotations → class-index masks, with a content-addressed disk cache.

Policy for degenerate annotations: ``trashseg data check`` reports them as errors (the data is wrong and should be
fixed at the source) while the loader handles them as follows, so that training still runs:
- a polygon part with fewer than 3 points, or with NaN/inf coordinates, is dropped (the other parts stay);
- so is one that reaches more than an image size beyond the image, or whose outline is longer than all the pixel
  edges of the image together: pycocotools walks the whole outline at 5× before it clips, so memory and time would
  follow the numbers in the file (a coordinate of 1e8 costs 7 GB), not the image;
- coordinates outside the image are clipped to it (pycocotools does this while rasterising);
- an image whose JSON size is over ``data.max_pixels`` is an error: its mask is never allocated;
- an annotation that rasterises to zero pixels is skipped;
- an RLE whose size differs from the image, or whose counts do not add up to height × width, is an error (it cannot
  be placed; pycocotools would fill a short one with uninitialised memory and crash on a long one).
Draw order follows the competition baseline: annotations sorted by area, largest first, so small objects stay
on top of the large ones they lie on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Protocol

import numpy as np
from pycocotools import mask as mask_utils

from trashseg.config import DataConfig
from trashseg.data.cache import cache_folder, entry_path, load_npy, presize, save_npy
from trashseg.data.coco import CocoSplit, Problem
from trashseg.errors import TrashsegError

log = logging.getLogger(__name__)
MASK_FORMAT_VERSION = 2  # bump when rasterisation changes so old cache entries are not reused (2: RLE totals checked)
FATAL_CODES = frozenset({"rle_size", "rle_counts"})  # problems the loader cannot work around


def _polygon_parts(ann: dict, h: int, w: int, file: str, image_id: int) -> tuple[list[list[float]], list[Problem]]:
    parts, problems = [], []
    for k, part in enumerate(ann["segmentation"]):
        where = dict(file=file, image_id=image_id, ann_id=ann["id"])
        if not isinstance(part, list) or not all(isinstance(v, (int, float)) for v in part):
            problems.append(
                Problem("error", "degenerate", f"polygon part {k} is not a list of numbers; dropped", **where)
            )
            continue
        if any(isinstance(v, float) and not math.isfinite(v) for v in part):
            problems.append(
                Problem("error", "degenerate", f"polygon part {k} has NaN/inf coordinates; dropped", **where)
            )
            continue
        if len(part) < 6 or len(part) % 2:
            problems.append(
                Problem(
                    "error",
                    "degenerate",
                    f"polygon part {k} has {len(part) // 2} point(s) (needs >= 3); dropped",
                    **where,
                )
            )
            continue
        xs, ys = part[0::2], part[1::2]
        if why := _unbounded(xs, ys, h, w):
            problems.append(Problem("error", "degenerate", f"polygon part {k} {why}; dropped", **where))
            continue
        if min(xs) < -0.5 or min(ys) < -0.5 or max(xs) > w + 0.5 or max(ys) > h + 0.5:
            problems.append(
                Problem(
                    "warning", "out_of_bounds", f"polygon part {k} extends outside the {w}x{h} image; clipped", **where
                )
            )
        parts.append(part)
    return parts, problems


def _unbounded(xs: list, ys: list, h: int, w: int) -> str | None:
    """Why rasterising a polygon part would cost more than its image (see the module doc), or None."""
    if min(xs) < -w or max(xs) > 2 * w or min(ys) < -h or max(ys) > 2 * h:
        return f"reaches more than an image size beyond the {w}x{h} image"
    dx = np.abs(np.diff(np.asarray([*xs, xs[0]], np.float64)))
    dy = np.abs(np.diff(np.asarray([*ys, ys[0]], np.float64)))
    if float(np.maximum(dx, dy).sum()) > 2 * (h + 1) * (w + 1):
        return f"has an outline longer than all the pixel edges of the {w}x{h} image"
    return None


def _string_counts(counts: str | bytes) -> list[int] | None:
    """The run lengths of a compressed COCO RLE string (pycocotools' rleFrString, which Python cannot call), or None
    when the string ends inside a number."""
    data = counts.encode("ascii") if isinstance(counts, str) else counts
    out: list[int] = []
    p = 0
    while p < len(data):
        x = k = 0
        more = True
        while more:
            if p >= len(data):
                return None
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        out.append(x + out[-2] if len(out) > 2 else x)
    return out


def rle_counts_problem(seg: dict, h: int, w: int) -> str | None:
    """Why an RLE's counts cannot describe an h×w mask, or None when they add up exactly."""
    counts = seg.get("counts")
    if isinstance(counts, (str, bytes)):
        try:
            runs = _string_counts(counts)
        except UnicodeEncodeError:
            runs = None
    elif isinstance(counts, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        runs = counts
    else:
        return "RLE counts must be a list of integers or a compressed string"
    if runs is None or any(r < 0 for r in runs):
        return "RLE counts are malformed (negative run, or a string cut short)"
    if sum(runs) != h * w:
        return f"RLE counts cover {sum(runs)} pixels, the {w}x{h} image has {h * w}; re-encode the mask"
    return None


def annotation_rle(ann: dict, h: int, w: int, file: str = "") -> tuple[dict | None, list[Problem]]:
    """One annotation as a single RLE (parts merged), or None when the policy drops it."""
    image_id = ann["image_id"]
    seg = ann["segmentation"]
    if isinstance(seg, dict):
        size = seg.get("size")
        if not isinstance(size, list) or [(type(v), v) for v in size] != [(int, h), (int, w)]:  # not 8.0, True
            return None, [
                Problem(
                    "error",
                    "rle_size",
                    f"RLE size {size} differs from image size [{h}, {w}]",
                    file,
                    image_id,
                    ann["id"],
                )
            ]
        if reason := rle_counts_problem(seg, h, w):
            return None, [Problem("error", "rle_counts", reason, file, image_id, ann["id"])]
        counts = seg.get("counts")
        rle = mask_utils.frPyObjects(seg, h, w) if isinstance(counts, list) else dict(seg)
        if isinstance(rle.get("counts"), str):
            rle["counts"] = rle["counts"].encode("ascii")
        problems: list[Problem] = []
    else:
        parts, problems = _polygon_parts(ann, h, w, file, image_id)
        if not parts:
            return None, problems + [
                Problem("error", "degenerate", "no usable polygon part; annotation skipped", file, image_id, ann["id"])
            ]
        rle = mask_utils.merge(mask_utils.frPyObjects(parts, h, w))
    if mask_utils.area(rle) == 0:
        return None, problems + [
            Problem("error", "zero_area", "annotation covers no pixel; skipped", file, image_id, ann["id"])
        ]
    return rle, problems


def oversized(image: dict, file: str, max_pixels: int) -> Problem | None:
    """An error when the JSON's size of an image is over the pixel limit: its mask, and the outlines of its
    polygons, would be allocated at that size before any image file is read (eda and report read none)."""
    h, w = image["height"], image["width"]
    if h * w <= max_pixels:
        return None
    text = (
        f"the JSON says {w}x{h}, over the limit of {max_pixels} pixels (data.max_pixels): no mask is drawn or checked"
    )
    return Problem("error", "too_many_pixels", text, file, image["id"])


def rasterize(
    anns: list[dict], h: int, w: int, cat_to_class: dict[int, int], file: str = ""
) -> tuple[np.ndarray, list[Problem]]:
    """Paint annotations into a uint8 class mask, largest area first (the competition's order)."""
    mask = np.zeros((h, w), dtype=np.uint8)
    problems: list[Problem] = []
    drawable = []
    for ann in anns:
        rle, probs = annotation_rle(ann, h, w, file)
        problems += probs
        if rle is not None:
            area = ann.get("area") or float(mask_utils.area(rle))
            drawable.append((area, cat_to_class[ann["category_id"]], rle))
    for _, cls, rle in sorted(drawable, key=lambda t: t[0], reverse=True):
        mask[mask_utils.decode(rle).astype(bool)] = cls
    return mask, problems


class MaskSource(Protocol):
    """Where a dataset reads an image's mask: a :class:`MaskCache`, or a folder of PNGs (``data.extra.PngMasks``)."""

    def get(self, image: dict) -> np.ndarray: ...


class MaskCache:
    """Rasterised masks on disk, keyed by a hash of everything that shapes the mask.

    The key covers the image size, the image's annotations and the category → class mapping, so editing an
    annotation or the class list re-rasterises exactly the images it touches; nothing needs to be cleared by hand.
    """

    def __init__(self, split: CocoSplit, cache_dir: str | Path, size: int | tuple[int, int] | None = None):
        self.split = split
        self.size = size  # presize (see trashseg.data.cache.presize); None keeps the image's own size
        self.dir = Path(cache_dir)
        self._mapping = sorted(split.cat_to_class.items())
        self._keys: dict[int, str] = {}  # hashing polygons costs more than reading the PNG: do it once per image

    def key(self, image: dict) -> str:
        if image["id"] not in self._keys:
            self._keys[image["id"]] = self._hash(image)
        return self._keys[image["id"]]

    def _hash(self, image: dict) -> str:
        anns = self.split.anns_by_image.get(image["id"], [])
        payload = json.dumps(
            [
                MASK_FORMAT_VERSION,
                image["height"],
                image["width"],
                self.size,
                self._mapping,
                [(a["id"], a["category_id"], a.get("area"), a["segmentation"]) for a in anns],
            ],
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha1(payload.encode()).hexdigest()

    def path(self, image: dict) -> Path:
        key = self.key(image)
        return entry_path(self.dir, key)

    def get(self, image: dict) -> np.ndarray:
        """The mask of one image, from the cache when present, else rasterised and stored."""
        if problem := oversized(image, str(self.split.path), self.split.max_pixels):
            raise TrashsegError(str(problem))
        path = self.path(image)
        mask = load_npy(path)
        if mask is not None:
            return mask
        mask, problems = rasterize(
            self.split.anns_by_image.get(image["id"], []),
            image["height"],
            image["width"],
            self.split.cat_to_class,
            str(self.split.path),
        )
        fatal = [p for p in problems if p.code in FATAL_CODES]
        if fatal:
            raise TrashsegError("\n".join(str(p) for p in fatal))
        for p in problems:
            log.warning("%s (handled: see trashseg.data.masks policy)", p)
        mask = presize(mask, self.size, nearest=True)
        save_npy(path, mask)
        return mask


def mask_cache(split: CocoSplit, data: DataConfig, *, presized: bool = False) -> MaskCache:
    """`split`'s masks in the configured cache (``data.cache_dir``, see ``cache_folder``). Training reads them
    `presized` to ``data.cache_size``; scoring, statistics and drawing at the image's own size."""
    return MaskCache(split, cache_folder(data, "masks"), data.cache_size if presized else None)
