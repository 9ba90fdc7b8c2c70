"""The competition's metric: one confusion matrix over the whole split, then IoU per class and their mean.

IoU_c = diag / (row + col - diag); a class absent from both ground truth and prediction gives 0/0 = NaN and is
left out of the mean (``nanmean``), exactly like the competition's ``label_accuracy_score``. Accumulation is a
single ``bincount`` on whatever device the masks live on, so validation on GPU never copies masks to the CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch

from trashseg.config import IGNORE_INDEX

COMPETITION_SIZE = 256


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))


def confusion_matrix(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """C×C int64 matrix, rows = ground truth, columns = prediction; pixels whose target is ignore_index skipped."""
    pred, target = _as_tensor(pred), _as_tensor(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    target = target.reshape(-1).long()
    pred = pred.reshape(-1).to(target.device).long()
    keep = target != ignore_index
    target, pred = target[keep], pred[keep]
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ValueError(f"target has class ids outside [0, {num_classes}) other than ignore_index {ignore_index}")
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_classes):
        raise ValueError(f"prediction has class ids outside [0, {num_classes})")
    return torch.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


@dataclass
class SegScores:
    miou: float
    pixel_acc: float
    mean_class_acc: float
    fwiou: float
    iou: list[float]  # NaN where the class is absent from both ground truth and prediction
    class_acc: list[float]

    @classmethod
    def from_dict(cls, record: dict) -> SegScores:
        """Inverse of :meth:`to_dict` (null → NaN); extra keys such as epoch are ignored."""
        nan = float("nan")
        return cls(
            miou=nan if record["miou"] is None else record["miou"],
            pixel_acc=record["pixel_acc"],
            mean_class_acc=record["mean_class_acc"],
            fwiou=record["fwiou"],
            iou=[nan if v is None else v for v in record["iou"]],
            class_acc=[nan if v is None else v for v in record["class_acc"]],
        )

    def to_dict(self, classes: list[str] | None = None) -> dict:
        out = asdict(self)
        if classes:
            out["per_class"] = {
                name: {"iou": iou, "acc": acc} for name, iou, acc in zip(classes, self.iou, self.class_acc, strict=True)
            }
        return _nan_to_none(out)


def _nan_to_none(obj):
    """JSON has no NaN; absent classes are written as null."""
    if isinstance(obj, float) and np.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def _nan_mean(values: np.ndarray) -> float:
    """Mean over the classes that have a value; NaN when none has (no class present at all)."""
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")


def scores_from_confusion(hist: np.ndarray | torch.Tensor) -> SegScores:
    hist = (hist.cpu().numpy() if isinstance(hist, torch.Tensor) else np.asarray(hist)).astype(np.float64)
    diag, rows, cols, total = np.diag(hist), hist.sum(axis=1), hist.sum(axis=0), hist.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = diag / (rows + cols - diag)
        class_acc = diag / rows
        pixel_acc = diag.sum() / total
    freq = rows / total if total else rows
    present = freq > 0
    return SegScores(
        miou=_nan_mean(iou),
        pixel_acc=float(pixel_acc),
        mean_class_acc=_nan_mean(class_acc),
        fwiou=float((freq[present] * iou[present]).sum()),
        iou=iou.tolist(),
        class_acc=class_acc.tolist(),
    )


class ConfusionMeter:
    """Accumulates one confusion matrix over a whole split, batch after batch, on any device."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: str | torch.device = "cpu"):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.hist = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> None:
        self.hist += confusion_matrix(pred, target, self.num_classes, self.ignore_index).to(self.hist.device)

    def compute(self) -> SegScores:
        return scores_from_confusion(self.hist)


def resize_nearest(mask: np.ndarray, size: int = COMPETITION_SIZE) -> np.ndarray:
    """Resize a class mask the way the competition did for scoring (nearest neighbour, no new labels)."""
    if mask.shape[:2] == (size, size):
        return mask
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
