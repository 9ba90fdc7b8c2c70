"""Image decoding: always uint8 RGB, pixels as stored, size checked from the header first, errors that name the file.

Orientation policy (the competition's): pixels are used as stored and EXIF orientation is ignored everywhere
(data check, training, predict, overlays, serve), because COCO sizes and polygons describe the stored pixels.

Size policy: every image is opened with Pillow first, which reads only the header, and refused when it declares
more than ``data.max_pixels`` (a 100 kB PNG can declare 30000×30000). Formats Pillow cannot identify are refused
too (OpenCV decodes a few more, such as Radiance HDR or OpenEXR, whose size we could not check before decoding).
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from trashseg.config import MAX_PIXELS
from trashseg.errors import TrashsegError

cv2.setNumThreads(1)  # parallelism comes from DataLoader workers; OpenCV's own threads would oversubscribe
_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


class ImageError(TrashsegError):
    """An image that cannot be used. One-argument construction stays possible: DataLoader workers re-raise it so."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail or message  # without the file's name, for reports that name it already

    @classmethod
    def named(cls, name: str, detail: str) -> ImageError:
        return cls(f"{name}: {detail}", detail)


class ImageTooLarge(ImageError):
    """The header declares more pixels than the configured limit; nothing was decoded."""


def check_pixels(source: Path | bytes, name: str, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) from the header of a file or of bytes in memory; raises ImageTooLarge over `max_pixels`,
    ImageError when the file is missing or not a format Pillow identifies."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            w, h = im.size
    except Image.DecompressionBombError:
        raise ImageTooLarge.named(name, f"more than {2 * Image.MAX_IMAGE_PIXELS} pixels (Pillow's "
                                        f"decompression-bomb limit); the limit here is {max_pixels} (data.max_pixels)"
                                  ) from None
    except FileNotFoundError:
        raise ImageError.named(name, "file not found") from None
    except UnidentifiedImageError:
        raise ImageError.named(name, "cannot be decoded: not an image, or a format whose size cannot be checked "
                                     "before decoding (use JPEG, PNG, TIFF, BMP or WebP)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError.named(name, f"cannot be decoded ({exc})") from None
    if w * h > max_pixels:
        raise ImageTooLarge.named(name, f"{w}×{h} is {w * h / 1e6:.1f} MP, over the limit of "
                                        f"{max_pixels / 1e6:.1f} MP; shrink the image, or raise data.max_pixels if it "
                                        "is meant to be that large")
    return w, h


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode to HxWx3 uint8 RGB, pixels as stored. Grayscale, RGBA and 16-bit inputs are converted.

    OpenCV's IMREAD_COLOR does all of these conversions in one decode, which is why it decodes rather than PIL.
    """
    path = Path(path)
    check_pixels(path, str(path), max_pixels)
    img = cv2.imread(str(path), _FLAGS)
    if img is None:
        raise ImageError.named(str(path), "cannot be decoded (corrupt or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def decode_image(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``read_image`` for bytes already in memory (an upload): HxWx3 uint8 RGB, or an error naming `name`."""
    if not data:
        raise ImageError.named(name, "cannot be decoded (empty)")
    check_pixels(data, name, max_pixels)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), _FLAGS)
    if img is None:
        raise ImageError.named(name, "cannot be decoded (corrupt or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
