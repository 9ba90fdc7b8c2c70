"""Soft and hard voting, one image at a time so memory stays bounded whatever the number of images and models.

Soft: weighted mean of the members' probabilities. Hard: weighted per-pixel majority of their masks; a tie goes
to the best member (highest validation mIoU stored in its meta.json; the first given when none is known).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path

import numpy as np
from rich.console import Console

from trashseg.errors import TrashsegError
from trashseg.infer.folder import PredictionFolder
from trashseg.infer.predict import progress_bar
from trashseg.fileio import atomic_open
from trashseg.submission import HEADER, decode_row, encode_mask, iter_rows

TIE_BREAK = 1e-3  # added to the best member's vote weight: decides exact ties, never outvotes a real majority


def normalised_weights(weights: list[float] | None, n: int) -> np.ndarray:
    if weights is None:
        return np.full(n, 1.0 / n)
    if len(weights) != n:
        raise TrashsegError(f"--weights: {len(weights)} value(s) for {n} members")
    w = np.asarray(weights, dtype=np.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise TrashsegError("--weights: must be non-negative and not all zero")
    return w / w.sum()


def best_member(metas: list[dict]) -> int:
    scores = [m.get("val_miou") for m in metas]
    known = [(s, -i) for i, s in enumerate(scores) if s is not None]
    return -max(known)[1] if known else 0


def open_members(paths: list[Path]) -> tuple[list[PredictionFolder], list[str]]:
    """Members must predict the same classes in the same order, or averaging them is meaningless."""
    if len(paths) < 2:
        raise TrashsegError("an ensemble needs at least 2 prediction folders")
    folders = [PredictionFolder(p) for p in paths]
    classes = folders[0].classes
    for f in folders[1:]:
        if f.classes != classes:
            raise TrashsegError(f"{f.root} predicts {len(f.classes)} classes {f.classes}, {folders[0].root} predicts "
                                f"{len(classes)} {classes}: members must share one class list")
    return folders, classes


def _member_names(folders: list[PredictionFolder]) -> list[str]:
    """Images present in every member, in the first member's order (as it predicted them)."""
    names = [p.relative_to(folders[0].root / "masks").as_posix()[: -len(".png")]
             for p in sorted((folders[0].root / "masks").rglob("*.png"))]
    for f in folders[1:]:
        missing = [n for n in names if not f.mask_path(n).exists()]
        if missing:
            raise TrashsegError(f"{f.root} has no prediction for {len(missing)} image(s) of {folders[0].root}, "
                                f"e.g. {missing[0]}")
    return names


def soft_vote(probs: list[np.ndarray], weights: np.ndarray, name: str, roots: list[Path]) -> np.ndarray:
    shapes = {p.shape for p in probs}
    if len(shapes) > 1:
        detail = ", ".join(f"{r}: {p.shape}" for r, p in zip(roots, probs))
        raise TrashsegError(f"image {name}: probability shapes differ ({detail}); members must share classes "
                            "and image size")
    return np.tensordot(weights.astype(np.float32), np.stack(probs), axes=1)


def hard_vote(masks: list[np.ndarray], weights: np.ndarray, best: int, num_classes: int) -> np.ndarray:
    shape = masks[0].shape
    votes = np.zeros((num_classes, shape[0] * shape[1]), np.float64)
    pixels = np.arange(votes.shape[1])
    w = weights.copy()
    w[best] += TIE_BREAK * w.min()
    for mask, weight in zip(masks, w):
        votes[mask.ravel().astype(np.intp), pixels] += weight  # each pixel once per member: plain += is exact
    return votes.argmax(0).astype(np.uint8).reshape(shape)


def ensemble_folders(paths: list[Path], out: Path, mode: str, weights: list[float] | None = None,
                     save_probs: bool = False, console: Console | None = None) -> dict:
    console = console or Console()
    folders, classes = open_members(paths)
    metas = [f.meta() for f in folders]
    if mode == "soft" and not all(m.get("has_probs") for m in metas):
        lacking = [str(f.root) for f, m in zip(folders, metas) if not m.get("has_probs")]
        raise TrashsegError(f"soft voting needs probabilities; predict these with --save-probs: {lacking}")
    w = normalised_weights(weights, len(folders))
    best = best_member(metas)
    result = PredictionFolder(out)
    result.init({"classes": classes, "source": "ensemble", "split": metas[0].get("split"),
                 "data_root": metas[0].get("data_root"), "mode": mode, "members": [str(p) for p in paths],
                 "weights": w.tolist(), "tie_break": str(paths[best]), "has_probs": save_probs and mode == "soft",
                 "val_miou": None})
    names = _member_names(folders)
    todo = [n for n in names if not result.done(n, save_probs and mode == "soft")]
    start = time.perf_counter()
    with progress_bar(console) as bar:
        task = bar.add_task(f"{mode} vote → {out}", total=len(todo), rate="-")
        for i, name in enumerate(todo, start=1):
            if mode == "soft":
                probs = soft_vote([f.probs(name) for f in folders], w, name, paths)
                result.write(name, probs.argmax(0).astype(np.uint8), probs if save_probs else None)
            else:
                result.write(name, hard_vote([f.mask(name) for f in folders], w, best, len(classes)))
            bar.update(task, advance=1, rate=f"{i / (time.perf_counter() - start):.1f}")
    return {"images": len(names), "voted": len(todo), "tie_break": str(paths[best])}


def _rows_in_lockstep(paths: list[Path], num_classes: int) -> Iterator[tuple[str, list[np.ndarray]]]:
    end = object()
    for rows in zip_longest(*(iter_rows(p) for p in paths), fillvalue=end):
        if any(r is end for r in rows):
            short = [str(p) for p, r in zip(paths, rows) if r is end]
            raise TrashsegError(f"submissions have different row counts: {short} end early")
        ids = {image_id for _, image_id, _ in rows}
        if len(ids) > 1:
            raise TrashsegError(f"line {rows[0][0]}: image ids differ between CSVs ({sorted(ids)}); "
                                "vote over submissions of the same test.json")
        yield rows[0][1], [decode_row(p, line, i, text, num_classes) for p, (line, i, text) in zip(paths, rows)]


def ensemble_csvs(paths: list[Path], out: Path, num_classes: int, weights: list[float] | None = None) -> int:
    """Hard voting over submission CSVs (no probabilities there); ties go to the first CSV given."""
    if len(paths) < 2:
        raise TrashsegError("an ensemble needs at least 2 submission CSVs")
    w = normalised_weights(weights, len(paths))
    n = 0
    with atomic_open(out, "w", newline="", encoding="utf-8") as fh:
        fh.write(",".join(HEADER) + "\n")
        for image_id, masks in _rows_in_lockstep(paths, num_classes):
            fh.write(f"{image_id},{encode_mask(hard_vote(masks, w, 0, num_classes))}\n")
            n += 1
    return n
