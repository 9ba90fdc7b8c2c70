"""The confusion matrix of a validation as a figure (written by training into the run folder's plots/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trashseg.draw import figure, label_cells, plain
from trashseg.fileio import atomic_write_with


def plot_confusion(hist: np.ndarray, classes: list[str], path: str | Path, title: str = "") -> None:
    """Row-normalised confusion matrix (rows = ground truth), with per-class IoU on the y labels."""
    hist = np.asarray(hist, dtype=np.float64)
    rows = hist.sum(axis=1, keepdims=True)
    norm = np.divide(hist, rows, out=np.zeros_like(hist), where=rows > 0)
    diag = np.diag(hist)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = diag / (hist.sum(0) + hist.sum(1) - diag)
    n = len(classes)
    fig, ax = figure(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n), dpi=100)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    label_cells(ax, norm, {(i, j): f"{norm[i, j]:.2f}" for i in range(n) for j in range(n) if norm[i, j] >= 0.01}, 7)
    ax.set_xticks(range(n), [plain(c) for c in classes], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(
        range(n),
        [f"{plain(c)} ({'—' if v != v else f'{v:.2f}'})" for c, v in zip(classes, iou, strict=True)],
        fontsize=8,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth (IoU)")
    ax.set_title(title or "confusion matrix (row-normalised)")
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
