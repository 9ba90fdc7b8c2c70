"""``trashseg pseudo``: confident pixels of a prediction folder become a training set (the rest ignore).

The seed team's best single-model trick (0.766 → 0.776): predict the test set with the best model or ensemble,
keep pixels whose top probability reaches the threshold, and train again with them mixed in
(``trashseg train --extra-data DIR``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trashseg.config import IGNORE_INDEX
from trashseg.data.extra import MANIFEST
from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_write_json, remove_stale_temps
from trashseg.infer.folder import PredictionFolder
from trashseg.progress import for_each_pending


def confident_labels(probs: np.ndarray, threshold: float, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """argmax where the top probability ≥ threshold, ignore_index elsewhere."""
    labels = probs.argmax(0).astype(np.uint8)
    labels[probs.max(0) < threshold] = ignore_index
    return labels


def write_pseudo(pred: str | Path, out: str | Path, threshold: float) -> dict:
    folder, out = PredictionFolder(pred), Path(out)
    meta = folder.meta()
    if not meta.has_probs:
        raise TrashsegError(f"{folder.root}: pseudo-labels need probabilities; predict with --save-probs")
    if not 0 < threshold <= 1:
        raise TrashsegError(f"--threshold {threshold}: must be in (0, 1]")
    if not meta.split or not meta.data_root:
        raise TrashsegError(
            f"{folder.meta_path}: does not say which dataset split it predicted ('split', "
            "'data_root'); make it with trashseg predict / ensemble"
        )
    split_path = Path(meta.split)
    try:
        images = json.loads(split_path.read_text(encoding="utf-8"))["images"]
        if not isinstance(images, list) or not all(isinstance(i, dict) and "file_name" in i for i in images):
            raise TypeError("'images' is not a list of images with a file_name")
    except (OSError, ValueError, KeyError, TypeError) as exc:  # TypeError: a top level that is not a mapping
        raise TrashsegError(
            f"{folder.meta_path}: its split {split_path} cannot be read as a COCO file ({type(exc).__name__}: {exc})"
        ) from None
    labelled = PredictionFolder(out)
    remove_stale_temps(out)  # what a killed run left half-written
    kept_pixels = total_pixels = 0

    def write(image: dict, labels: np.ndarray) -> None:
        nonlocal kept_pixels, total_pixels
        kept_pixels += int((labels != IGNORE_INDEX).sum())
        total_pixels += labels.size
        labelled.write(image["file_name"], labels)  # same masks/<file_name>.png layout as predictions

    # every image again on a rerun (finished: never): the summary counts the pixels of all of them
    for_each_pending(
        images,
        label=f"pseudo-labels → {out}",
        finished=lambda image: False,
        write=write,
        compute=lambda todo: (confident_labels(folder.probs(i["file_name"]), threshold) for i in todo),
    )
    summary = {"images": len(images), "kept_pixel_share": kept_pixels / max(1, total_pixels), "threshold": threshold}
    atomic_write_json(
        out / MANIFEST,
        {
            "classes": meta.classes,
            "root": meta.data_root,
            "source": str(pred),
            "threshold": threshold,
            "images": images,
            "summary": summary,
        },
    )
    return summary
