"""trashseg: semantic segmentation of recycling waste, from COCO annotations to a submission CSV.

The Python API (``trashseg.load``, see ``trashseg.api``) is imported on first use, so that ``import trashseg`` stays
cheap (no torch) for the CLI and for tools that only read the version.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# OpenCV's decoders refuse images over OPENCV_IO_MAX_IMAGE_PIXELS before allocating them, but OpenCV reads the
# variable once, when cv2 loads (a static of its imgcodecs library), and it holds for the whole process: so it is
# set here, before any trashseg module imports cv2, and not from a config's data.max_pixels. The value is Pillow's
# decompression-bomb error threshold (2 × PIL.Image.MAX_IMAGE_PIXELS), which trashseg.data.images enforces on every
# header whatever data.max_pixels says: no image any config accepts is larger, while OpenCV's own default (2^30)
# would let a small crafted file allocate 3 GB. A value already in the environment is kept.
OPENCV_MAX_PIXELS = 2 * 89_478_485
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(OPENCV_MAX_PIXELS))

_LAZY = {
    "load": "trashseg.api",
    "Model": "trashseg.api",
    "Result": "trashseg.api",
    "SegmentObject": "trashseg.infer.objects",
    "TrashsegError": "trashseg.errors",
    "ModelNotFoundError": "trashseg.errors",
    "ImageError": "trashseg.data.images",
}
__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:
    # "X as X": re-exported names (PEP 484), for type checkers and linters that cannot read _LAZY
    from trashseg.api import Model as Model, Result as Result, load as load
    from trashseg.data.images import ImageError as ImageError
    from trashseg.errors import ModelNotFoundError as ModelNotFoundError, TrashsegError as TrashsegError
    from trashseg.infer.objects import SegmentObject as SegmentObject


def __getattr__(name: str) -> Any:
    """PEP 562: the API's names are imported when first asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module 'trashseg' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
