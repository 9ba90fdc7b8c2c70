"""``trashseg predict``: stream a split through a model into a prediction folder, resumably."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from trashseg.config import InferConfig
from trashseg.data.coco import CocoSplit
from trashseg.errors import TrashsegError
from trashseg.infer.folder import PredictionFolder
from trashseg.infer.objects import find_objects
from trashseg.infer.predictor import Predictor, Segmentation
from trashseg.models.segmenter import InferenceModel
from trashseg.procs import die_with_parent
from trashseg.progress import for_each_pending

WRITERS = 4  # threads writing masks (and probabilities, objects) while the network computes the next batch


class _Images(Dataset):
    """Decoding in DataLoader workers keeps the device busy while the next batch is read."""

    def __init__(self, split: CocoSplit, images: list[dict]):
        self.split, self.images = split, images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray | TrashsegError]:
        """An image that cannot be used comes back as its error: raised in a worker, torch would wrap the message
        in a traceback; ``predict_split`` raises it as it is."""
        info = self.images[i]
        try:
            return info["file_name"], self.split.load_image(info)
        except TrashsegError as exc:
            return info["file_name"], exc


def _collate(batch: list[tuple[str, np.ndarray | TrashsegError]]) -> tuple[tuple[str, ...], tuple]:
    """Images keep their own sizes: a batch is (names, images), resized together by the predictor."""
    names, images = zip(*batch, strict=True)
    return names, images


class Refiner(Protocol):
    """Refines probabilities with their image (``postprocess.crf.DenseCRF`` for ``predict --crf``). Passed in by
    the caller, so that inference does not import a later stage."""

    @property
    def settings(self) -> dict[str, Any]: ...  # recorded in meta.json as "crf"

    def __call__(self, pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[np.ndarray]: ...


def check_classes(model: InferenceModel, split: CocoSplit) -> None:
    if model.classes != split.classes:
        raise TrashsegError(
            f"the model predicts classes {model.classes} but the dataset config has "
            f"{split.classes}; give the matching class list (-c / --set data.classes=...)"
        )


def predict_split(
    model: InferenceModel,
    split: CocoSplit,
    out: Path,
    *,
    cfg: InferConfig,
    save_probs: bool = False,
    refine: Refiner | None = None,
    objects: bool = False,
    min_area: int = 0,
    device: str | torch.device = "cpu",
    workers: int = 2,
    skip_unreadable: bool = False,
) -> dict:
    """Predict every image of `split` not already in `out`; returns counts and throughput.

    `objects`: also write each image's connected regions of at least `min_area` pixels (``infer.objects``) to
    ``objects/<file_name>.json``; their settings are part of the job, like the TTA, so a resume keeps them.
    An image that cannot be decoded stops the run, or with `skip_unreadable` (raw photos) is left out and named
    in the result's ``unreadable`` ({file_name: reason}) while every other image is predicted.
    """
    check_classes(model, split)
    folder = PredictionFolder(out)
    meta = folder.init(
        {
            "classes": model.classes,
            **model.info,
            "split": str(split.path.resolve()),
            "data_root": str(split.root.resolve()),
            "tta": {
                "hflip": cfg.hflip,
                "vflip": cfg.vflip,
                "scales": cfg.scales,
                "mode": cfg.mode,
                # masks resized as class ids are a different job; stated only then, so older folders still resume
                **({"mask_resize": "labels"} if cfg.mask_resize == "labels" else {}),
            },
            "crf": refine.settings if refine else None,
            "image_size": model.image_size,
            "objects": {"min_area": min_area, "connectivity": 8} if objects else None,
            "has_probs": save_probs,
        }
    )
    save_probs = meta.has_probs  # a resumed folder with probabilities keeps writing them
    predictor = Predictor(model, model.image_size, cfg, device=device)
    unreadable: dict[str, str] = {}

    def compute(todo: list[dict]) -> Iterator[Segmentation | TrashsegError]:
        loader = DataLoader(
            _Images(split, todo),
            batch_size=cfg.batch_size,
            num_workers=workers,
            collate_fn=_collate,
            worker_init_fn=partial(die_with_parent, os.getpid()),
        )
        for _, batch in loader:
            failed = [image for image in batch if isinstance(image, TrashsegError)]
            if failed and not skip_unreadable:
                raise failed[0]
            images = [image for image in batch if not isinstance(image, TrashsegError)]
            results = iter(predict_batch(images) if images else [])
            yield from (image if isinstance(image, TrashsegError) else next(results) for image in batch)

    def predict_batch(images: list[np.ndarray]) -> list[Segmentation]:
        if refine is None:  # objects' confidences need only each pixel's own class's probability
            return predictor.segment(images, probs=save_probs, scores=objects)
        refined = refine(zip(images, predictor.predict(images), strict=True))
        return [Segmentation(mask=p.argmax(0).astype(np.uint8), probs=p) for p in refined]

    def write(image: dict, result: Segmentation | TrashsegError) -> None:
        """Runs in the writer threads: PNG encoding, objects and fsync overlap the network."""
        if isinstance(result, TrashsegError):  # only with skip_unreadable: compute raises it otherwise
            unreadable[image["file_name"]] = str(result)
            return
        found = None
        if objects:
            found = [
                o.to_dict()
                for o in find_objects(result.mask, model.classes, result.probs, min_area=min_area, scores=result.scores)
            ]
        folder.write(image["file_name"], result.mask, result.probs if save_probs else None, found)

    stats = for_each_pending(
        split.images,
        label=f"predict → {out}",
        compute=compute,
        write=write,
        finished=lambda image: folder.done(image["file_name"], save_probs, objects),
        writers=WRITERS,
    )
    predicted = stats.done - len(unreadable)
    return {
        "predicted": predicted,
        "skipped": stats.skipped,
        "seconds": stats.seconds,
        "img_per_s": predicted / stats.seconds if predicted and stats.seconds else None,
        **({"unreadable": unreadable} if skip_unreadable else {}),
    }
