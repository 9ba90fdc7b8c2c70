"""Optimisers and per-step learning-rate schedules (linear warmup, then cosine or poly)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from trashseg.config import OptimConfig


def param_groups(cfg: OptimConfig, model: nn.Module) -> list[dict]:
    """Decoder and heads at ``optim.lr``, the encoder at ``lr × encoder_lr_mult``: a pretrained encoder needs
    smaller steps than freshly initialised layers. The decoder group comes first (the logged lr is its)."""
    encoder_params = list(model.get_submodule("encoder").parameters())
    encoder = {id(p) for p in encoder_params}
    rest = [p for p in model.parameters() if id(p) not in encoder]
    return [{"params": rest, "lr": cfg.lr}, {"params": encoder_params, "lr": cfg.lr * cfg.encoder_lr_mult}]


def build_optimizer(cfg: OptimConfig, params) -> torch.optim.Optimizer:
    factories: dict[str, Callable[[], torch.optim.Optimizer]] = {
        "adamw": lambda: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
        "sgd": lambda: torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0
        ),
    }
    return factories[cfg.name]()


def lr_factor(cfg: OptimConfig, step: int, warmup_steps: int, progress: float) -> float:
    """Multiplier of the base learning rate at `step` (0-based): a linear warmup over `warmup_steps`, then the
    decay at `progress` (0 → 1, clipped) through the schedule."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay = {
        "cosine": lambda p: 0.5 * (1 + math.cos(math.pi * p)),
        "poly": lambda p: (1 - p) ** cfg.poly_power,
        "constant": lambda p: 1.0,
    }[cfg.schedule](min(1.0, max(0.0, progress)))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * decay if cfg.schedule != "constant" else 1.0


def step_progress(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """How far the decay is after `step`: by steps, from the end of the warmup to `total_steps`."""
    return lambda step: (step - warmup_steps) / max(1, total_steps - warmup_steps)


def build_scheduler(
    cfg: OptimConfig,
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    elapsed: Callable[[], float] | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule over `total_steps`; with `elapsed` (the share of a time budget spent, 0 → 1) the decay
    follows whichever of the two is further along, so it also ends when the budget does."""
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    by_step = step_progress(total_steps, warmup)
    progress = by_step if elapsed is None else lambda step: max(by_step(step), elapsed())
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, warmup, progress(step)))
