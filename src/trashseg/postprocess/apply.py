"""``trashseg crf``: refine a prediction folder's probabilities into a new prediction folder."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rich.console import Console

from trashseg.config import CRFConfig
from trashseg.data.coco import CocoSplit
from trashseg.errors import TrashsegError
from trashseg.infer.folder import PredictionFolder
from trashseg.infer.predict import progress_bar
from trashseg.postprocess.crf import dense_crf_many, require_crf


def crf_folder(pred: str | Path, split: CocoSplit, out: str | Path, cfg: CRFConfig, save_probs: bool = False,
               console: Console | None = None) -> dict:
    console = console or Console()
    require_crf()
    src, dst = PredictionFolder(pred), PredictionFolder(out)
    meta = src.meta()
    if not meta.get("has_probs"):
        raise TrashsegError(f"{pred}: CRF needs probabilities; predict with --save-probs")
    recorded = Path(meta.get("split") or "")
    if recorded.name and recorded.name != split.path.name:  # by name: the dataset may have moved since
        raise TrashsegError(f"{pred} was predicted on {recorded}, not {split.path}: give that split (--split "
                            f"{recorded.name})")
    save_probs = dst.init({**meta, "source": str(Path(pred).resolve()), "crf": cfg.model_dump(),
                           "has_probs": save_probs})["has_probs"]
    todo = [img for img in split.images if not dst.done(img["file_name"], save_probs)]

    def pairs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for img in todo:
            yield split.load_image(img), src.probs(img["file_name"])

    start = time.perf_counter()
    with progress_bar(console) as bar:
        task = bar.add_task(f"dense CRF → {out}", total=len(todo), rate="-")
        for i, (img, refined) in enumerate(zip(todo, dense_crf_many(pairs(), cfg)), start=1):
            dst.write(img["file_name"], refined.argmax(0).astype(np.uint8), refined if save_probs else None)
            bar.update(task, advance=1, rate=f"{i / (time.perf_counter() - start):.2f}")
    elapsed = time.perf_counter() - start
    return {"refined": len(todo), "seconds_per_image": elapsed / len(todo) if todo else None}
