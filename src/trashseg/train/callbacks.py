"""Callbacks that make a run folder trustworthy: atomic checkpoints, exact resume, readable validation."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from rich import get_console
from rich.markup import escape
from rich.table import Table

from trashseg.draw import overlay_panel, plot_confusion
from trashseg.fileio import atomic_write_json, atomic_write_text, atomic_write_with

if TYPE_CHECKING:
    from trashseg.train.module import SegmentationModule


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning writes checkpoints in place; a crash mid-write would leave a torn last.ckpt. Write, then rename."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        atomic_write_with(
            path, lambda tmp: super(AtomicCheckpointIO, self).save_checkpoint(checkpoint, tmp, storage_options)
        )


class RNGState(pl.Callback):
    """Lightning does not checkpoint RNG state; without it a resumed run draws different dropout masks."""

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
        return {
            "python": random.getstate(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        random.setstate(state["python"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(state["torch"])
        if state.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class SamplerEpoch(pl.Callback):
    """Restores the training sampler's epoch with the checkpoint, before Lightning builds the loader's iterator.

    On resume Lightning creates that iterator before it calls ``set_epoch``, and DataLoader workers draw their first
    batches right then: without this, a resumed epoch would start with batches in epoch 0's order.
    """

    def __init__(self, sampler: Any):
        self.sampler = sampler  # anything with set_epoch (trashseg.train.sampling.EpochSampler)
        self.trainer: pl.Trainer | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        """The epoch Lightning will pass to set_epoch when it resumes from this checkpoint."""
        # Lightning types `current` as the base tracker; the epoch loop's is a _ProcessedTracker
        return {
            "epoch": self.trainer.fit_loop.epoch_progress.current.processed  # type: ignore[attr-defined]
            if self.trainer
            else 0
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.set_epoch(state["epoch"])


class FreezeEncoder(pl.Callback):
    """The first ``train.freeze_encoder_epochs`` epochs train only the new decoder on the pretrained encoder, so
    the decoder's first random gradients do not wreck the pretrained features. Decided from the epoch number
    alone, so a resumed run freezes exactly as an uninterrupted one."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        cast("SegmentationModule", pl_module).set_encoder_frozen(trainer.current_epoch < self.epochs)


class Throughput(pl.Callback):
    """Images per second on the progress bar (Lightning's bar already shows the ETA)."""

    def __init__(self) -> None:
        self._start = 0.0
        self._images = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._images = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += len(batch["image"]) * trainer.world_size
        pl_module.log(
            "img_s",
            self._images / max(1e-9, time.perf_counter() - self._start),
            prog_bar=True,
            on_step=True,
            on_epoch=False,
            rank_zero_only=True,
        )


class ValidationReport(pl.Callback):
    """After each validation: per-class IoU table, confusion-matrix image, and metrics.json for the best epoch."""

    def __init__(self, run_dir: Path, classes: list[str]):
        self.run_dir = Path(run_dir)
        self.classes = classes
        self.best = -1.0

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        module = cast("SegmentationModule", pl_module)
        scores = module.last_scores
        if trainer.sanity_checking or scores is None or not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch
        hist = module.val_meter.hist.cpu().numpy()
        plot_confusion(
            hist,
            self.classes,
            self.run_dir / "plots" / "confusion_last.png",
            f"epoch {epoch}: val mIoU {scores.miou:.4f}",
        )
        table = Table(title=f"epoch {epoch} validation: mIoU {scores.miou:.4f}")
        table.add_column("class")
        table.add_column("IoU", justify="right")
        for name, iou in zip(self.classes, scores.iou, strict=True):
            table.add_row(escape(name), "—" if iou != iou else f"{iou:.4f}")  # a name is text, not markup
        get_console().print(table)  # rich's console, beside Lightning's progress bar
        # pixels: the labelled pixels the score counts, every rank's (the whole split, however many processes)
        record = {
            "epoch": epoch,
            "step": trainer.global_step,
            "pixels": int(hist.sum()),
            **scores.to_dict(self.classes),
        }
        self._append_history(record)
        if scores.miou == scores.miou and scores.miou > self.best:
            self.best = scores.miou
            atomic_write_json(self.run_dir / "metrics.json", {"best": record})
            plot_confusion(
                hist,
                self.classes,
                self.run_dir / "plots" / "confusion_best.png",
                f"best: epoch {epoch}, val mIoU {scores.miou:.4f}",
            )

    def _append_history(self, record: dict) -> None:
        """Rewrite history.jsonl atomically, dropping lines from this epoch on: a run that crashed after a
        validation but before its checkpoint repeats that epoch on resume, and must not leave it twice."""
        path = self.run_dir / "history.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        kept = [line for line in lines if line.strip() and json.loads(line)["epoch"] < record["epoch"]]
        atomic_write_text(path, "".join(line + "\n" for line in [*kept, json.dumps(record)]))

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]


class PredictionImages(pl.Callback):
    """A few validation images with prediction and ground truth drawn, logged at every validation to TensorBoard
    (and W&B when enabled), so that what the model learns can be seen beside the curves. Does nothing without one
    of those loggers; costs one forward pass over `count` images per validation."""

    def __init__(self, classes: list[str], count: int = 4, tag: str = "val/predictions"):
        self.classes, self.count, self.tag = classes, count, tag

    def _loggers(self, trainer: pl.Trainer) -> list:
        from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

        return [lg for lg in trainer.loggers if isinstance(lg, (TensorBoardLogger, WandbLogger))]

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: dict,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        loggers = self._loggers(trainer)
        if not loggers:
            return
        images = batch["image"][: self.count]
        with torch.no_grad():
            preds = pl_module(images).argmax(1).cpu().numpy().astype(np.uint8)
        truths = batch["mask"][: self.count].cpu().numpy() if "mask" in batch else [None] * len(preds)
        grid = np.vstack(
            [
                overlay_panel(img, pred, self.classes, truth)
                for img, pred, truth in zip(images.cpu().numpy(), preds, truths, strict=True)
            ]
        )
        for logger in loggers:
            if hasattr(logger.experiment, "add_image"):  # TensorBoard
                logger.experiment.add_image(self.tag, grid, trainer.global_step, dataformats="HWC")
            else:
                logger.log_image(key=self.tag, images=[grid], step=trainer.global_step)
