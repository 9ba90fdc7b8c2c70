"""Image decoding: always uint8 RGB, size checked from the header first, errors that name the file.

Orientation policy: a dataset's pixels are used as stored and EXIF orientation is ignored (data check, training,
predict, overlays), because COCO sizes and polygons describe the stored pixels. Raw photos are another matter:
`trashseg predict --images`, the Python API and uploads to `trashseg serve` honour EXIF orientation
(``exif=True``), as a photo viewer shows them (a phone stores a portrait photo sideways with an orientation tag),
since no annotation refers to their stored pixels; the image list it writes says so (``info.orientation: exif``), so
overlay and CRF read those images the same way and masks line up.

Size policy: every image is opened with Pillow first, which reads only the header, and refused when it declares
more than ``data.max_pixels`` (a 100 kB PNG can declare 30000×30000). Formats Pillow cannot identify are refused
too (OpenCV decodes a few more, such as Radiance HDR or OpenEXR, whose size we could not check before decoding).
Decoders can disagree about a file's size (a TIFF whose ImageWidth is given twice, first in a type Pillow skips:
Pillow reads 8×8, libtiff decodes 20000×20000), so the decoded array is checked too (`check_decoded`), before
anything is converted or resized from it, and OpenCV's own decoder is capped (``OPENCV_IO_MAX_IMAGE_PIXELS``, set
by ``trashseg/__init__.py``): it refuses to allocate more than any pixel limit could allow.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from trashseg.config import MAX_PIXELS
from trashseg.errors import TrashsegError

cv2.setNumThreads(1)  # parallelism comes from DataLoader workers; OpenCV's own threads would oversubscribe
_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
# EXIF orientation → the transposition that shows the image upright, as in Pillow's ImageOps.exif_transpose
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageError(TrashsegError):
    """An image that cannot be used. One-argument construction stays possible: DataLoader workers re-raise it so."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail or message  # without the file's name, for reports that name it already

    @classmethod
    def named(cls, name: str, detail: str) -> ImageError:
        return cls(f"{name}: {detail}", detail)


class ImageTooLarge(ImageError):
    """The header declares more pixels than the configured limit (nothing was decoded), or the pixel data holds
    more than its header says and more than the limit (refused before anything is made from it)."""


class ImageSizeMismatch(ImageError):
    """The decoder gives another size than the header that the pixel limit was checked on: corrupt or crafted."""


def _orientation(im: Image.Image) -> int:
    """EXIF orientation (1 = as stored) from the header alone: Pillow's getexif() on a PNG without an eXIf chunk
    before its pixels would decode the whole image to look for one after them."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    value = im.getexif().get(ExifTags.Base.Orientation, 1)
    return value if value in _UPRIGHT else 1


def _header(source: Path | bytes, name: str, max_pixels: int, exif: bool) -> tuple[int, int, int]:
    """(width, height, EXIF orientation or 1) as stored, from the header; see `check_pixels`."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            w, h = im.size
            orientation = _orientation(im) if exif and w * h <= max_pixels else 1
    except Image.DecompressionBombError:
        raise ImageTooLarge.named(
            name,
            f"more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels (Pillow's "
            f"decompression-bomb limit); the limit here is {max_pixels} (data.max_pixels)",
        ) from None
    except FileNotFoundError:
        raise ImageError.named(name, "file not found") from None
    except UnidentifiedImageError:
        raise ImageError.named(
            name,
            "cannot be decoded: not an image, or a format whose size cannot be checked "
            "before decoding (use JPEG, PNG, TIFF, BMP or WebP)",
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError.named(name, f"cannot be decoded ({exc})") from None
    if w * h > max_pixels:
        raise ImageTooLarge.named(
            name,
            f"{w}×{h} is {w * h / 1e6:.1f} MP, over the limit of "
            f"{max_pixels / 1e6:.1f} MP; shrink the image, or raise data.max_pixels if it "
            "is meant to be that large",
        )
    return w, h, orientation


def check_pixels(source: Path | bytes, name: str, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) from the header of a file or of bytes in memory; raises ImageTooLarge over `max_pixels`,
    ImageError when the file is missing or not a format Pillow identifies."""
    return _header(source, name, max_pixels, exif=False)[:2]


def upright_size(path: Path, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) as `read_image(path, exif=True)` returns the image, from the header alone."""
    w, h, orientation = _header(path, str(path), max_pixels, exif=True)
    return (h, w) if orientation >= 5 else (w, h)  # 5-8 turn the image by a quarter


def check_decoded(image: np.ndarray, name: str, max_pixels: int, *expected: tuple[int, int]) -> None:
    """Refuse a decoded array over `max_pixels`, or of a size none of `expected` (width, height) names, before
    anything is converted, resized or allocated from it: the header's size, on which the limit was checked, is a
    claim that another decoder may read differently."""
    h, w = image.shape[:2]
    said = " or ".join(f"{ew}×{eh}" for ew, eh in expected)
    header = f"; its header says {said}" if said else ""
    if w * h > max_pixels:
        raise ImageTooLarge.named(
            name,
            f"decodes to {w}×{h}, {w * h / 1e6:.1f} MP, over the limit of {max_pixels / 1e6:.1f} MP "
            f"(data.max_pixels){header}",
        )
    if expected and (w, h) not in expected:
        raise ImageSizeMismatch.named(name, f"decodes to {w}×{h}{header} (corrupt or crafted)")


def _opencv(decode: Callable[[], np.ndarray | None], name: str, header: tuple[int, int]) -> np.ndarray | None:
    """Run an OpenCV decode; its refusals (over its own pixel cap, a broken file) become named errors."""
    try:
        return decode()
    except cv2.error as exc:
        if "CV_IO_MAX_IMAGE" in str(exc):  # validateInputImageSize: checked before OpenCV allocates the pixels
            raise ImageTooLarge.named(
                name,
                f"its pixel data is larger than its header's {header[0]}×{header[1]} and over OpenCV's cap of "
                f"{os.environ.get('OPENCV_IO_MAX_IMAGE_PIXELS', 'its default')} pixels "
                "(OPENCV_IO_MAX_IMAGE_PIXELS); nothing was decoded (corrupt or crafted)",
            ) from None
        raise ImageError.named(name, f"cannot be decoded ({str(exc).strip().splitlines()[-1]})") from None


def _decoded(
    img: np.ndarray | None, name: str, orientation: int, header: tuple[int, int], max_pixels: int
) -> np.ndarray:
    """OpenCV's BGR decode, checked against the `header` (width, height) and the limit → RGB, turned upright by
    `orientation` (1: as stored)."""
    if img is None:
        raise ImageError.named(name, "cannot be decoded (corrupt or not an image)")
    check_decoded(img, name, max_pixels, header)
    rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.array(Image.fromarray(rgb).transpose(_UPRIGHT[orientation])) if orientation != 1 else rgb  # writable


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS, exif: bool = False) -> np.ndarray:
    """Decode to HxWx3 uint8 RGB: pixels as stored, or turned upright by their EXIF orientation with `exif`.
    Grayscale, RGBA and 16-bit inputs are converted.

    OpenCV's IMREAD_COLOR does all of these conversions in one decode, which is why it decodes rather than PIL.
    """
    path = Path(path)
    w, h, orientation = _header(path, str(path), max_pixels, exif)
    img = _opencv(lambda: cv2.imread(str(path), _FLAGS), str(path), (w, h))
    return _decoded(img, str(path), orientation, (w, h), max_pixels)


def decode_image(data: bytes, name: str, max_pixels: int = MAX_PIXELS, exif: bool = False) -> np.ndarray:
    """``read_image`` for bytes already in memory (an upload): HxWx3 uint8 RGB, or an error naming `name`."""
    if not data:
        raise ImageError.named(name, "cannot be decoded (empty)")
    w, h, orientation = _header(data, name, max_pixels, exif)
    img = _opencv(lambda: cv2.imdecode(np.frombuffer(data, np.uint8), _FLAGS), name, (w, h))
    return _decoded(img, name, orientation, (w, h), max_pixels)
