"""The torch Dataset: uint8 H×W×3 image and uint8 mask out. Workers move 4x fewer bytes than float, and the
device turns a B×H×W×3 batch into channels_last N×C×H×W with a free ``permute`` before normalising it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from trashseg.data.cache import ImageCache
from trashseg.data.coco import CocoSplit
from trashseg.data.images import read_image
from trashseg.data.masks import MaskSource
from trashseg.errors import TrashsegError

Transform = Callable[..., dict[str, Any]]  # albumentations-style: transform(image=..., mask=...) -> dict


class SegmentationDataset(Dataset):
    """One sample = {"image": uint8 H×W×3, "mask": uint8 H×W (255 = ignore), "index", "file_name"}."""

    def __init__(
        self,
        split: CocoSplit,
        cache: MaskSource | None = None,
        transform: Transform | None = None,
        image_cache: ImageCache | None = None,
    ):
        self.split = split
        self.cache = cache  # where the masks come from (data.masks.mask_cache); None: images only
        self.transform = transform
        self.image_cache = image_cache

    def __len__(self) -> int:
        return len(self.split.images)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw decoded image and mask at the file's own size (copy-paste draws its donors through this)."""
        info = self.split.images[index]
        path = self.split.image_path(info)
        limit = self.split.max_pixels
        image = self.image_cache.get(path, limit) if self.image_cache is not None else read_image(path, limit)
        mask = self.cache.get(info) if self.cache is not None else None
        if mask is not None and mask.shape != image.shape[:2]:
            raise TrashsegError(
                f"{path} image_id={info['id']}: decoded as {image.shape[1]}x{image.shape[0]} but "
                f"{self.split.path} says {info['width']}x{info['height']} (pixels are used as stored, "
                "EXIF orientation ignored); run `trashseg data check` and fix the JSON or the image"
            )
        return image, mask

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        """`item` is an index, or (index, seed) from ``trashseg.train.sampling.EpochSampler`` to make the random
        augmentation of this sample reproducible."""
        index, seed = item if isinstance(item, tuple) else (item, None)
        image, mask = self.load(index)
        return self.finish(index, image, mask, seed)

    def finish(self, index: int, image: np.ndarray, mask: np.ndarray | None, seed: int | None) -> dict[str, Any]:
        """Apply the transform (seeded when `seed` is given) and pack the sample; wrappers that alter the raw
        image first (copy-paste) call this too."""
        if seed is not None and self.transform is not None and hasattr(self.transform, "set_random_seed"):
            self.transform.set_random_seed(seed)
        if self.transform is not None:
            out = self.transform(image=image, mask=mask) if mask is not None else self.transform(image=image)
            image, mask = out["image"], out.get("mask")
        sample = {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "index": index,
            "file_name": self.split.images[index]["file_name"],
        }
        if mask is not None:
            sample["mask"] = torch.from_numpy(np.ascontiguousarray(mask))
        return sample


class SamplePart(Protocol):
    """What :class:`SeededConcat` joins: a sized dataset that takes an index or an ``(index, seed)`` item."""

    def __len__(self) -> int: ...

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]: ...


class SeededConcat(Dataset):
    """torch's ConcatDataset, but passing ``(index, seed)`` items through to the part that owns the index."""

    def __init__(self, parts: list[SamplePart]):
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = item if isinstance(item, tuple) else (item, None)
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        local = index - int(self.offsets[part])
        sample = self.parts[part][(local, seed) if seed is not None else local]
        sample["index"] = index
        return sample
