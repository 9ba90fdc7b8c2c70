"""``trashseg train``: build datasets, module and Lightning Trainer from a config; manage the run folder.

Run folder: ``config.yaml`` (resolved), ``checkpoints/best.ckpt`` (by val mIoU) and ``last.ckpt``,
``metrics.json`` (best epoch: mIoU and per-class IoU), ``history.jsonl``, ``plots/``, ``logs/`` (CSV, TensorBoard).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.utilities.seed import pl_worker_init_function
from lightning.pytorch.callbacks import EarlyStopping, EMAWeightAveraging, ModelCheckpoint
from torch.utils.data import DataLoader

from trashseg.augment import CopyPasteDataset, build_transform
from trashseg.config import Config, dump_config, load_config
from trashseg.data.cache import ImageCache, cache_folder, image_cache
from trashseg.data.coco import CocoSplit, load_named_split
from trashseg.data.dataset import SeededConcat, SegmentationDataset
from trashseg.data.extra import PngMasks, load_extra
from trashseg.data.masks import mask_cache
from trashseg.data.stats import balanced_image_weights, class_stats
from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_write_text, make_folder, remove_stale_temps
from trashseg.models.pretrained import fill_legacy_normalization, resolve_normalization
from trashseg.models.segmenter import MODEL_CARD, Segmenter
from trashseg.models.weights import load_torch_file
from trashseg.procs import die_with_parent
from trashseg.train.callbacks import (
    AtomicCheckpointIO,
    FreezeEncoder,
    PredictionImages,
    RNGState,
    SamplerEpoch,
    Throughput,
    ValidationReport,
)
from trashseg.train.losses import class_weights_from_shares, logit_adjustment_bias
from trashseg.train.module import NonFiniteLossError, SegmentationModule
from trashseg.train.sampling import EpochSampler, ShardSampler

log = logging.getLogger(__name__)

# What a user who trusts a last.ckpt holding other objects than tensors and plain values can still do with it.
RESAVE_RESUME = (
    "start a new run from its weights: torch.save(torch.load(path, weights_only=False)['state_dict'], "
    "'weights.pth'), then train with --set model.weights=weights.pth and another --out"
)


@dataclass
class TrainData:
    train: SegmentationDataset | CopyPasteDataset | SeededConcat
    val: SegmentationDataset
    train_split: CocoSplit
    weights: torch.Tensor | None
    sampling_weights: np.ndarray | None


def build_data(cfg: Config) -> TrainData:
    """Datasets for training (augmented, optionally copy-paste/cutmix) and validation (resized only)."""
    train_split, val_split = (load_named_split(cfg.data, name, require_annotations=True) for name in ("train", "val"))
    images = image_cache(cfg.data)
    train_masks = mask_cache(train_split, cfg.data, presized=True)
    plain = SegmentationDataset(
        train_split, train_masks, build_transform(cfg.augment, True, cfg.data.ignore_index), images
    )
    val = SegmentationDataset(
        val_split,
        mask_cache(val_split, cfg.data, presized=True),
        build_transform(cfg.augment, False, cfg.data.ignore_index),
        images,
    )
    pastes_rarest = cfg.augment.copy_paste.prob > 0 and cfg.augment.copy_paste.classes is None
    needs_stats = cfg.loss.class_weights != "none" or cfg.train.balanced_sampling > 0 or pastes_rarest
    stats = class_stats(train_split, train_masks) if needs_stats else None  # one pass over the masks serves all
    weights = class_weights_from_shares(stats.shares, cfg.loss.class_weights) if stats is not None else None
    sampling = None
    if stats is not None and cfg.train.balanced_sampling:
        sampling = balanced_image_weights(stats, cfg.train.balanced_sampling)
    train: SegmentationDataset | CopyPasteDataset = plain
    if cfg.augment.copy_paste.prob > 0 or cfg.augment.cutmix_prob > 0:
        train = pasting = CopyPasteDataset(
            plain,
            cfg.augment.copy_paste,
            cfg.data.classes,
            seed=cfg.train.seed,
            cutmix_prob=cfg.augment.cutmix_prob,
            stats=stats,
        )
        if cfg.augment.copy_paste.prob > 0:
            _ = pasting.donors  # scan masks once here, not once per DataLoader worker
    if cfg.data.extra:
        mixed, sampling = _mix_extra(cfg, train, sampling, images)
        return TrainData(mixed, val, train_split, weights, sampling)
    return TrainData(train, val, train_split, weights, sampling)


def _mix_extra(
    cfg: Config, train: SegmentationDataset | CopyPasteDataset, sampling: np.ndarray | None, images: ImageCache | None
) -> tuple[SeededConcat, np.ndarray]:
    """Append pseudo-label datasets; each epoch draws `extra_ratio` of its samples from them."""
    transform = build_transform(cfg.augment, True, cfg.data.ignore_index)
    extras = [
        SegmentationDataset(split, PngMasks(path, cfg.data.cache_size), transform, images)
        for path in cfg.data.extra
        for split in [load_extra(path, cfg.data)]
    ]
    base = sampling if sampling is not None else np.full(len(train), 1.0 / len(train))
    n_extra = sum(len(e) for e in extras)
    weights = np.concatenate([base * (1 - cfg.data.extra_ratio), np.full(n_extra, cfg.data.extra_ratio / n_extra)])
    return SeededConcat([train, *extras]), weights


def _init_worker(parent_pid: int, worker_id: int) -> None:
    """DataLoader workers die with the trainer (trashseg.procs); setting our own worker_init_fn stops Lightning
    adding its seeding one, so it is called here."""
    die_with_parent(parent_pid)
    pl_worker_init_function(worker_id)


def build_loaders(cfg: Config, data: TrainData) -> tuple[DataLoader, DataLoader]:
    t = cfg.train
    n = len(data.train)
    base = len(data.train_split.images)  # an epoch = one pass worth of the real training set, extra data or not
    num_samples = min(base, t.max_steps_per_epoch * t.batch_size) if t.max_steps_per_epoch else base
    sampler = EpochSampler(n, t.seed, weights=data.sampling_weights, num_samples=num_samples)
    loader = partial(
        DataLoader,
        batch_size=t.batch_size,
        num_workers=t.num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=t.num_workers > 0,
        worker_init_fn=partial(_init_worker, os.getpid()),
    )
    train = loader(data.train, sampler=sampler, drop_last=num_samples > t.batch_size)
    val = loader(data.val, sampler=ShardSampler(len(data.val)))
    return train, val


def _loggers(cfg: Config, run_dir: Path) -> list:
    """One log version per launch (``logs/csv/launch_<n>``), so a resumed run never overwrites earlier logs."""
    from lightning.pytorch import loggers

    existing = run_dir / "logs" / "csv"
    version = f"launch_{len(list(existing.iterdir())) if existing.is_dir() else 0}"
    factories = {
        "csv": lambda: loggers.CSVLogger(run_dir / "logs", name="csv", version=version),
        "tensorboard": lambda: loggers.TensorBoardLogger(run_dir / "logs", name="tensorboard", version=version),
        "wandb": lambda: loggers.WandbLogger(project="trashseg", name=cfg.name, save_dir=str(run_dir / "logs")),
        "mlflow": lambda: loggers.MLFlowLogger(
            experiment_name="trashseg", run_name=cfg.name, save_dir=str(run_dir / "logs" / "mlruns")
        ),
    }
    out = []
    for name in cfg.train.loggers:
        try:
            out.append(factories[name]())
        except ModuleNotFoundError as exc:
            raise TrashsegError(
                f"train.loggers: '{name}' needs a package that is not installed ({exc.name}); "
                f"pip install {exc.name} or remove it from train.loggers"
            ) from None
    return out


class _LightningNoise(logging.Filter):
    """Lightning's advertising tips and its note on loading the train loader early say nothing about this run."""

    NOISE = ("💡 Tip:", "Loading `train_dataloader` to estimate")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOISE)


def _quiet_lightning() -> None:
    """What a user sees before the first epoch should be ours and useful (idempotent)."""
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _LightningNoise) for f in rank_zero.filters):
        rank_zero.addFilter(_LightningNoise())
    # Raised inside Lightning's own pytree helper with torch >= 2.10; nothing a user can act on.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


def build_trainer(cfg: Config, run_dir: Path, extra_callbacks: list | None = None) -> pl.Trainer:
    _quiet_lightning()
    t = cfg.train
    best = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor="val/mIoU",
        mode="max",
        save_top_k=1,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    # A callback of its own for last.ckpt: Lightning's save_last only writes when the top-k checkpoint changes, so a
    # run whose val mIoU stopped improving would resume (and report "last") from its best epoch instead.
    last = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="last",
        monitor=None,
        save_top_k=1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    callbacks = [best, last, RNGState(), Throughput(), ValidationReport(run_dir, cfg.data.classes)]
    if {"tensorboard", "wandb"} & set(t.loggers):
        callbacks.append(PredictionImages(cfg.data.classes))
    if t.early_stopping:
        callbacks.append(EarlyStopping(monitor="val/mIoU", mode="max", patience=t.early_stopping))
    if t.ema_decay:
        callbacks.append(EMAWeightAveraging(decay=t.ema_decay))
    if t.freeze_encoder_epochs:
        callbacks.append(FreezeEncoder(t.freeze_encoder_epochs))
    multi = t.num_nodes > 1 or t.devices not in (1, "1", "auto")
    if multi and t.fit_schedule_to_time_limit:
        raise TrashsegError(
            "train.fit_schedule_to_time_limit runs on one device only: each process's clock would set its own "
            "learning rate; plan the schedule with train.epochs instead"
        )
    return pl.Trainer(
        default_root_dir=run_dir,
        max_epochs=t.epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy="ddp" if multi else "auto",
        precision=t.precision,
        accumulate_grad_batches=t.accumulate,
        gradient_clip_val=t.grad_clip,
        callbacks=callbacks + (extra_callbacks or []),
        logger=_loggers(cfg, run_dir),
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        deterministic=False,
        log_every_n_steps=1,
        benchmark=torch.cuda.is_available(),
        max_time=timedelta(minutes=t.time_limit_minutes) if t.time_limit_minutes else None,
        enable_model_summary=False,
        check_val_every_n_epoch=t.val_every,
    )


def prepare_run_dir(cfg: Config, run_dir: Path, resume: bool) -> Path | None:
    """Write the resolved config; on resume return last.ckpt (which must exist) and refuse a changed config."""
    make_folder(run_dir)
    saved = run_dir / "config.yaml"
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume:
        if not last.exists():
            raise TrashsegError(f"--resume: {last} not found; start the run without --resume")
        # fail now, not after data prep
        load_torch_file(last, key="--resume", kind="checkpoint", resave=RESAVE_RESUME, mmap=True)
        before = load_config(saved).model if saved.exists() else None
        if before is not None and cfg.model.logit_bias is None:  # filled from the data's class weights when it started
            cfg.model.logit_bias = before.logit_bias
        if before is not None and before.mean is None:  # saved before runs stored it: trained with ImageNet's
            for model in (before, cfg.model):
                fill_legacy_normalization(model)
        resolve_normalization(cfg.model)
        if before is not None and before != cfg.model:
            raise TrashsegError(f"--resume: the model section differs from {saved}; resume with the same config")
        return last
    if last.exists():
        raise TrashsegError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    resolve_normalization(cfg.model)  # recorded in config.yaml: predict, export and serve use the same
    atomic_write_text(saved, dump_config(cfg))
    return None


def _stopped(run_dir: Path) -> str:
    """What a run that stopped early leaves to resume from, as it is on disk."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.exists():
        return f"The run stopped; its last good checkpoint is kept: {last}"
    return "The run stopped before its first checkpoint, so there is nothing to resume from"


def train(cfg: Config, run_dir: str | Path, *, resume: bool = False, extra_callbacks: list | None = None) -> dict:
    """Train one model; returns the best validation record (also in run_dir/metrics.json)."""
    run_dir = Path(run_dir)
    ckpt = prepare_run_dir(cfg, run_dir, resume)
    for folder in (run_dir, cache_folder(cfg.data)):  # what a killed launch of this job left
        remove_stale_temps(folder)
    (run_dir / MODEL_CARD).unlink(missing_ok=True)  # a run in training has no model file: it is written at the end
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    data = build_data(cfg)
    train_loader, val_loader = build_loaders(cfg, data)
    if cfg.loss.logit_adjustment and data.weights is not None and cfg.model.logit_bias is None:
        # resolved from the data's class weights, so recorded again: predict, export and serve apply it
        cfg.model.logit_bias = logit_adjustment_bias(data.weights, cfg.loss.logit_adjustment)
        atomic_write_text(run_dir / "config.yaml", dump_config(cfg))
    module = SegmentationModule(cfg, data.weights)
    if cfg.train.channels_last:  # weights too, not only the inputs: no layout copy per conv (CPU step +12%)
        module.to(memory_format=torch.channels_last)
    if cfg.train.compile:
        module.segmenter.net.compile()  # in place: state_dict keys stay as they are, so checkpoints load uncompiled
    trainer = build_trainer(cfg, run_dir, [SamplerEpoch(train_loader.sampler), *(extra_callbacks or [])])
    try:
        trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt, weights_only=True)
    except NonFiniteLossError as exc:
        raise TrashsegError(f"{exc}. {_stopped(run_dir)}") from None
    metrics = run_dir / "metrics.json"
    best = json.loads(metrics.read_text())["best"] if metrics.exists() else {}
    if trainer.is_global_zero:  # the model file of the best checkpoint: what predict, serve and export read first
        Segmenter.load(run_dir).save_pretrained(run_dir, best.get("miou"))
    return best
