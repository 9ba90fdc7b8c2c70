"""Overlays: each image with its predicted classes drawn over it (``trashseg.draw``), beside its ground truth when
the split has one, as a folder of JPEG panels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from trashseg.config import DataConfig
from trashseg.data.coco import CocoSplit
from trashseg.data.masks import mask_cache
from trashseg.draw import overlay_panel
from trashseg.fileio import atomic_open, remove_stale_temps
from trashseg.infer.folder import PredictionFolder
from trashseg.paths import inside
from trashseg.progress import for_each_pending


def overlay_path(out: Path, file_name: str) -> Path:
    """``a/0001.jpg`` → ``out/a/0001.jpg``; other formats keep their name (``x.png`` → ``x.png.jpg``), so two
    images never share a panel."""
    keep = Path(file_name).suffix.lower() in (".jpg", ".jpeg")
    return inside(out, file_name if keep else f"{file_name}.jpg")


def write_overlays(
    pred: str | Path, split: CocoSplit, out: str | Path, *, data: DataConfig, limit: int | None = None
) -> dict:
    """A JPEG panel per predicted image of `split` (the first `limit`), ground truth beside it when annotated.

    Written atomically under ``out/<file_name>`` (as JPEG, see ``overlay_path``); a rerun skips panels already
    there.
    """
    folder, out = PredictionFolder(pred), Path(out)
    classes = folder.classes
    predicted = set(folder.names())
    images = [img for img in split.images if img["file_name"] in predicted][:limit]
    remove_stale_temps(out)
    truth = mask_cache(split, data) if split.has_annotations else None

    def panel(img: dict) -> np.ndarray:
        image = split.load_image(img)
        return overlay_panel(image, folder.mask(img["file_name"]), classes, truth.get(img) if truth else None)

    def write(img: dict, rgb: np.ndarray) -> None:
        _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        with atomic_open(overlay_path(out, img["file_name"]), "wb") as fh:
            fh.write(jpeg.tobytes())

    stats = for_each_pending(
        images,
        label=f"overlays → {out}",
        compute=lambda todo: map(panel, todo),
        write=write,
        finished=lambda img: overlay_path(out, img["file_name"]).exists(),
    )
    return {"written": stats.done, "skipped": stats.skipped, "ground_truth": truth is not None, "out": str(out)}
