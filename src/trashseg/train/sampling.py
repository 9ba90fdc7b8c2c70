"""Deterministic sampling: each sample's index *and* augmentation seed are a pure function of (seed, epoch,
position), so a run gives the same batches whatever the number of workers, and a resumed run continues exactly
where the interrupted one would have gone."""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, sample_seed)``; weighted (with replacement) when `weights` is given, else a permutation
    (its first `num_samples`).

    Under DDP each rank takes every world_size-th item of the same global order (no separate
    DistributedSampler, so Lightning must be told ``use_distributed_sampler=False``).
    """

    def __init__(self, size: int, seed: int, *, weights: np.ndarray | None = None, num_samples: int | None = None):
        self.size, self.seed = size, seed
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.num_samples = num_samples or size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _world(self) -> tuple[int, int]:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is not None:
            order = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=g)
        else:
            order = torch.randperm(self.size, generator=g)[: self.num_samples]
        seeds = torch.randint(0, 2**31 - 1, (len(order),), generator=g)
        rank, world = self._world()
        total = -(-len(order) // world) * world  # pad so every rank gets the same count
        pad = total - len(order)
        order, seeds = torch.cat([order, order[:pad]]), torch.cat([seeds, seeds[:pad]])
        yield from zip(order[rank::world].tolist(), seeds[rank::world].tolist(), strict=True)

    def __len__(self) -> int:
        return -(-self.num_samples // self._world()[1])


class ShardSampler(Sampler[int]):
    """Validation order: rank r takes items r, r+world, ...; no padding, so summed confusion matrices count every
    image exactly once."""

    def __init__(self, size: int):
        self.size = size

    def _shard(self) -> range:
        rank, world = (
            (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
        )
        return range(rank, self.size, world)

    def __iter__(self):
        return iter(self._shard())

    def __len__(self) -> int:
        return len(self._shard())  # this rank's count: ranks after the first may hold one image fewer
