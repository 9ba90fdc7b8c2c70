"""``trashseg predict``: stream a split through a model into a prediction folder, resumably."""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader, Dataset

from trashseg.config import CRFConfig, InferConfig
from trashseg.data.coco import CocoSplit
from trashseg.errors import TrashsegError
from trashseg.infer.folder import PredictionFolder
from trashseg.infer.predictor import Predictor
from trashseg.infer.sources import Source
from trashseg.postprocess.crf import dense_crf_many
from trashseg.procs import die_with_parent


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
    names, images = zip(*batch)
    return names, images


def progress_bar(console: Console) -> Progress:
    """Shared look for long loops: count, img/s and ETA."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]} img/s"), TimeRemainingColumn(), console=console)


def check_classes(source: Source, split: CocoSplit) -> None:
    if source.classes != split.classes:
        raise TrashsegError(f"the model predicts classes {source.classes} but the dataset config has "
                            f"{split.classes}; give the matching class list (-c / --set data.classes=...)")


def predict_split(source: Source, split: CocoSplit, out: Path, cfg: InferConfig, save_probs: bool = False,
                  crf: CRFConfig | None = None, device: str | torch.device = "cpu", workers: int = 2,
                  console: Console | None = None, skip_unreadable: bool = False) -> dict:
    """Predict every image of `split` not already in `out`; returns counts and throughput.

    An image that cannot be decoded stops the run, or with `skip_unreadable` (raw photos) is left out and named
    in the result's ``unreadable`` ({file_name: reason}) while every other image is predicted."""
    console = console or Console()
    check_classes(source, split)
    folder = PredictionFolder(out)
    meta = folder.init({"classes": source.classes, **source.info, "split": str(split.path.resolve()),
                        "data_root": str(split.root.resolve()),
                        "tta": {"hflip": cfg.hflip, "vflip": cfg.vflip, "scales": cfg.scales, "mode": cfg.mode},
                        "crf": crf.model_dump() if crf else None, "image_size": source.image_size,
                        "has_probs": save_probs})
    save_probs = meta["has_probs"]  # a resumed folder with probabilities keeps writing them
    todo = [img for img in split.images if not folder.done(img["file_name"], save_probs)]
    predictor = Predictor(source.model, source.image_size, cfg, device)
    loader = DataLoader(_Images(split, todo), batch_size=cfg.batch_size, num_workers=workers,
                        collate_fn=_collate, worker_init_fn=partial(die_with_parent, os.getpid()))
    start, done, unreadable = time.perf_counter(), 0, {}
    with progress_bar(console) as bar:
        task = bar.add_task(f"predict → {out}", total=len(todo), rate="-")
        for batch_names, batch_images in loader:
            bar.update(task, advance=len(batch_names))
            failed = {n: image for n, image in zip(batch_names, batch_images) if isinstance(image, TrashsegError)}
            if failed and not skip_unreadable:
                raise next(iter(failed.values()))
            unreadable.update({n: str(e) for n, e in failed.items()})
            names = [n for n in batch_names if n not in failed]
            images = [image for n, image in zip(batch_names, batch_images) if n not in failed]
            if not names:
                continue
            if save_probs or crf is not None:
                probs = predictor.predict(images)
                if crf is not None:
                    probs = list(dense_crf_many(zip(images, probs), crf))
                masks = [p.argmax(0).astype(np.uint8) for p in probs]
            else:  # masks only: the argmax happens where the probabilities are (the GPU's memory, say)
                probs, masks = [None] * len(names), predictor.predict_masks(images)
            for name, mask, p in zip(names, masks, probs):
                folder.write(name, mask, p if save_probs else None)
            done += len(names)
            bar.update(task, rate=f"{done / (time.perf_counter() - start):.1f}")
    elapsed = time.perf_counter() - start
    return {"predicted": done, "skipped": len(split.images) - len(todo), "seconds": elapsed,
            "img_per_s": done / elapsed if elapsed and done else None,
            **({"unreadable": unreadable} if skip_unreadable else {})}
