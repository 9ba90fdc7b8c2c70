"""``trashseg crf``: refine a prediction folder's probabilities into a new prediction folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from trashseg.config import CRFConfig
from trashseg.data.coco import CocoSplit
from trashseg.errors import TrashsegError
from trashseg.infer.folder import PredictionFolder
from trashseg.postprocess.crf import dense_crf_many, require_crf
from trashseg.progress import for_each_pending


def crf_folder(
    pred: str | Path, split: CocoSplit, out: str | Path, *, cfg: CRFConfig, save_probs: bool = False
) -> dict:
    require_crf()
    src, dst = PredictionFolder(pred), PredictionFolder(out)
    meta = src.meta()
    if not meta.has_probs:
        raise TrashsegError(f"{pred}: CRF needs probabilities; predict with --save-probs")
    recorded = Path(meta.split or "")
    if recorded.name and recorded.name != split.path.name:  # by name: the dataset may have moved since
        raise TrashsegError(
            f"{pred} was predicted on {recorded}, not {split.path}: give that split (--split {recorded.name})"
        )
    save_probs = dst.init(
        {**meta.record(), "source": str(Path(pred).resolve()), "crf": cfg.model_dump(), "has_probs": save_probs}
    ).has_probs

    def refined(todo: list[dict]) -> Iterator[np.ndarray]:
        return dense_crf_many(((split.load_image(img), src.probs(img["file_name"])) for img in todo), cfg)

    stats = for_each_pending(
        split.images,
        label=f"dense CRF → {out}",
        compute=refined,
        finished=lambda img: dst.done(img["file_name"], save_probs),
        write=lambda img, probs: dst.write_probs(img["file_name"], probs, save_probs),
    )
    return {"refined": stats.done, "seconds_per_image": stats.seconds / stats.done if stats.done else None}
