"""Drawing label masks: fixed class colours, a tinted image, and the [prediction | ground truth] panel with a
legend, for everything that shows masks (overlays and reports, the training logger's images, the web demo, the
Python API).

Colours are fixed per class index, so a class looks the same across images, models and runs. The blending is
torchvision's ``draw_segmentation_masks``; the titles and the legend are plain cv2 text, which costs about a
millisecond per image where a matplotlib figure would cost a hundred.
"""

from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Any

import cv2
import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision.utils import draw_segmentation_masks

from trashseg.fileio import atomic_write_with

Color = tuple[int, int, int]
_FONT, _SCALE, _LINE = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 20


def class_colors(num_classes: int) -> list[Color]:
    """Index 0 (background) is never drawn; the next 20 take tab20's colours, any further ones hues spread by
    the golden ratio (distinct from each other, whatever the class count)."""
    tab20 = matplotlib.colormaps["tab20"]
    extra = [colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.9) for i in range(max(0, num_classes - 21))]
    rgb = [tab20(i)[:3] for i in range(min(20, num_classes - 1))] + extra
    return [(0, 0, 0)] + [(int(255 * r), int(255 * g), int(255 * b)) for r, g, b in rgb]


def _fit(mask: np.ndarray, image: np.ndarray) -> np.ndarray:
    """A mask of another size (submission-sized, or COCO sizes that disagree with the image) is brought to the
    image's size; labels stay labels (nearest)."""
    if mask.shape == image.shape[:2]:
        return mask
    return cv2.resize(mask, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)


def blend(image: np.ndarray, mask: np.ndarray, colors: list[Color], alpha: float = 0.5) -> np.ndarray:
    """uint8 H×W×3 RGB image with every non-background class of `mask` tinted; ignore (255) stays untinted."""
    present = [int(c) for c in np.unique(mask) if 0 < c < len(colors)]
    if not present:
        return image.copy()
    masks = torch.from_numpy(np.stack([mask == c for c in present]))
    drawn = draw_segmentation_masks(
        torch.from_numpy(image).permute(2, 0, 1), masks, alpha=alpha, colors=[colors[c] for c in present]
    )
    return np.ascontiguousarray(drawn.permute(1, 2, 0).numpy())


def _titled(image: np.ndarray, title: str) -> np.ndarray:
    bar = np.full((_LINE + 4, image.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, title, (4, _LINE - 4), _FONT, _SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, image])


def _legend(ids: list[int], classes: list[str], colors: list[Color], width: int) -> np.ndarray:
    """Swatch + name for each class shown, wrapped to the panel's width."""
    places, row, x = [], 0, 4  # (x, row) of each entry: the layout first, then a strip of the rows it needs
    for i in ids:
        w = 18 + cv2.getTextSize(classes[i], _FONT, _SCALE, 1)[0][0] + 12
        if x + w > width and x > 4:
            row, x = row + 1, 4
        places.append((x, row))
        x += w
    strip = np.full(((row + 1) * _LINE + 4, width, 3), 255, np.uint8)
    for i, (x, row) in zip(ids, places, strict=True):
        y = row * _LINE + 4
        cv2.rectangle(strip, (x, y + 2), (x + 12, y + 14), colors[i], -1)
        cv2.putText(strip, classes[i], (x + 18, y + 13), _FONT, _SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def overlay_panel(
    image: np.ndarray, pred: np.ndarray, classes: list[str], truth: np.ndarray | None = None, alpha: float = 0.5
) -> np.ndarray:
    """[image + prediction | image + ground truth] with titles and a legend of the classes shown (RGB)."""
    colors = class_colors(len(classes))
    pred = _fit(pred, image)
    tiles = [_titled(blend(image, pred, colors, alpha), "prediction")]
    shown = set(np.unique(pred).tolist())
    if truth is not None:
        truth = _fit(truth, image)
        tiles.append(_titled(blend(image, truth, colors, alpha), "ground truth"))
        shown |= set(np.unique(truth).tolist())
    gap = np.full((tiles[0].shape[0], 6, 3), 255, np.uint8)
    panel = np.hstack([tiles[0], gap, tiles[1]]) if len(tiles) == 2 else tiles[0]
    ids = sorted(c for c in shown if 0 < c < len(classes))
    return np.vstack([panel, _legend(ids, classes, colors, panel.shape[1])]) if ids else panel


def plain(text: str) -> str:
    """`text` as matplotlib shows it, character for character: two ``$`` in a name (a class, a file, a run)
    would start mathtext, which draws ``$x_1$`` as a formula and fails the whole figure on ``$\\foo{$``. An escaped
    ``\\$`` is matplotlib's own literal dollar, in every Text (titles, ticks, legends)."""
    return text.replace("$", r"\$")


def label_cells(ax: Any, shade: np.ndarray, texts: dict[tuple[int, int], str], fontsize: int) -> None:
    """Write each text in its (row, column) cell of a heatmap drawn on `ax`, white where the cell is dark
    (`shade` > 0.5), so a matrix reads as numbers as well as colours."""
    for (i, j), text in texts.items():
        color = "white" if shade[i, j] > 0.5 else "black"
        ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=color)


def figure(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    """A figure and its axes (``plt.subplots``' arguments), made without pyplot: pyplot's global state would open
    windows on a desktop, and setting its backend to Agg switched a notebook's plots off. A bare Figure draws with
    Agg when saved, needs no closing, and is safe in threads."""
    size = {k: kwargs.pop(k) for k in ("figsize", "dpi") if k in kwargs}
    fig = Figure(**size)
    return fig, fig.subplots(nrows, ncols, **kwargs)


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
