"""K-fold voting in one command: predict with every fold's model (``trashseg train --all-folds``), then vote."""

from __future__ import annotations

from pathlib import Path

from trashseg.config import InferConfig
from trashseg.data.coco import CocoSplit
from trashseg.ensemble.voting import check_mode, ensemble_folders
from trashseg.errors import TrashsegError
from trashseg.infer.predict import predict_split
from trashseg.models.segmenter import load_model


def fold_runs(root: Path) -> list[Path]:
    runs = sorted(p for p in root.glob("fold*") if (p / "checkpoints").is_dir())
    if not runs:
        raise TrashsegError(f"{root}: no fold*/checkpoints inside; train with --all-folds K --out {root}")
    return runs


def kfold_predict(root: Path, split: CocoSplit, out: Path, *, cfg: InferConfig, mode: str = "soft",
                  device: str = "cpu") -> dict:
    check_mode(mode)
    members = []
    for run in fold_runs(root):
        member = out / "folds" / run.name
        predict_split(load_model(run, device), split, member, cfg=cfg, save_probs=mode == "soft", device=device)
        members.append(member)
    if len(members) == 1:
        raise TrashsegError(f"{root}: only one fold run; nothing to vote")
    return ensemble_folders(members, out, mode)
