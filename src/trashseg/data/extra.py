"""Extra training data made of label masks rather than COCO polygons: the pseudo-label datasets written by
``trashseg pseudo`` (``pseudo.json`` + ``masks/<file_name>.png``, 255 = ignore)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from trashseg.config import DataConfig
from trashseg.data.cache import presize
from trashseg.data.coco import CocoSplit
from trashseg.errors import TrashsegError
from trashseg.paths import inside

MANIFEST = "pseudo.json"


class PngMasks:
    """Mask provider with MaskCache's interface (``get(image_info)``), reading ready-made PNG masks."""

    def __init__(self, folder: Path, size: int | tuple[int, int] | None = None):
        self.folder, self.size = Path(folder), size

    def get(self, image: dict) -> np.ndarray:
        path = inside(self.folder, "masks", f"{image['file_name']}.png")
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise TrashsegError(f"{path}: pseudo-label mask missing or unreadable (image id {image['id']})")
        return presize(mask, self.size, nearest=True)


def load_extra(folder: str | Path, data: DataConfig) -> CocoSplit:
    """The manifest as a split (no annotations: masks come from :class:`PngMasks`), under `data`'s image limits."""
    folder = Path(folder)
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrashsegError(
            f"{folder}: not a pseudo-label dataset (no {MANIFEST}; make one with trashseg pseudo)"
        ) from None
    if manifest.get("classes") != data.classes:
        raise TrashsegError(f"{path}: labels use classes {manifest.get('classes')}, the config has {data.classes}")
    return CocoSplit(
        path=path,
        root=Path(manifest["root"]),
        classes=list(data.classes),
        images=manifest["images"],
        anns_by_image={},
        cat_to_class={},
        has_annotations=True,
        max_pixels=data.max_pixels,
        allow_external_links=data.allow_external_links,
    )
