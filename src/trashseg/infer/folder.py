"""The prediction folder, the contract between predict, CRF, ensembles, pseudo-labels, submit and evaluate.

``meta.json`` (classes, source, TTA, val mIoU of the source when known), ``masks/<file_name>.png`` (class ids,
the image's own size) and, optionally, ``probs/<file_name>.npz`` (float16 C×H×W). Keyed by the dataset's
``file_name``, so folders from different models line up image by image. Every file is written atomically and
an image whose outputs exist is skipped by a rerun (resume).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_open, atomic_write_json, atomic_write_with


class PredictionFolder:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- meta -------------------------------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.root / "meta.json"

    def meta(self) -> dict[str, Any]:
        try:
            return json.loads(self.meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TrashsegError(f"{self.root}: not a prediction folder (no meta.json)") from None
        except json.JSONDecodeError as exc:
            raise TrashsegError(f"{self.meta_path}: not valid JSON ({exc})") from None

    def init(self, meta: dict[str, Any]) -> None:
        """Start (or resume) a folder: a rerun must predict with the same classes, else outputs would mix."""
        if self.meta_path.exists():
            old = self.meta()
            if old.get("classes") != meta.get("classes"):
                raise TrashsegError(f"{self.root} already holds predictions for classes {old.get('classes')}; "
                                    "use another --out")
        atomic_write_json(self.meta_path, meta)

    @property
    def classes(self) -> list[str]:
        return self.meta()["classes"]

    # -- per image ----------------------------------------------------------------------------------------------
    def mask_path(self, file_name: str) -> Path:
        return self.root / "masks" / f"{file_name}.png"

    def probs_path(self, file_name: str) -> Path:
        return self.root / "probs" / f"{file_name}.npz"

    def done(self, file_name: str, with_probs: bool) -> bool:
        return self.mask_path(file_name).exists() and (not with_probs or self.probs_path(file_name).exists())

    def write(self, file_name: str, mask: np.ndarray, probs: np.ndarray | None = None) -> None:
        """Probabilities first, mask last: a mask on disk means the image is complete."""
        if probs is not None:
            with atomic_open(self.probs_path(file_name), "wb") as fh:
                np.savez_compressed(fh, probs=probs.astype(np.float16))
        atomic_write_with(self.mask_path(file_name), lambda tmp: cv2.imwrite(tmp, mask.astype(np.uint8)))

    def mask(self, file_name: str) -> np.ndarray:
        path = self.mask_path(file_name)
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise TrashsegError(f"{path}: prediction mask missing or unreadable (image {file_name})")
        return mask

    def probs(self, file_name: str) -> np.ndarray:
        path = self.probs_path(file_name)
        try:
            with np.load(path) as data:
                return data["probs"].astype(np.float32)
        except FileNotFoundError:
            raise TrashsegError(f"{path}: no probabilities for image {file_name}; predict with --save-probs") \
                from None
        except (ValueError, KeyError, OSError) as exc:
            raise TrashsegError(f"{path}: unreadable probabilities ({exc})") from None
