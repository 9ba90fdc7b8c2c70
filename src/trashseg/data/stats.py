"""Per-class statistics of a split's masks: pixel shares (class weights, rarest classes) and per-image presence
(stratified folds, class-balanced sampling). One pass over the cached masks serves all of them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trashseg.data.coco import CocoSplit
from trashseg.data.masks import MaskSource


@dataclass
class ClassStats:
    pixels: np.ndarray  # (C,) int64 pixel count per class
    presence: np.ndarray  # (N, C) bool: class c occurs in image n

    @property
    def shares(self) -> np.ndarray:
        total = self.pixels.sum()
        return self.pixels / total if total else self.pixels.astype(np.float64)

    def rarest(self, k: int) -> list[int]:
        """The k non-background classes with the smallest non-zero pixel share."""
        order = [c for c in np.argsort(self.pixels, kind="stable") if c != 0 and self.pixels[c] > 0]
        return [int(c) for c in order[:k]]


def class_stats(split: CocoSplit, cache: MaskSource) -> ClassStats:
    num_classes = len(split.classes)
    pixels = np.zeros(num_classes, np.int64)
    presence = np.zeros((len(split.images), num_classes), bool)
    for n, image in enumerate(split.images):
        counts = np.bincount(cache.get(image).ravel(), minlength=256)[:num_classes]
        pixels += counts
        presence[n] = counts > 0
    return ClassStats(pixels, presence)


def balanced_image_weights(stats: ClassStats, strength: float) -> np.ndarray:
    """Sampling weight per image: a mix of uniform and "by the rarest class it holds" (repeat-factor style).

    An image's class score is max over its classes of share^-0.5; `strength` 0 is uniform, 1 fully balanced.
    Weights sum to 1.
    """
    n = len(stats.presence)
    uniform = np.full(n, 1.0 / n)
    if strength <= 0:
        return uniform
    shares = stats.shares.copy()
    shares[0] = np.inf  # background never drives the choice
    score = np.where(stats.presence & (shares > 0), np.power(np.where(shares > 0, shares, 1.0), -0.5), 0.0)
    per_image = score.max(axis=1)
    per_image[per_image == 0] = per_image[per_image > 0].min() if (per_image > 0).any() else 1.0
    return (1 - strength) * uniform + strength * per_image / per_image.sum()
