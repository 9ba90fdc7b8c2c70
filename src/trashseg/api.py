"""The Python API: a trained model on photos in three lines, for notebooks and scripts.

    import trashseg
    model = trashseg.load("runs/unet_r18")           # a run folder, a .ckpt or an exported .onnx
    result = model.predict("photo.jpg", tta="flip")  # a path, a PIL image or an H×W×3 uint8 array; a list → a list

A façade over the stages the CLI runs: ``models.engines.load_engine`` opens the model (on the engine
``infer.engine`` picks), the ``infer`` Predictor does the TTA (the same probabilities as ``trashseg predict``),
``infer.objects`` finds the objects and ``analysis.overlays`` colours the overlay. Photos are taken as a camera
means them: EXIF orientation is applied (unlike the COCO datasets, whose annotations describe the stored pixels),
so the mask lines up with the photo as it is displayed.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from trashseg.config import MAX_PIXELS, TTA_FLIPS, InferConfig, tta_word
from trashseg.data.images import ImageError, check_pixels
from trashseg.errors import TrashsegError
from trashseg.infer.objects import SegmentObject, find_objects
from trashseg.infer.predictor import Predictor
from trashseg.models.engines import load_engine
from trashseg.models.segmenter import InferenceModel

Photo = str | os.PathLike | Image.Image | np.ndarray


@dataclass(frozen=True)
class Result:
    """One photo's prediction, at the photo's own size (after its EXIF orientation)."""

    image: np.ndarray  # H×W×3 uint8 RGB: the photo as predicted
    mask: np.ndarray  # H×W uint8 class ids (index into `classes`; 0 is the background)
    classes: list[str]
    objects: list[SegmentObject]  # connected regions of each non-background class, largest first
    probs: np.ndarray | None = None  # C×H×W float32 class probabilities, when asked for (probs=True)

    @property
    def shares(self) -> dict[str, float]:
        """Class name → share of the photo's pixels, every class (they sum to 1)."""
        counts = np.bincount(self.mask.ravel(), minlength=len(self.classes))
        return {name: float(n) / self.mask.size for name, n in zip(self.classes, counts, strict=True)}

    def overlay(self, alpha: float = 0.5) -> Image.Image:
        """The photo with each predicted class tinted in its colour (the colours of ``trashseg overlay``)."""
        from trashseg.draw import blend, class_colors

        return Image.fromarray(blend(self.image, self.mask, class_colors(len(self.classes)), alpha))


class Model:
    """A trained model (``Segmenter`` or ONNX) with the test-time settings it predicts with by default: the run's
    own infer section, where `infer` does not state a field."""

    def __init__(
        self,
        network: InferenceModel,
        *,
        device: torch.device | str = "cpu",
        infer: InferConfig | None = None,
        max_pixels: int = MAX_PIXELS,
    ):
        self.network, self.device = network, torch.device(device)
        self.infer = (infer or InferConfig()).over(network.infer)  # what is stated wins over the run's own
        self.max_pixels = max_pixels

    @property
    def classes(self) -> list[str]:
        return self.network.classes

    @property
    def info(self) -> dict[str, Any]:
        """Where the model came from (source file, runtime, validation mIoU when known)."""
        return self.network.info

    def predict(
        self,
        photos: Photo | list[Photo] | tuple[Photo, ...],
        *,
        tta: str | None = None,
        scales: Sequence[float] | None = None,
        probs: bool = False,
        min_area: int = 0,
    ) -> Result | list[Result]:
        """Segment one photo, or a list of them (→ a list of results, predicted `infer.batch_size` at a time).

        `tta`: "none", "hflip", "vflip" or "hvflip" (both): the words of ``config.TTA_FLIPS``, which the web service
        and ``predict --tta`` read the same way; `scales`: multiples of the training size, averaged
        (e.g. ``(0.75, 1.0, 1.25)``); either left out keeps the model's ``infer`` settings. `probs` keeps the class
        probabilities on the result; `min_area` (pixels) leaves smaller objects out of ``result.objects``.
        """
        if isinstance(photos, (list, tuple)):
            names = [f"image {i}" for i in range(len(photos))]
            return self._predict_many(list(photos), names, self._settings(tta, scales), probs, min_area)
        return self._predict_many([photos], ["image"], self._settings(tta, scales), probs, min_area)[0]

    def _settings(self, tta: str | None, scales: Sequence[float] | None) -> InferConfig:
        changes: dict[str, Any] = {}
        if tta is not None:
            if tta == "flip":
                warnings.warn(
                    "tta='flip' is the horizontal flip, as in the web service and mmseg (before trashseg 0.2 the "
                    "API read it as both flips: say 'hvflip' for that, 'hflip' to silence this)",
                    FutureWarning,
                    stacklevel=3,
                )
            try:
                changes["hflip"], changes["vflip"] = TTA_FLIPS[tta_word(tta)]
            except ValueError as exc:
                raise TrashsegError(str(exc)) from None
        if scales is not None:
            changes["scales"] = list(scales)
        return InferConfig.model_validate({**self.infer.model_dump(), **changes}) if changes else self.infer

    def _predict_many(
        self, photos: list[Photo], names: list[str], cfg: InferConfig, keep_probs: bool, min_area: int
    ) -> list[Result]:
        predictor = Predictor(self.network, self.network.image_size, cfg, device=self.device)

        def decode(batch: slice) -> list[np.ndarray]:
            return [
                photo_array(photo, name, self.max_pixels)
                for photo, name in zip(photos[batch], names[batch], strict=True)
            ]

        batches = [slice(start, start + cfg.batch_size) for start in range(0, len(photos), cfg.batch_size)]
        results: list[Result] = []
        if not batches:
            return results
        # a batch at a time, so a long list fits memory; the next one decodes in a thread (Pillow releases the GIL)
        # while the network runs on this one
        with ThreadPoolExecutor(1, thread_name_prefix="decode") as pool:
            ahead = pool.submit(decode, batches[0])
            for following in [*batches[1:], None]:
                images = ahead.result()
                if following is not None:
                    ahead = pool.submit(decode, following)
                for image, found in zip(images, predictor.segment(images, probs=keep_probs, scores=True), strict=True):
                    results.append(
                        Result(
                            image=image,
                            mask=found.mask,
                            classes=self.classes,
                            probs=found.probs,
                            objects=find_objects(found.mask, self.classes, min_area=min_area, scores=found.scores),
                        )
                    )
        return results


def load(path: str | os.PathLike, *, device: str | None = None, infer: InferConfig | None = None) -> Model:
    """A run folder (its best checkpoint), a ``.ckpt`` or an exported ``.onnx``, ready to predict on `device`
    (default: CUDA when present). Raises ``ModelNotFoundError`` when there is no model at `path`."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return Model(load_engine(path, device, infer), device=device, infer=infer)


def photo_array(photo: Photo, name: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """H×W×3 uint8 RGB from a path, a PIL image or an array (H×W gray, H×W×3 RGB or H×W×4 RGBA, uint8), EXIF
    orientation applied; ``ImageError`` naming the file (or `name`) when it cannot be used."""
    if isinstance(photo, np.ndarray):
        return _checked_array(photo, name)
    if isinstance(photo, Image.Image):
        return np.array(ImageOps.exif_transpose(photo).convert("RGB"))  # a writable copy
    if not isinstance(photo, (str, os.PathLike)):
        raise ImageError.named(name, f"expected a path, a PIL image or a numpy array, got {type(photo).__name__}")
    path = Path(photo)
    check_pixels(path, str(path), max_pixels)  # the header's size first: nothing huge is decoded
    try:
        with Image.open(path) as image:
            return np.array(ImageOps.exif_transpose(image).convert("RGB"))
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data after a valid header
        raise ImageError.named(str(path), f"cannot be decoded ({exc})") from None


def _checked_array(array: np.ndarray, name: str) -> np.ndarray:
    shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))
    if array.dtype != np.uint8 or array.size == 0 or not shape_ok:
        raise ImageError.named(
            name, f"expected an H×W×3 uint8 RGB array, got shape {array.shape} and dtype {array.dtype}"
        )
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])
