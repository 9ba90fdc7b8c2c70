"""K-fold in one command: predict with every fold's model (``trashseg train --all-folds``) and vote, or gather
each fold's out-of-fold probabilities into one prediction folder (``--oof``)."""

from __future__ import annotations

from pathlib import Path

from trashseg.config import DataConfig, InferConfig, load_config
from trashseg.data.coco import CocoSplit, load_named_split
from trashseg.ensemble.voting import check_mode, ensemble_folders
from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_link
from trashseg.infer.folder import PredictionFolder
from trashseg.infer.predict import predict_split
from trashseg.models.segmenter import load_model


def fold_runs(root: Path) -> list[Path]:
    runs = sorted(p for p in root.glob("fold*") if (p / "checkpoints").is_dir())
    if not runs:
        raise TrashsegError(f"{root}: no fold*/checkpoints inside; train with --all-folds K --out {root}")
    return runs


def kfold_predict(
    root: Path, split: CocoSplit, out: Path, *, cfg: InferConfig, mode: str = "soft", device: str = "cpu"
) -> dict:
    check_mode(mode)
    members = []
    for run in fold_runs(root):
        member = out / "folds" / run.name
        predict_split(load_model(run, device), split, member, cfg=cfg, save_probs=mode == "soft", device=device)
        members.append(member)
    if len(members) == 1:
        raise TrashsegError(f"{root}: only one fold run; nothing to vote")
    return ensemble_folders(members, out, mode)


def oof_predict(
    root: Path, data: DataConfig, split: CocoSplit, out: Path, *, cfg: InferConfig, device: str = "cpu"
) -> dict:
    """Out-of-fold probabilities for `split` (the split that ``trashseg split`` divided): fold k's validation
    images predicted by fold k's model, which never trained on them, into ``out/folds/fold<k>``, then gathered
    into ``out`` (hard links, see ``atomic_link``). The honest input for ``trashseg audit``: no image is judged by
    a model that learned its labels."""
    members = []
    for run in fold_runs(root):
        val = load_named_split(data, load_config(run / "config.yaml").data.val)
        member = out / "folds" / run.name
        predict_split(load_model(run, device), val, member, cfg=cfg, save_probs=True, device=device)
        members.append(member)
    folder = PredictionFolder(out)
    folder.init(
        {
            "classes": split.classes,
            "oof": True,
            "members": [str(m.resolve()) for m in members],
            "split": str(split.path.resolve()),
            "data_root": str(split.root.resolve()),
            "has_probs": True,
        }
    )
    wanted = {img["file_name"] for img in split.images}
    gathered = set()
    for fold in map(PredictionFolder, members):
        for name in fold.names():
            if name in wanted and not folder.done(name, True):
                atomic_link(fold.probs_path(name), folder.probs_path(name))
                atomic_link(fold.mask_path(name), folder.mask_path(name))  # the mask last: it marks the image done
            gathered.add(name)
    missing = sorted(wanted - gathered)
    if missing:
        raise TrashsegError(
            f"{len(missing)} images of {split.path} are in no fold's validation split (first: "
            f"{missing[0]}); the folds of {root} were made from another split: pass that one as "
            "--split"
        )
    return {"images": len(wanted), "members": [str(m) for m in members], "out": str(out)}
