"""Soft and hard voting, one image at a time so memory stays bounded whatever the number of images and models.

Soft: weighted mean of the members' probabilities. Hard: weighted per-pixel majority of their masks; a tie goes
to the best member (highest validation mIoU stored in its meta.json; the first given when none is known).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path
from typing import cast

import numpy as np

from trashseg.errors import TrashsegError
from trashseg.infer.folder import PredictionFolder, PredictionMeta
from trashseg.progress import for_each_pending
from trashseg.submission import decode_row, iter_rows, write_submission

MODES = ("soft", "hard")


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise TrashsegError(f"--mode {mode!r}: choose soft or hard")


def normalised_weights(weights: list[float] | None, n: int) -> np.ndarray:
    """Weights summing to 1; a NaN, infinite or negative weight (or all zero) would vote NaN into every pixel."""
    if weights is None:
        return np.full(n, 1.0 / n)
    if len(weights) != n:
        raise TrashsegError(f"--weights: {len(weights)} value(s) for {n} members")
    w = np.asarray(weights, dtype=np.float64)
    with np.errstate(over="ignore"):
        total = w.sum()  # NaN or inf when a weight is, or when finite weights overflow
    if not np.isfinite(total) or (w < 0).any() or total <= 0:
        raise TrashsegError(
            f"--weights {','.join(map(str, weights))}: must be finite, non-negative numbers, not all zero, e.g. 2,1,1"
        )
    return w / total


def best_member(metas: list[PredictionMeta]) -> int:
    scores = [m.val_miou for m in metas]
    known = [(s, -i) for i, s in enumerate(scores) if s is not None]
    return -max(known)[1] if known else 0


def open_members(paths: list[Path]) -> tuple[list[PredictionFolder], list[str]]:
    """Members must predict the same classes in the same order, or averaging them is meaningless."""
    if len(paths) < 2:
        raise TrashsegError("an ensemble needs at least 2 prediction folders")
    folders = [PredictionFolder(p) for p in paths]
    classes = folders[0].classes
    for f in folders[1:]:
        f.meta().check_classes(classes, f.root, str(folders[0].root), ": members must share one class list")
    return folders, classes


def _check_same_split(folders: list[PredictionFolder], metas: list[PredictionMeta]) -> None:
    """Members predicted on different splits (or datasets) can share file names: voting them would mix images."""
    first = folders[0].split_key()
    for folder, meta in zip(folders[1:], metas[1:], strict=True):
        if folder.split_key() != first:
            raise TrashsegError(
                f"{folder.root} was predicted on split {meta.split} of {meta.data_root}, "
                f"{folders[0].root} on {first[0]} of {first[1]} (from their meta.json): members must "
                "predict the same split; predict them again on one split"
            )


def _member_names(folders: list[PredictionFolder]) -> list[str]:
    """The images every member predicted: the same set in each, or the ensemble would silently cover less."""
    names = folders[0].names()
    expected = set(names)
    for f in folders[1:]:
        have = set(f.names())
        for lacking, extra, where in ((f, expected - have, folders[0]), (folders[0], have - expected, f)):
            if extra:
                raise TrashsegError(
                    f"{lacking.root} has no prediction for {len(extra)} image(s) of {where.root}, "
                    f"e.g. {min(extra)}; finish or rerun that prediction first"
                )
    return names


def _check_shapes(arrays: list[np.ndarray], name: str, roots: list[Path], what: str) -> None:
    if len({a.shape for a in arrays}) > 1:
        detail = ", ".join(f"{r}: {a.shape}" for r, a in zip(roots, arrays, strict=True))
        raise TrashsegError(f"image {name}: {what} shapes differ ({detail}); members must share classes and image size")


def soft_vote(probs: list[np.ndarray], weights: np.ndarray, *, name: str, roots: list[Path]) -> np.ndarray:
    _check_shapes(probs, name, roots, "probability")
    return np.tensordot(weights.astype(np.float32), np.stack(probs), axes=1)


def hard_vote(
    masks: list[np.ndarray], weights: np.ndarray, *, best: int, num_classes: int, name: str, roots: list[Path]
) -> np.ndarray:
    """Weighted majority per pixel; where the top vote is tied, the best member's label wins if it is among
    the tied classes (otherwise the lowest tied class id, as argmax does)."""
    _check_shapes(masks, name, roots, "mask")
    for mask, root in zip(masks, roots, strict=True):
        if mask.max(initial=0) >= num_classes:
            raise TrashsegError(f"image {name}: {root} has class id {mask.max()}, beyond the {num_classes} classes")
    shape = masks[0].shape
    votes = np.zeros((num_classes, masks[0].size), np.float64)
    pixels = np.arange(votes.shape[1])
    for mask, weight in zip(masks, weights, strict=True):
        votes[mask.ravel().astype(np.intp), pixels] += weight  # each pixel once per member: plain += is exact
    winner = votes.argmax(0)
    favourite = masks[best].ravel().astype(np.intp)
    tied = np.isclose(votes[favourite, pixels], votes[winner, pixels], rtol=1e-9, atol=1e-12)
    return np.where(tied, favourite, winner).astype(np.uint8).reshape(shape)


def ensemble_folders(
    paths: list[Path], out: Path, mode: str, *, weights: list[float] | None = None, save_probs: bool = False
) -> dict:
    check_mode(mode)
    if save_probs and mode == "hard":
        raise TrashsegError("--save-probs needs --mode soft: hard voting makes no probabilities")
    folders, classes = open_members(paths)
    metas = [f.meta() for f in folders]
    _check_same_split(folders, metas)
    if mode == "soft" and not all(m.has_probs for m in metas):
        lacking = [str(f.root) for f, m in zip(folders, metas, strict=True) if not m.has_probs]
        raise TrashsegError(f"soft voting needs probabilities; predict these with --save-probs: {lacking}")
    w = normalised_weights(weights, len(folders))
    best = best_member(metas)
    result = PredictionFolder(out)
    resolved = [str(Path(p).resolve()) for p in paths]  # a rerun may spell the same folders differently
    meta = {
        "classes": classes,
        "source": "ensemble",
        "split": metas[0].split,
        "data_root": metas[0].data_root,
        "mode": mode,
        "members": resolved,
        "weights": w.tolist(),
        "tie_break": resolved[best],
        "has_probs": save_probs,
        "val_miou": None,
    }
    save_probs = result.init(meta).has_probs
    names = _member_names(folders)

    def vote(name: str) -> np.ndarray:
        if mode == "soft":
            return soft_vote([f.probs(name) for f in folders], w, name=name, roots=paths)
        return hard_vote(
            [f.mask(name) for f in folders], w, best=best, num_classes=len(classes), name=name, roots=paths
        )

    def write(name: str, voted: np.ndarray) -> None:
        if mode == "soft":
            result.write_probs(name, voted, save_probs)
        else:
            result.write(name, voted)

    stats = for_each_pending(
        names,
        label=f"{mode} vote → {out}",
        compute=lambda todo: map(vote, todo),
        write=write,
        finished=lambda name: result.done(name, save_probs),
    )
    return {"images": len(names), "voted": stats.done, "tie_break": resolved[best]}


def _rows_in_lockstep(paths: list[Path], num_classes: int) -> Iterator[tuple[str, list[np.ndarray]]]:
    end, seen = object(), set()
    for rows in zip_longest(*(iter_rows(p) for p in paths), fillvalue=end):
        if any(r is end for r in rows):
            short = [str(p) for p, r in zip(paths, rows, strict=True) if r is end]
            raise TrashsegError(f"submissions have different row counts: {short} end early")
        rows = cast(tuple[tuple[int, str, str], ...], rows)  # none is the `end` marker now
        ids = {image_id for _, image_id, _ in rows}
        if len(ids) > 1:
            raise TrashsegError(
                f"line {rows[0][0]}: image ids differ between CSVs ({sorted(ids)}); "
                "vote over submissions of the same test.json"
            )
        if rows[0][1] in seen:
            raise TrashsegError(f"{paths[0]}:{rows[0][0]}: image_id {rows[0][1]} appears twice")
        seen.add(rows[0][1])
        yield (
            rows[0][1],
            [decode_row(p, line, i, text, num_classes) for p, (line, i, text) in zip(paths, rows, strict=True)],
        )


def ensemble_csvs(paths: list[Path], out: Path, num_classes: int, *, weights: list[float] | None = None) -> int:
    """Hard voting over submission CSVs (no probabilities there); ties go to the first CSV given."""
    if len(paths) < 2:
        raise TrashsegError("an ensemble needs at least 2 submission CSVs")
    w = normalised_weights(weights, len(paths))
    return write_submission(
        out,
        (
            (image_id, hard_vote(masks, w, best=0, num_classes=num_classes, name=image_id, roots=paths))
            for image_id, masks in _rows_in_lockstep(paths, num_classes)
        ),
    )
