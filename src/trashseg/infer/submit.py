"""Prediction folder → the competition CSV, rows in the split's order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from trashseg.data.coco import CocoSplit
from trashseg.errors import TrashsegError
from trashseg.infer.folder import PredictionFolder
from trashseg.submission import write_submission


def submit(pred: str | Path, split: CocoSplit, out: str | Path) -> int:
    folder = PredictionFolder(pred)
    if folder.classes != split.classes:
        raise TrashsegError(f"{pred} predicts classes {folder.classes}, the dataset config has {split.classes}")
    missing = [img["file_name"] for img in split.images if not folder.mask_path(img["file_name"]).exists()]
    if missing:
        raise TrashsegError(
            f"{pred}: no prediction for {len(missing)} image(s) of {split.name}, e.g. {missing[0]}; "
            "run trashseg predict on that split first"
        )

    def rows() -> Iterator[tuple[str, np.ndarray]]:
        for img in split.images:
            yield img["file_name"], folder.mask(img["file_name"])

    return write_submission(out, rows())
