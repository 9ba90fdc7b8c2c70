"""On-disk caches of decoded images and rasterised masks, as raw ``.npy`` files.

Why raw arrays: on TrashCan (480×270) reading a ``.npy`` takes ~0.06–0.09 ms, decoding the JPEG ~0.45 ms and a
PNG mask ~0.5 ms; after the first epoch the loader only reads arrays and resizes. Entries are content-addressed
(the key hashes whatever shapes the array), so they never go stale and never need clearing by hand.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from trashseg.config import MAX_PIXELS, DataConfig, hw
from trashseg.data.images import read_image
from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_open


def cache_root() -> Path:
    """``$TRASHSEG_CACHE`` or ``~/.cache/trashseg``: outside the dataset, which may be read-only."""
    return Path(os.environ.get("TRASHSEG_CACHE", Path.home() / ".cache" / "trashseg"))


def cache_folder(data: DataConfig, *kind: str) -> Path:
    """The one cache layout: ``<data.cache_dir or cache_root()>/<kind>`` (``images``, ``masks``)."""
    return (data.cache_dir or cache_root()).joinpath(*kind)


def image_cache(data: DataConfig) -> ImageCache | None:
    """Decoded training images, presized to ``data.cache_size``; None when ``data.cache_images`` is off."""
    return ImageCache(cache_folder(data, "images"), data.cache_size) if data.cache_images else None


def entry_path(folder: Path, key: str) -> Path:
    return folder / key[:2] / f"{key}.npy"


def load_npy(path: Path) -> np.ndarray | None:
    try:
        return np.load(path)
    except (FileNotFoundError, ValueError, OSError, EOFError):  # absent, or torn by a crash: rebuild it
        return None


def save_npy(path: Path, array: np.ndarray) -> None:
    """Store a cache entry; a cache folder that cannot be written is named with the settings that move it."""
    try:
        with atomic_open(path, "wb", durable=False) as fh:
            np.save(fh, array)
    except TrashsegError as exc:  # its own class kept: a full disk stays DiskFull
        raise type(exc)(f"{exc} (a cache entry: set data.cache_dir or $TRASHSEG_CACHE to a writable folder)") from None


def presize(array: np.ndarray, size: int | tuple[int, int] | None, nearest: bool = False) -> np.ndarray:
    """Resize to size×size (or H×W) once, as the entry is stored ("presizing"): every later epoch starts from the
    training size instead of repeating the same deterministic resize. Nearest neighbour for masks, bilinear for
    images."""
    if not size or array.shape[:2] == (shape := hw(size)):
        return array
    h, w = shape
    return cv2.resize(array, (w, h), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)


class ImageCache:
    """Decoded uint8 RGB images keyed by (absolute path, size, mtime, presize): replacing a file invalidates it."""

    def __init__(self, cache_dir: str | Path, size: int | tuple[int, int] | None = None):
        self.dir = Path(cache_dir)
        self.size = size

    def get(self, path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
        """The decoded image, from the cache when present; `max_pixels` applies when it has to be decoded."""
        path = Path(path).resolve()
        try:
            st = path.stat()
        except FileNotFoundError:
            return read_image(path, max_pixels)  # raises the named error
        key = hashlib.sha1(f"{path}|{st.st_size}|{st.st_mtime_ns}|{self.size}".encode()).hexdigest()
        entry = entry_path(self.dir, key)
        image = load_npy(entry)
        if image is None:
            image = presize(read_image(path, max_pixels), self.size)
            save_npy(entry, image)
        return image
