"""The README's "Your own data" block, run as written on a labelling tool's export made from generated data."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.helpers import QUICK, run_cli

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[list[str]]:
    """The `trashseg ...` lines of the README's "Your own data" block, comments dropped, split as a shell would."""
    block = re.search(r"## Your own data\n.*?```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)[1]
    return [shlex.split(line.split("  #")[0])[1:] for line in block.splitlines() if line.startswith("trashseg ")]


def _cvat_like_export(sample: Path, export: Path) -> None:
    """CVAT's "COCO 1.0" layout: annotations/instances_default.json, every image in images/ under its own name."""
    coco = json.loads((sample / "train.json").read_text())
    (export / "images").mkdir(parents=True)
    (export / "annotations").mkdir()
    for image in coco["images"]:
        flat = image["file_name"].replace("/", "_")
        shutil.copy(sample / image["file_name"], export / "images" / flat)
        image["file_name"] = flat
    (export / "annotations" / "instances_default.json").write_text(json.dumps(coco))


@pytest.mark.slow
def test_your_own_data_block_runs_as_written(sample_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _cvat_like_export(sample_data, tmp_path / "export")
    (tmp_path / "new_photos").mkdir()
    for name in sorted(p for p in sample_data.rglob("*.jpg"))[:3]:
        shutil.copy(name, tmp_path / "new_photos" / name.name)
    commands = readme_commands()
    assert commands[-1][0] == "serve"  # the web service is run for real by tests/serve; here the steps before it
    for args in commands[:-1]:
        if args[0] == "train":  # the recipe as written, cut to a few steps
            args = [*args, *(a for item in QUICK for a in ("--set", item))]
        code, text = run_cli(args, capsys)
        assert code == 0, f"trashseg {' '.join(args)}\n{text}"
    assert (tmp_path / "mydata" / "dataset.yaml").is_file()
    assert len(list((tmp_path / "mydata" / "folds").glob("fold*_val.json"))) == 5
    assert (tmp_path / "runs" / "mine" / "checkpoints" / "best.ckpt").is_file()
    assert len(list((tmp_path / "preds" / "new" / "masks").rglob("*.png"))) == 3
    assert len(list((tmp_path / "preds" / "new" / "objects").rglob("*.json"))) == 3
    assert len(list((tmp_path / "preds" / "new" / "overlays").rglob("*.jpg"))) == 3
