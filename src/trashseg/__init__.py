"""trashseg: semantic segmentation of recycling waste, from COCO annotations to a submission CSV.

The Python API (``trashseg.load``, see ``trashseg.api``) is imported on first use, so that ``import trashseg`` stays
cheap (no torch) for the CLI and for tools that only read the version.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

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
