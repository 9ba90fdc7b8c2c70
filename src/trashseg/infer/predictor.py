"""Batched inference with flip and multi-scale TTA, by whole-image resize or sliding windows.

The model is any callable taking a uint8 B×H×W×3 tensor and returning logits B×C×h×w (a trained
Segmenter, or the ONNX Runtime OnnxSegmenter): normalisation lives inside it, so the same predictor drives both.
Probabilities (softmax) are averaged over every flip and scale at the image's own size, which is where the
competition and the ensembles compare them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from trashseg.config import InferConfig, hw

log = logging.getLogger(__name__)
Model = Callable[[torch.Tensor], torch.Tensor]
_AUTOCAST = {"bf16": torch.bfloat16, "16": torch.float16}


def _multiple_of_32(x: float) -> int:
    """Encoders downsample by 32; other sizes would be padded or rejected by several architectures."""
    return max(32, int(round(x / 32)) * 32)


def _starts(length: int, window: int, overlap: float) -> list[int]:
    """Window offsets along one axis: evenly strided, the last one flush with the end."""
    stride = max(1, int(window * (1 - overlap)))
    return sorted({*range(0, length - window + 1, stride), length - window})


class Predictor:
    def __init__(
        self, model: Model, image_size: int | tuple[int, int], cfg: InferConfig, *, device: torch.device | str = "cpu"
    ):
        self.model, self.size, self.cfg = model, hw(image_size), cfg
        self.device = torch.device(device)
        sizes = [self._input_size(s) for s in cfg.scales]
        if cfg.mode == "resize" and len(set(sizes)) < len(sizes):
            log.warning(
                "infer.scales %s at image size %s round to input sizes %s (multiples of 32): some scales "
                "repeat the same view",
                cfg.scales,
                "×".join(map(str, self.size)),
                ", ".join(f"{h}×{w}" for h, w in sizes),
            )

    def _input_size(self, scale: float) -> tuple[int, int]:
        """Input (height, width) for whole-image resize at `scale` of the training size."""
        return _multiple_of_32(self.size[0] * scale), _multiple_of_32(self.size[1] * scale)

    def _flips(self) -> list[tuple[int, ...]]:
        """Spatial dims to flip for each TTA view (NHWC input: H = 1, W = 2)."""
        return (
            [()]
            + ([(2,)] if self.cfg.hflip else [])
            + ([(1,)] if self.cfg.vflip else [])
            + ([(1, 2)] if self.cfg.hflip and self.cfg.vflip else [])
        )

    def _autocasts(self) -> bool:
        """bf16 autocasts on GPU and CPU (about 2x on CPUs with AVX512-BF16/AMX); fp16 only on GPU."""
        if self.cfg.precision == "bf16":
            return self.device.type in ("cuda", "cpu")
        return self.cfg.precision == "16" and self.device.type == "cuda"

    def _softmax(self, chunk: torch.Tensor) -> torch.Tensor:
        """uint8 B×H×W×3 on the device → softmax B×C×H×W float32 at the chunk's size."""
        autocast = (
            torch.autocast(self.device.type, dtype=_AUTOCAST[self.cfg.precision])
            if self._autocasts()
            else nullcontext()
        )
        with autocast:
            logits = self.model(chunk).to(self.device)  # ONNX Runtime hands back host tensors
        if logits.shape[-2:] != chunk.shape[1:3]:
            logits = F.interpolate(logits.float(), size=chunk.shape[1:3], mode="bilinear", align_corners=False)
        # NCHW before the softmax over C: on a channels_last tensor it runs 2.4x slower on CPU (copy included,
        # still ahead)
        return logits.float().contiguous().softmax(1)

    def _probs(self, batch: torch.Tensor) -> torch.Tensor:
        """Softmax averaged over flip views for a uint8 B×H×W×3 batch → B×C×H×W float32, left on the device."""
        batch = batch.to(self.device, non_blocking=True)
        flips = self._flips()
        total = self._flipped_probs(batch, flips[0])
        for dims in flips[1:]:
            total.add_(self._flipped_probs(batch, dims))
        return total.div_(len(flips)) if len(flips) > 1 else total

    def _flipped_probs(self, batch: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        """Softmax of the batch flipped along `dims` (B×H×W×3: H = 1, W = 2), flipped back to the batch's view."""
        view = batch.flip(dims) if dims else batch
        chunks = [self._softmax(chunk) for chunk in view.split(self.cfg.batch_size)]
        probs = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
        return probs.flip([d + 1 for d in dims]) if dims else probs  # NCHW now: H = 2, W = 3

    def _network_probs(self, images: list[np.ndarray], scale: float) -> torch.Tensor:
        """Flip-averaged softmax B×C×h×w of the images resized to the network's input at `scale`."""
        h, w = self._input_size(scale)
        return self._probs(
            torch.from_numpy(np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR) for im in images]))
        )

    def _resize_mode(self, images: list[np.ndarray], scale: float) -> list[torch.Tensor]:
        probs = self._network_probs(images, scale)
        shapes = {im.shape[:2] for im in images}
        if len(shapes) == 1:  # the usual case: one call for the whole batch
            return list(F.interpolate(probs, size=shapes.pop(), mode="bilinear", align_corners=False))
        return [
            F.interpolate(p[None], size=im.shape[:2], mode="bilinear", align_corners=False)[0]
            for p, im in zip(probs, images, strict=True)
        ]

    def _slide_one(self, image: np.ndarray, scale: float) -> torch.Tensor:
        """S×S (H×W) windows with the configured overlap over the image at `scale`, padded up to them where smaller."""
        h, w = (max(1, int(round(d * scale))) for d in image.shape[:2])
        scaled = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR) if (h, w) != image.shape[:2] else image
        wh, ww = self.size
        ph, pw = max(h, wh), max(w, ww)
        padded = np.zeros((ph, pw, 3), np.uint8)
        padded[:h, :w] = scaled
        ys = _starts(ph, wh, self.cfg.overlap)
        xs = _starts(pw, ww, self.cfg.overlap)
        boxes = [(y, x) for y in ys for x in xs]
        crops = torch.from_numpy(np.stack([padded[y : y + wh, x : x + ww] for y, x in boxes]))
        acc, count = None, torch.zeros(1, ph, pw, device=self.device)
        bs = self.cfg.batch_size
        for start, chunk in zip(range(0, len(boxes), bs), crops.split(bs), strict=True):
            chunk_boxes = boxes[start : start + bs]  # the same fixed-size chunks as crops.split
            probs = self._probs(chunk)
            if acc is None:
                acc = torch.zeros(probs.shape[1], ph, pw, device=self.device)
            for (y, x), p in zip(chunk_boxes, probs, strict=True):
                acc[:, y : y + wh, x : x + ww] += p
                count[:, y : y + wh, x : x + ww] += 1
        assert acc is not None  # there is always at least one window
        probs = (acc / count)[:, :h, :w]
        return F.interpolate(probs[None], size=image.shape[:2], mode="bilinear", align_corners=False)[0]

    def _summed(self, images: list[np.ndarray]) -> list[torch.Tensor]:
        """Probabilities summed over scales (still × len(scales)), C×H×W per image, left on the device."""
        total: list[torch.Tensor] | None = None
        for scale in self.cfg.scales:
            if self.cfg.mode == "slide":
                probs = [self._slide_one(im, scale) for im in images]
            else:
                probs = self._resize_mode(images, scale)
            total = probs if total is None else [t.add_(p) for t, p in zip(total, probs, strict=True)]
        assert total is not None  # infer.scales is never empty (InferConfig)
        return total

    @torch.inference_mode()
    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """uint8 H×W×3 RGB images (any sizes) → float32 C×H×W probabilities, each at its image's size.

        Scales are summed on the device and each image crosses to the host once: that copy and the host-side
        arithmetic, not the network, were what held a GPU back (8 MB of probabilities per image and scale).
        """
        n = len(self.cfg.scales)
        return [(t.div_(n) if n > 1 else t).cpu().numpy() for t in self._summed(images)]

    @torch.inference_mode()
    def predict_masks(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Class masks (uint8 H×W) only: the argmax is taken on the device, so 1 byte per pixel crosses to the
        host instead of 4 per class. The same masks as ``predict(...)[i].argmax(0)``, unless ``infer.mask_resize``
        is "labels" (see `segment`)."""
        return [found.mask for found in self.segment(images)]

    @torch.inference_mode()
    def segment(self, images: list[np.ndarray], *, probs: bool = False, scores: bool = False) -> list[Segmentation]:
        """The batch-level entry for decoded frames (uint8 H×W×3 RGB, any sizes): each image's mask at its own
        size, with its probabilities (`probs`) or each pixel's probability of its own class (`scores`, what an
        object's confidence needs) when asked.

        Without `probs`, ``infer.mask_resize: labels`` (one scale, resize mode) takes the argmax at network
        resolution and resizes the class ids and scores (nearest): on a 2-core CPU the bilinear resize of every
        class's probabilities to the image's size took a fifth as long as the PyTorch network itself. Otherwise
        the argmax is that of the probabilities at the image's size (``predict``).
        """
        if not probs and self._labels_path():
            return self._label_masks(images, scores)
        found = []
        for t in self._summed(images):
            if len(self.cfg.scales) > 1 and (probs or scores):  # the argmax needs no mean: same masks as before
                t.div_(len(self.cfg.scales))
            best, mask = t.max(0)
            found.append(
                Segmentation(
                    mask=mask.to(torch.uint8).cpu().numpy(),
                    probs=t.cpu().numpy() if probs else None,
                    scores=best.cpu().numpy() if scores else None,
                )
            )
        return found

    def _labels_path(self) -> bool:
        return self.cfg.mask_resize == "labels" and self.cfg.mode == "resize" and len(self.cfg.scales) == 1

    def _label_masks(self, images: list[np.ndarray], scores: bool) -> list[Segmentation]:
        best, labels = self._network_probs(images, self.cfg.scales[0]).max(1)
        labels_np = labels.to(torch.uint8).cpu().numpy()
        best_np = best.cpu().numpy() if scores else [None] * len(images)
        return [
            Segmentation(mask=_nearest(mask, im.shape[:2]), scores=None if s is None else _nearest(s, im.shape[:2]))
            for mask, s, im in zip(labels_np, best_np, images, strict=True)
        ]


@dataclass(frozen=True)
class Segmentation:
    """One image's prediction at its own size (``Predictor.segment``)."""

    mask: np.ndarray  # H×W uint8 class ids
    probs: np.ndarray | None = None  # C×H×W float32, when asked for
    scores: np.ndarray | None = None  # H×W float32: each pixel's probability of its own (mask) class


def _nearest(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`array` (H×W) at `size` by nearest neighbour, pixel centres aligned (as bilinear with align_corners=False;
    plain INTER_NEAREST shifts by half a pixel)."""
    if array.shape == size:
        return array
    return cv2.resize(array, (size[1], size[0]), interpolation=cv2.INTER_NEAREST_EXACT)
