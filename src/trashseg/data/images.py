"""Image decoding: always uint8 RGB, EXIF orientation applied, errors that name the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from trashseg.errors import TrashsegError

cv2.setNumThreads(1)  # parallelism comes from DataLoader workers; OpenCV's own threads would oversubscribe


def read_image(path: str | Path) -> np.ndarray:
    """Decode to HxWx3 uint8 RGB. Grayscale, RGBA and 16-bit inputs are converted; EXIF rotation is applied.

    OpenCV's IMREAD_COLOR does all of these conversions in one decode, which is why it is used rather than PIL.
    """
    path = Path(path)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        reason = "file not found" if not path.exists() else "cannot be decoded (corrupt or not an image)"
        raise TrashsegError(f"{path}: {reason}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def decode_image(data: bytes, name: str) -> np.ndarray:
    """``read_image`` for bytes already in memory (an upload): HxWx3 uint8 RGB, or an error naming `name`."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise TrashsegError(f"{name}: cannot be decoded (empty, corrupt or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
