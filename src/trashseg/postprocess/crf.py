"""Fully-connected CRF on softmax probabilities (pydensecrf2, the maintained build for numpy 2; Python 3.11 and
3.12, it does not build on 3.13).

The seed team ran it on probabilities upscaled to the image's size; ``upscale`` > 1 goes further and refines at a
finer grid before coming back to the image size, which sharpens thin objects at a quadratic cost.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from trashseg.config import CRFConfig
from trashseg.errors import MissingExtra, require_extra
from trashseg.procs import die_with_parent


def _resize_probs(probs: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.stack([cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) for p in probs])


def require_crf() -> ModuleType:
    """pydensecrf's solver; callers check it first so that a missing `crf` extra fails before any work, not in a
    worker halfway through."""
    try:
        return require_extra("pydensecrf.densecrf", "crf", "Dense CRF")
    except MissingExtra:
        if sys.version_info < (3, 13):
            raise
        raise MissingExtra(
            "Dense CRF needs pydensecrf2, which does not build on Python 3.13 (its C++ sources are "
            "generated for older Pythons), so the `crf` extra installs nothing here: use Python 3.11 "
            "or 3.12 for CRF"
        ) from None


def dense_crf(image: np.ndarray, probs: np.ndarray, cfg: CRFConfig) -> np.ndarray:
    """uint8 H×W×3 image + float C×H×W probabilities → refined float32 C×H×W probabilities."""
    dcrf = require_crf()
    from pydensecrf.utils import unary_from_softmax

    c, h, w = probs.shape
    if cfg.upscale > 1:
        uh, uw = int(round(h * cfg.upscale)), int(round(w * cfg.upscale))
        image = cv2.resize(image, (uw, uh), interpolation=cv2.INTER_LINEAR)
        probs = _resize_probs(probs.astype(np.float32), uh, uw)
    ph, pw = probs.shape[1:]
    probs = np.clip(probs.astype(np.float32), 1e-8, 1.0)
    crf = dcrf.DenseCRF2D(pw, ph, c)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs / probs.sum(0, keepdims=True))))
    crf.addPairwiseGaussian(sxy=cfg.gaussian_sxy, compat=cfg.gaussian_compat)
    crf.addPairwiseBilateral(
        sxy=cfg.bilateral_sxy,
        srgb=cfg.bilateral_srgb,
        rgbim=np.ascontiguousarray(image, dtype=np.uint8),
        compat=cfg.bilateral_compat,
    )
    refined = np.asarray(crf.inference(cfg.iterations), dtype=np.float32).reshape(c, ph, pw)
    return _resize_probs(refined, h, w) if (ph, pw) != (h, w) else refined


def _crf_job(job: tuple[np.ndarray, np.ndarray, CRFConfig]) -> np.ndarray:
    return dense_crf(*job)


def dense_crf_many(pairs: Iterable[tuple[np.ndarray, np.ndarray]], cfg: CRFConfig) -> Iterator[np.ndarray]:
    """Refine (image, probs) pairs in `cfg.workers` processes, results in input order.

    At most two jobs per worker are in flight: ``Executor.map`` would read the whole input first, i.e. every image
    and probability map of the split into memory at once.
    """
    jobs = ((image, probs, cfg) for image, probs in pairs)
    if cfg.workers <= 1:
        yield from map(_crf_job, jobs)
        return
    with ProcessPoolExecutor(cfg.workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        pending: deque[Future[np.ndarray]] = deque()
        for job in jobs:
            pending.append(pool.submit(_crf_job, job))
            if len(pending) >= 2 * cfg.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


@dataclass(frozen=True)
class DenseCRF:
    """The CRF as a refiner for ``infer.predict.predict_split`` (``predict --crf``)."""

    cfg: CRFConfig

    @property
    def settings(self) -> dict[str, Any]:
        return self.cfg.model_dump()

    def __call__(self, pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[np.ndarray]:
        return dense_crf_many(pairs, self.cfg)
