"""Weighted sums of segmentation losses (smp's Dice, Focal, Lovász beside torch's cross-entropy)."""

from __future__ import annotations

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from trashseg.config import LossConfig
from trashseg.errors import TrashsegError


def class_weights_from_shares(shares: np.ndarray, mode: str) -> torch.Tensor | None:
    """Inverse or sqrt-inverse pixel frequency, normalised to mean 1 over the classes that occur.

    Classes with no pixel in the training masks get weight 0 (they cannot be learnt; a huge weight would only
    amplify noise if one appeared through augmentation).
    """
    if mode == "none":
        return None
    shares = np.asarray(shares, dtype=np.float64)
    present = shares > 0
    weights = np.zeros_like(shares)
    weights[present] = 1.0 / shares[present]
    if mode == "sqrt_inverse":
        weights = np.sqrt(weights)
    weights[present] /= weights[present].mean()
    return torch.tensor(weights, dtype=torch.float32)


def logit_adjustment_bias(weights: torch.Tensor, share: float) -> list[float]:
    """−share·log(weight) per class: weighted CE learns p(c|x)·weight_c, so adding this to the logits at inference
    takes back that share of the tilt towards rare classes (Menon et al., "Long-tail learning via logit
    adjustment", 2021). Classes with weight 0 (never in the training masks) get no bias."""
    bias = torch.zeros_like(weights)
    present = weights > 0
    bias[present] = -share * weights[present].log()
    return [round(float(b), 6) for b in bias]


class OhemCrossEntropy(nn.Module):
    """Cross-entropy averaged over the hard pixels: those whose true-class probability is below ``thresh``, and at
    least the ``min_kept`` share of labelled pixels with the highest loss.

    mmseg's OHEMPixelSampler does this inside its decode head; smp has no equivalent, hence written here. On data
    where 90% of pixels are easy background, the mean CE is mostly those pixels' small losses; this term spends the
    gradient on the objects instead, without the noise that inverse-frequency class weights add.
    """

    weight: torch.Tensor | None  # a buffer (register_buffer), declared for type checkers

    def __init__(self, ignore_index: int, thresh: float, min_kept: float, weight: torch.Tensor | None = None):
        super().__init__()
        self.ignore_index, self.min_kept = ignore_index, min_kept
        self.max_loss = -float(np.log(thresh))
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses = F.cross_entropy(
            logits, target, weight=self.weight, ignore_index=self.ignore_index, reduction="none"
        ).flatten()
        losses = losses[target.flatten() != self.ignore_index]
        if losses.numel() == 0:
            return logits.sum() * 0.0
        keep = max(1, int(self.min_kept * losses.numel()))
        hard = losses[losses > self.max_loss]
        return hard.mean() if hard.numel() >= keep else losses.topk(keep).values.mean()


class SegmentationLoss(nn.Module):
    """``ce·CE + dice·Dice + focal·Focal + lovasz·Lovász + ohem·OHEM-CE``; every term honours ignore_index.

    ``loss.weighting: margin`` gives every term the logits − log(class weight) instead of weighting pixels: a rare
    class must win by a larger margin in training, and every pixel's gradient keeps the same scale (Menon et al.,
    "Long-tail learning via logit adjustment", 2021: the loss form, where pixel weights over-fit the few rare pixels).
    """

    margin: torch.Tensor | None

    def __init__(self, cfg: LossConfig, ignore_index: int, class_weights: torch.Tensor | None = None):
        super().__init__()
        margin = None
        if cfg.weighting == "margin" and class_weights is not None:
            margin = torch.tensor(logit_adjustment_bias(class_weights, 1.0)).view(1, -1, 1, 1)
            class_weights = None
        self.register_buffer("margin", margin, persistent=False)
        weights = None if class_weights is None else class_weights.tolist()
        factories = {
            "ce": lambda: nn.CrossEntropyLoss(weight=class_weights, ignore_index=ignore_index),
            "dice": lambda: smp.losses.DiceLoss("multiclass", ignore_index=ignore_index, class_weights=weights),
            "focal": lambda: smp.losses.FocalLoss("multiclass", ignore_index=ignore_index, class_weights=weights),
            "lovasz": lambda: smp.losses.LovaszLoss("multiclass", ignore_index=ignore_index),
            "ohem": lambda: OhemCrossEntropy(ignore_index, cfg.ohem_thresh, cfg.ohem_min_kept, class_weights),
        }
        self.weights = {name: getattr(cfg, name) for name in factories if getattr(cfg, name) > 0}
        if not self.weights:
            raise TrashsegError(
                f"loss: every term has weight 0; set at least one of "
                f"{', '.join('loss.' + name for name in factories)} > 0"
            )
        self.terms = nn.ModuleDict({name: factories[name]() for name in self.weights})

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Every term in float32: under bf16/fp16 autocast the logits arrive in half precision, which smp's Lovász
        rejects (its dot product mixes dtypes) and which loses the small per-pixel terms of rare classes."""
        logits, target = logits.float(), target.long()
        if self.margin is not None:
            logits = logits + self.margin
        return sum(w * self.terms[name](logits, target) for name, w in self.weights.items())
