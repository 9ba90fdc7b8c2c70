"""Batched inference with flip and multi-scale TTA, by whole-image resize or sliding windows.

The model is any callable taking a uint8 B×H×W×3 tensor and returning logits B×C×h×w (a trained
SegmentationModule, or the ONNX Runtime wrapper): normalisation lives inside it, so the same predictor drives both.
Probabilities (softmax) are averaged over every flip and scale at the image's own size, which is where the
competition and the ensembles compare them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from trashseg.config import InferConfig

log = logging.getLogger(__name__)
Model = Callable[[torch.Tensor], torch.Tensor]
_AUTOCAST = {"bf16": torch.bfloat16, "16": torch.float16}


def _multiple_of_32(x: float) -> int:
    """Encoders downsample by 32; other sizes would be padded or rejected by several architectures."""
    return max(32, int(round(x / 32)) * 32)


class Predictor:
    def __init__(self, model: Model, image_size: int, cfg: InferConfig, device: torch.device | str = "cpu"):
        self.model, self.size, self.cfg = model, image_size, cfg
        self.device = torch.device(device)
        sides = [self._side(s) for s in cfg.scales]
        if cfg.mode == "resize" and len(set(sides)) < len(sides):
            log.warning("infer.scales %s at image size %d round to input sides %s (multiples of 32): some scales "
                        "repeat the same view", cfg.scales, image_size, sides)

    def _side(self, scale: float) -> int:
        """Input side for whole-image resize at `scale` of the training size."""
        return _multiple_of_32(self.size * scale)

    def _flips(self) -> list[tuple[int, ...]]:
        """Spatial dims to flip for each TTA view (NHWC input: H = 1, W = 2)."""
        return [()] + ([(2,)] if self.cfg.hflip else []) + ([(1,)] if self.cfg.vflip else []) + \
            ([(1, 2)] if self.cfg.hflip and self.cfg.vflip else [])

    def _autocasts(self) -> bool:
        """bf16 autocasts on GPU and CPU (about 2x on CPUs with AVX512-BF16/AMX); fp16 only on GPU."""
        if self.cfg.precision == "bf16":
            return self.device.type in ("cuda", "cpu")
        return self.cfg.precision == "16" and self.device.type == "cuda"

    @torch.inference_mode()
    def _probs(self, batch: torch.Tensor) -> torch.Tensor:
        """Softmax averaged over flip views for a uint8 B×H×W×3 batch → B×C×H×W float32."""
        flips = self._flips()
        views = torch.cat([batch.flip(dims) if dims else batch for dims in flips])
        autocast = torch.autocast(self.device.type, dtype=_AUTOCAST[self.cfg.precision]) \
            if self._autocasts() else nullcontext()
        out = []
        for chunk in views.split(self.cfg.batch_size * len(flips)):
            with autocast:
                logits = self.model(chunk.to(self.device, non_blocking=True))
            if logits.shape[-2:] != chunk.shape[1:3]:
                logits = F.interpolate(logits.float(), size=chunk.shape[1:3], mode="bilinear", align_corners=False)
            out.append(logits.float().softmax(1))
        probs = torch.cat(out).view(len(flips), len(batch), -1, *batch.shape[1:3])
        # undo each flip (NCHW now: H = 2, W = 3)
        unflipped = [p.flip([d + 1 for d in dims]) if dims else p for p, dims in zip(probs, flips)]
        return torch.stack(unflipped).mean(0)

    def _resize_mode(self, images: list[np.ndarray], scale: float) -> list[torch.Tensor]:
        side = self._side(scale)
        batch = torch.from_numpy(np.stack([cv2.resize(im, (side, side), interpolation=cv2.INTER_LINEAR)
                                           for im in images]))
        probs = self._probs(batch)
        return [F.interpolate(p[None], size=im.shape[:2], mode="bilinear", align_corners=False)[0]
                for p, im in zip(probs, images)]

    def _slide_one(self, image: np.ndarray, scale: float) -> torch.Tensor:
        """S×S windows with the configured overlap over the image at `scale`, padded up to S where smaller."""
        h, w = (max(1, int(round(d * scale))) for d in image.shape[:2])
        scaled = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR) if (h, w) != image.shape[:2] else image
        win = self.size
        ph, pw = max(h, win), max(w, win)
        padded = np.zeros((ph, pw, 3), np.uint8)
        padded[:h, :w] = scaled
        stride = max(1, int(win * (1 - self.cfg.overlap)))
        ys = sorted({*range(0, ph - win + 1, stride), ph - win})
        xs = sorted({*range(0, pw - win + 1, stride), pw - win})
        boxes = [(y, x) for y in ys for x in xs]
        crops = torch.from_numpy(np.stack([padded[y:y + win, x:x + win] for y, x in boxes]))
        acc, count = None, torch.zeros(1, ph, pw)
        for chunk_boxes, chunk in zip(np.array_split(boxes, max(1, -(-len(boxes) // self.cfg.batch_size))),
                                      crops.split(self.cfg.batch_size)):
            probs = self._probs(chunk).cpu()
            if acc is None:
                acc = torch.zeros(probs.shape[1], ph, pw)
            for (y, x), p in zip(chunk_boxes, probs):
                acc[:, y:y + win, x:x + win] += p
                count[:, y:y + win, x:x + win] += 1
        probs = (acc / count)[:, :h, :w]
        return F.interpolate(probs[None], size=image.shape[:2], mode="bilinear", align_corners=False)[0]

    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """uint8 H×W×3 RGB images (any sizes) → float32 C×H×W probabilities, each at its image's size."""
        total: list[torch.Tensor] | None = None
        for scale in self.cfg.scales:
            if self.cfg.mode == "slide":
                probs = [self._slide_one(im, scale) for im in images]
            else:
                probs = self._resize_mode(images, scale)
            probs = [p.cpu() for p in probs]
            total = probs if total is None else [t + p for t, p in zip(total, probs)]
        return [(t / len(self.cfg.scales)).numpy() for t in total]
