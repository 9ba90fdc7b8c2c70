"""Score predictions (a submission CSV or a prediction folder of PNG masks) against a split's ground truth."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from trashseg.data.coco import CocoSplit
from trashseg.data.masks import MaskCache
from trashseg.errors import TrashsegError
from trashseg.infer.folder import PredictionFolder
from trashseg.metrics import COMPETITION_SIZE, ConfusionMeter, SegScores, resize_nearest
from trashseg.submission import read_submission


def evaluate(pred: str | Path, split: CocoSplit, cache: MaskCache, *, size: int = COMPETITION_SIZE) -> SegScores:
    """mIoU and friends over the whole split; `size` > 0 scores at size×size like the competition (nearest),
    0 scores at each image's own resolution."""
    if not split.has_annotations:
        raise TrashsegError(f"{split.path}: has no annotations, so it cannot be scored")
    pred = Path(pred)
    num_classes = len(split.classes)
    get: Callable[[str], np.ndarray]  # file name → predicted mask
    if pred.is_dir():
        folder = PredictionFolder(pred)
        if folder.classes != split.classes:
            raise TrashsegError(f"{pred} predicts classes {folder.classes}, the dataset config has {split.classes}")
        get = folder.mask
    else:
        masks = read_submission(pred, num_classes)
        missing = [img["file_name"] for img in split.images if img["file_name"] not in masks]
        if missing:
            raise TrashsegError(
                f"{pred}: no prediction for {len(missing)} image(s) of {split.name}, e.g. {missing[:3]}"
            )
        get = masks.__getitem__
    meter = ConfusionMeter(num_classes)
    for image in split.images:
        gt = cache.get(image)
        pr = get(image["file_name"])
        if size:
            gt, pr = resize_nearest(gt, size), resize_nearest(pr, size)
        elif pr.shape != gt.shape:
            pr = cv2.resize(pr, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
        meter.update(pr, gt)
    return meter.compute()
