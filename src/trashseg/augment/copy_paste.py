"""Minority-class copy-paste (the seed team's "YohanMix") and CutMix, as a wrapper around the training dataset.

Rare classes (Battery, Clothing, ...) cover well under 1% of the pixels; pasting their instances from other
training images into each sample shows the model many more of them in new contexts. The geometry lives in pure
functions (:func:`paste_objects`, :func:`cutmix`) that take an explicit generator, so they are testable alone.
"""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np
from torch.utils.data import Dataset

from trashseg.config import CopyPasteConfig
from trashseg.data.dataset import SegmentationDataset
from trashseg.data.masks import MaskSource
from trashseg.data.stats import ClassStats, class_stats
from trashseg.errors import TrashsegError

log = logging.getLogger(__name__)

MIN_OBJECT_PIXELS = 16  # smaller components are mostly annotation slivers, not objects worth pasting
Donor = tuple[np.ndarray, np.ndarray, int]  # (object image crop H×W×3, object mask crop H×W bool, class id)


def _require_masks(dataset: SegmentationDataset) -> MaskSource:
    if dataset.cache is None:
        raise TrashsegError(f"{dataset.split.path}: copy-paste and class statistics need a split with annotations")
    return dataset.cache


def find_objects(mask: np.ndarray, classes: list[int], min_pixels: int = MIN_OBJECT_PIXELS) -> list[tuple[int, ...]]:
    """(class, x, y, w, h, seed_x) per 8-connected component: the bbox plus one pixel of the component on the
    bbox's top row, which identifies the component again inside its bbox crop without storing its pixels."""
    present = np.flatnonzero(np.bincount(mask.ravel(), minlength=256))
    objects: list[tuple[int, ...]] = []
    for cls in (c for c in classes if c in present):
        n, labels, stats, _ = cv2.connectedComponentsWithStats((mask == cls).astype(np.uint8), connectivity=8)
        for k in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[k])
            if area >= min_pixels:
                objects.append((cls, x, y, w, h, x + int(np.argmax(labels[y, x : x + w] == k))))
    return objects


def paste_objects(
    image: np.ndarray,
    mask: np.ndarray,
    donors: list[Donor],
    rng: np.random.Generator,
    scale: tuple[float, float] = (1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Paste each object, rescaled and maybe h-flipped, centred on a random pixel of the target (so it may be
    clipped at the border). Pasted pixels occlude what lies beneath: their label becomes the object's class."""
    image, mask = image.copy(), mask.copy()
    height, width = mask.shape
    for obj_image, obj_mask, cls in donors:
        factor = rng.uniform(*scale)
        h, w = (max(1, round(s * factor)) for s in obj_mask.shape)
        obj_image = cv2.resize(obj_image, (w, h), interpolation=cv2.INTER_LINEAR)
        obj_mask = cv2.resize(obj_mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        if rng.random() < 0.5:
            obj_image, obj_mask = obj_image[:, ::-1], obj_mask[:, ::-1]
        top, left = int(rng.integers(height)) - h // 2, int(rng.integers(width)) - w // 2
        y0, y1, x0, x1 = max(top, 0), min(top + h, height), max(left, 0), min(left + w, width)
        src = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
        region = obj_mask[src]
        image[y0:y1, x0:x1][region] = obj_image[src][region]
        mask[y0:y1, x0:x1][region] = cls
    return image, mask


def cutmix(
    image: np.ndarray,
    mask: np.ndarray,
    other_image: np.ndarray,
    other_mask: np.ndarray,
    rng: np.random.Generator,
    alpha: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Replace a box of the sample by the same box of `other` (resized to the sample first). The box lies fully
    inside the image and covers a Beta(alpha, alpha) share of its area, with the image's aspect ratio."""
    height, width = mask.shape
    if other_mask.shape != mask.shape:
        other_image = cv2.resize(other_image, (width, height), interpolation=cv2.INTER_LINEAR)
        other_mask = cv2.resize(other_mask, (width, height), interpolation=cv2.INTER_NEAREST)
    side = np.sqrt(rng.beta(alpha, alpha))
    h, w = round(height * side), round(width * side)
    y0, x0 = int(rng.integers(height - h + 1)), int(rng.integers(width - w + 1))
    image, mask = image.copy(), mask.copy()
    image[y0 : y0 + h, x0 : x0 + w] = other_image[y0 : y0 + h, x0 : x0 + w]
    mask[y0 : y0 + h, x0 : x0 + w] = other_mask[y0 : y0 + h, x0 : x0 + w]
    return image, mask


class CopyPasteDataset(Dataset):
    """Wraps a training :class:`SegmentationDataset`: raw sample → CutMix → copy-paste → the base's transform.

    The class choice (when rarest-by-pixels) and the donor index need a pass over all masks; both are built on first
    use and then pickled with the dataset, so touch :attr:`donors` before creating a DataLoader to build them once
    in the main process instead of once per worker. Pass `stats` when the caller already scanned the masks.
    """

    def __init__(
        self,
        dataset: SegmentationDataset,
        cfg: CopyPasteConfig,
        class_names: list[str],
        *,
        seed: int = 0,
        cutmix_prob: float = 0.0,
        stats: ClassStats | None = None,
    ):
        self.masks = _require_masks(dataset)
        self.dataset, self.cfg, self.class_names = dataset, cfg, list(class_names)
        self.seed, self.cutmix_prob, self._stats = seed, cutmix_prob, stats
        self._classes: list[int] | None = None if cfg.classes is None else self._class_ids(cfg.classes)
        self._donors: dict[int, np.ndarray] | None = None

    def _class_ids(self, names: list[str]) -> list[int]:
        valid = self.class_names[1:]  # background is not an object
        unknown = [n for n in names if n not in valid]
        if unknown:
            raise TrashsegError(f"augment.copy_paste.classes: unknown class name(s) {unknown}; valid names: {valid}")
        return [self.class_names.index(n) for n in names]

    @property
    def classes(self) -> list[int]:
        """Class ids whose objects get pasted: the configured ones, else the rarest present by pixel share."""
        if self._classes is None:
            stats = self._stats or class_stats(self.dataset.split, self.masks)
            shares = stats.shares
            self._classes = stats.rarest(self.cfg.rarest)
            log.info(
                "copy-paste classes (rarest by pixel share): %s",
                ", ".join(f"{self.class_names[c]} {shares[c]:.3%}" for c in self._classes),
            )
        return self._classes

    @property
    def donors(self) -> dict[int, np.ndarray]:
        """Class id → int array of rows (image index, x, y, w, h, seed_x), one per donor object."""
        if self._donors is None:
            rows: dict[int, list[tuple[int, ...]]] = {c: [] for c in self.classes}
            for index, info in enumerate(self.dataset.split.images):
                for cls, *box in find_objects(self.masks.get(info), self.classes):
                    rows[cls].append((index, *box))
            self._donors = {c: np.array(r, np.int64).reshape(-1, 6) for c, r in rows.items()}
        return self._donors

    def __len__(self) -> int:
        return len(self.dataset)

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.dataset.load(index)
        assert mask is not None  # the dataset has masks (_require_masks)
        return image, mask

    def _cut_object(self, cls: int, row: np.ndarray) -> Donor:
        """Crop one donor object: its bbox of the donor image and exactly its component within that bbox."""
        index, x, y, w, h, seed_x = (int(v) for v in row)
        image, mask = self._load(index)
        _, labels = cv2.connectedComponents((mask[y : y + h, x : x + w] == cls).astype(np.uint8), connectivity=8)
        return image[y : y + h, x : x + w], labels == labels[0, seed_x - x], cls

    def _draw_donors(self, index: int, rng: np.random.Generator) -> list[Donor]:
        """Between 1 and max_objects objects from other images; each picks a class uniformly, then an object."""
        pools = [(cls, rows[rows[:, 0] != index]) for cls, rows in self.donors.items()]
        pools = [(cls, rows) for cls, rows in pools if len(rows)]
        if not pools:
            return []
        out = []
        for _ in range(int(rng.integers(1, self.cfg.max_objects + 1))):
            cls, rows = pools[int(rng.integers(len(pools)))]
            out.append(self._cut_object(cls, rows[int(rng.integers(len(rows)))]))
        return out

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        """`item` is an index or (index, seed) from ``EpochSampler``: with a seed, the whole sample (CutMix,
        pasted objects, transform) is reproducible; without one it is drawn fresh."""
        index, seed = item if isinstance(item, tuple) else (item, None)
        rng = np.random.default_rng(None if seed is None else [self.seed, seed])
        image, mask = self._load(index)
        if len(self) > 1 and rng.random() < self.cutmix_prob:
            other = (index + 1 + int(rng.integers(len(self) - 1))) % len(self)
            image, mask = cutmix(image, mask, *self._load(other), rng)
        if rng.random() < self.cfg.prob:
            image, mask = paste_objects(image, mask, self._draw_donors(index, rng), rng, self.cfg.scale)
        return self.dataset.finish(index, image, mask, seed)
