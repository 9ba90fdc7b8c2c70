"""K-fold splits that match the test distribution: multilabel-stratified by class presence (iterative
stratification, iterstrat) and grouped, so related images (a batch folder, a video) never straddle train/val."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

from trashseg.data.coco import CocoSplit
from trashseg.data.stats import ClassStats
from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_write_json


@dataclass
class Fold:
    train: list[int]  # image indices into split.images
    val: list[int]


def image_groups(split: CocoSplit, pattern: str | None) -> list[str]:
    """Group key per image from the first capture group of `pattern` on file_name (whole match if no group)."""
    if not pattern:
        return [img["file_name"] for img in split.images]
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise TrashsegError(f"--group-by {pattern!r}: not a valid regular expression ({exc})") from None
    groups = []
    for img in split.images:
        m = regex.search(img["file_name"])
        if m is None:
            raise TrashsegError(
                f"--group-by {pattern!r} does not match file_name {img['file_name']!r} (image id {img['id']})"
            )
        groups.append(m.group(1) if regex.groups else m.group(0))
    return groups


def default_groups(split: CocoSplit) -> tuple[list[str], str | None]:
    """Each image's folder (a batch in the competition, a video in TrashCan), and a note when that is no grouping
    at all: a labelling tool's export keeps every image in one folder, so there each image is its own group."""
    folders = [img["file_name"].rpartition("/")[0] for img in split.images]
    if len(set(folders)) > 1:
        return folders, None
    note = (
        f"every image of {split.name} is in one folder, so images are not grouped; give --group-by REGEX to keep "
        "related images (frames of one video, photos of one batch) in one fold"
    )
    return [img["file_name"] for img in split.images], note


def make_folds(stats: ClassStats, groups: list[str], n_folds: int, *, seed: int = 0) -> list[Fold]:
    """Stratify groups by the classes they contain, then expand groups back to images."""
    keys = sorted(set(groups))
    if len(keys) < n_folds:
        raise TrashsegError(
            f"{len(keys)} group(s) cannot fill {n_folds} folds; lower --folds or use a finer --group-by"
        )
    index = {k: i for i, k in enumerate(keys)}
    gid = np.array([index[g] for g in groups])
    labels = np.zeros((len(keys), stats.presence.shape[1]), np.int64)
    np.add.at(labels, gid, stats.presence.astype(np.int64))
    labels = (labels > 0).astype(np.int64)
    folds = []
    splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for _, val_groups in splitter.split(np.zeros(len(keys)), labels):
        is_val = np.isin(gid, val_groups)
        folds.append(Fold(np.flatnonzero(~is_val).tolist(), np.flatnonzero(is_val).tolist()))
    return folds


def subset_coco(split: CocoSplit, indices: list[int]) -> dict:
    """A COCO dict with the chosen images and their annotations; categories unchanged."""
    from trashseg.data.coco import read_json

    data = read_json(split.path)
    images = [split.images[i] for i in indices]
    ids = {img["id"] for img in images}
    return {
        **{k: v for k, v in data.items() if k not in ("images", "annotations")},
        "images": images,
        "annotations": [a for a in data.get("annotations", []) if a["image_id"] in ids],
    }


def write_folds(split: CocoSplit, folds: list[Fold], out_dir: Path) -> list[tuple[Path, Path]]:
    """fold{k}_train.json / fold{k}_val.json, file_name unchanged (still relative to the dataset root)."""
    paths = []
    for k, fold in enumerate(folds):
        train, val = out_dir / f"fold{k}_train.json", out_dir / f"fold{k}_val.json"
        atomic_write_json(train, subset_coco(split, fold.train))
        atomic_write_json(val, subset_coco(split, fold.val))
        paths.append((train, val))
    return paths
