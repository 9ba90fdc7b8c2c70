"""The README's k-fold workflow through the CLI: `split` → `train --all-folds K` → `kfold` (predict with every
fold's model and vote)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import RECIPE, TINY
from trashseg.config import load_config
from trashseg.infer.folder import PredictionFolder

Cli = Callable[[list], tuple[int, str]]


@pytest.fixture
def data(sample_data: Path, tmp_path: Path) -> Path:
    """A private copy of the sample dataset: `split` writes DATA/folds, which the shared fixture must not get."""
    return Path(shutil.copytree(sample_data, tmp_path / "data"))


def _settings(tmp_path: Path) -> list[str]:
    return [a for s in (*TINY, f"data.cache_dir={tmp_path / 'cache'}") for a in ("--set", s)]


def test_all_folds_then_kfold_votes_every_fold_model(data: Path, tmp_path: Path, cli: Cli) -> None:
    runs, pred = tmp_path / "runs", tmp_path / "kfold"

    code, text = cli(["split", data, "--folds", "2"])
    assert code == 0, text
    code, text = cli(["train", RECIPE, "--data", data, "--all-folds", "2", "--out", runs, *_settings(tmp_path)])
    assert code == 0, text

    for k in (0, 1):
        run = runs / f"fold{k}"
        assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
        cfg = load_config(run / "config.yaml")  # each fold trained and validated on its own split files
        assert (cfg.data.train, cfg.data.val) == (f"folds/fold{k}_train.json", f"folds/fold{k}_val.json")
    val_sets = [
        {i["file_name"] for i in json.loads((data / "folds" / f"fold{k}_val.json").read_text())["images"]}
        for k in (0, 1)
    ]
    assert val_sets[0] and val_sets[1] and not val_sets[0] & val_sets[1]

    code, text = cli(["kfold", runs, "--data", data, "--out", pred])
    assert code == 0, text

    test_images = json.loads((data / "test.json").read_text())["images"]
    folder = PredictionFolder(pred)
    assert folder.names() == sorted(i["file_name"] for i in test_images)
    assert all(folder.mask(i["file_name"]).shape == (i["height"], i["width"]) for i in test_images)
    meta = json.loads((pred / "meta.json").read_text())
    assert meta["mode"] == "soft"
    assert meta["members"] == [str((pred / "folds" / f"fold{k}").resolve()) for k in (0, 1)]
    sources = [PredictionFolder(Path(m)).meta().source for m in meta["members"]]
    assert sources == [str((runs / f"fold{k}").resolve()) for k in (0, 1)]  # each fold run's model file


def test_all_folds_before_split_names_the_missing_fold_file(data: Path, tmp_path: Path, cli: Cli) -> None:
    """Forgetting `trashseg split` is a user error naming the fold file, not a traceback."""
    code, text = cli(
        ["train", RECIPE, "--data", data, "--all-folds", "2", "--out", tmp_path / "runs", *_settings(tmp_path)]
    )
    assert code == 2, text
    assert "fold0_train.json: not found; make the folds first with `trashseg split" in " ".join(text.split())
    assert not (tmp_path / "runs" / "fold0" / "checkpoints").exists()
