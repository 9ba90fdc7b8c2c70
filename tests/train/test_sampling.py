"""Deterministic sampling (train/sampling.py) and the RNG checkpoint callback: what exact resume and DDP rely on.

DDP ranks are simulated by patching ``torch.distributed``'s rank and world size, as an initialised process group
would report them.
"""

from __future__ import annotations

import io
import random
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from trashseg.data.stats import ClassStats, balanced_image_weights
from trashseg.train import sampling
from trashseg.train.callbacks import RNGState
from trashseg.train.sampling import EpochSampler, ShardSampler


def _as_rank(monkeypatch: pytest.MonkeyPatch, rank: int, world: int) -> None:
    """Make the samplers see an initialised process group in which this process is `rank` of `world`."""
    monkeypatch.setattr(sampling.dist, "is_available", lambda: True)
    monkeypatch.setattr(sampling.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(sampling.dist, "get_rank", lambda *a, **k: rank)
    monkeypatch.setattr(sampling.dist, "get_world_size", lambda *a, **k: world)


def _epoch(sampler: EpochSampler, epoch: int) -> list[tuple[int, int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


# --- EpochSampler ------------------------------------------------------------------------------------------


def test_order_and_sample_seeds_are_a_function_of_seed_and_epoch() -> None:
    """A resumed run builds a new sampler and sets its epoch: it must yield what the interrupted one would have."""
    walked = EpochSampler(20, seed=7)
    for epoch in range(3):
        _epoch(walked, epoch)  # an uninterrupted run went through epochs 0..2 first
    fresh = EpochSampler(20, seed=7)

    assert _epoch(fresh, 3) == _epoch(walked, 3)
    assert list(fresh) == list(fresh)  # iterating again without set_epoch repeats the epoch


def test_epochs_and_seeds_give_different_orders_and_augmentation_seeds() -> None:
    sampler = EpochSampler(20, seed=0)
    first, second = _epoch(sampler, 0), _epoch(sampler, 1)
    other_seed = _epoch(EpochSampler(20, seed=1), 0)

    assert [i for i, _ in first] != [i for i, _ in second]
    assert [s for _, s in first] != [s for _, s in second]  # the same image is augmented differently next epoch
    assert [i for i, _ in first] != [i for i, _ in other_seed]
    assert len({s for _, s in first}) == len(first)  # every sample of an epoch gets its own augmentation seed


def test_unweighted_epoch_is_a_permutation_and_num_samples_a_prefix_of_it() -> None:
    """Without weights every image is seen once per epoch; `num_samples` (max_steps_per_epoch) shortens it."""
    full = EpochSampler(20, seed=3)
    short = EpochSampler(20, seed=3, num_samples=6)

    assert sorted(i for i, _ in full) == list(range(20)) and len(full) == 20
    indices = [i for i, _ in short]
    assert len(indices) == len(short) == 6 and len(set(indices)) == 6
    assert indices == [i for i, _ in full][:6]


def test_weighted_sampling_draws_rare_class_images_more_often() -> None:
    """train.balanced_sampling: images holding a rare class are drawn (with replacement) more than common ones."""
    # 10 images of background + a common class (1); image 9 also holds a rare class (2)
    presence = np.zeros((10, 3), bool)
    presence[:, :2] = True
    presence[9, 2] = True
    stats = ClassStats(pixels=np.array([9000, 990, 10]), presence=presence)
    weights = balanced_image_weights(stats, strength=1.0)
    sampler = EpochSampler(10, seed=0, weights=weights, num_samples=2000)

    counts = Counter(i for i, _ in sampler)

    assert len(sampler) == sum(counts.values()) == 2000
    assert set(counts) == set(range(10))  # weighted, not exclusive: common images still appear
    expected = weights / weights.sum() * 2000
    assert counts[9] == pytest.approx(expected[9], rel=0.15)
    assert counts[9] > 2 * max(counts[i] for i in range(9))


def test_ddp_ranks_split_one_global_order_into_equal_shares(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each rank takes every world-th item of the same epoch order, padded so all ranks run the same steps."""
    single = _epoch(EpochSampler(10, seed=5), 2)
    shares = []
    for rank in range(3):
        _as_rank(monkeypatch, rank, 3)
        sampler = EpochSampler(10, seed=5)
        shares.append(_epoch(sampler, 2))
        assert len(shares[-1]) == len(sampler) == 4

    interleaved = [item for group in zip(*shares, strict=True) for item in group]
    assert interleaved[:10] == single  # no image lost, none seen twice, same seeds as one process
    assert interleaved[10:] == single[:2]  # the padding repeats the start of the epoch


# --- ShardSampler --------------------------------------------------------------------------------------------


def test_shard_sampler_without_ddp_is_the_whole_split_in_order() -> None:
    sampler = ShardSampler(7)
    assert list(sampler) == list(range(7)) and len(sampler) == 7


@pytest.mark.parametrize(("size", "world"), [(10, 3), (7, 2), (2, 4)])
def test_shard_sampler_ranks_partition_the_split(monkeypatch: pytest.MonkeyPatch, size: int, world: int) -> None:
    """Validation shards overlap nowhere and cover every image, so summed confusion matrices count each once;
    each rank's length is what it yields (Lightning sizes the validation loop from it)."""
    shards = []
    for rank in range(world):
        _as_rank(monkeypatch, rank, world)
        sampler = ShardSampler(size)
        shards.append(list(sampler))
        assert len(sampler) == len(shards[-1]), f"rank {rank} of {world}"

    seen = [i for shard in shards for i in shard]
    assert sorted(seen) == list(range(size)) and len(seen) == len(set(seen))


# --- RNGState ------------------------------------------------------------------------------------------------


@pytest.fixture
def _global_rng() -> Iterator[None]:
    """The test reseeds the global generators; other tests get them back as they were."""
    state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    yield
    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _draw() -> tuple[list[float], list[float], list[float]]:
    return [random.random() for _ in range(3)], np.random.rand(3).tolist(), torch.rand(3).tolist()


@pytest.mark.usefixtures("_global_rng")
def test_rng_state_round_trip_restores_python_numpy_and_torch_streams() -> None:
    """--resume restores the random streams from the checkpoint, which is loaded with weights_only=True."""
    callback = RNGState()
    _seed_all(1)
    _draw()  # move away from a freshly seeded state
    buffer = io.BytesIO()
    torch.save(callback.state_dict(), buffer)
    expected = _draw()

    _seed_all(2)
    assert _draw() != expected  # the streams really moved on
    buffer.seek(0)
    callback.load_state_dict(torch.load(buffer, weights_only=True))

    assert _draw() == expected
