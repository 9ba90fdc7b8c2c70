"""Shared fixtures: a tiny hand-made COCO dataset (exact pixels known) and the generated sample dataset."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from trashseg.cli import main

CLASSES = ["Background", "Paper", "Metal", "Battery"]


def write_image(path: Path, h: int = 32, w: int = 48, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))


def write_bomb(path: Path, w: int = 7000, h: int = 7000) -> Path:
    """A decompression bomb: a 1-bit PNG of w×h pixels (49 MP by default, over the 40 MP limit), ~6 kB on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("1", (w, h)).save(path)
    return path


def make_coco(root: Path, annotations: list[dict] | None = None, images: list[dict] | None = None,
              categories: list[dict] | None = None, name: str = "train.json", write_images: bool = True) -> Path:
    """A small dataset: by default two 32×48 images and three annotations (polygon, multi-part, RLE)."""
    images = images if images is not None else [
        {"id": 1, "file_name": "batch_01/0001.png", "height": 32, "width": 48},
        {"id": 2, "file_name": "batch_01/0002.png", "height": 32, "width": 48},
    ]
    categories = categories if categories is not None else [
        {"id": 1, "name": "Paper"}, {"id": 2, "name": "Metal"}, {"id": 3, "name": "Battery"}]
    if annotations is None:
        annotations = [
            # big Paper rectangle x 0..20, y 0..16 (area 320)
            {"id": 10, "image_id": 1, "category_id": 1, "area": 320.0,
             "segmentation": [[0, 0, 20, 0, 20, 16, 0, 16]]},
            # small Metal square inside it, x 4..8, y 4..8 (area 16), drawn on top
            {"id": 11, "image_id": 1, "category_id": 2, "area": 16.0,
             "segmentation": [[4, 4, 8, 4, 8, 8, 4, 8]]},
            # two-part Battery on image 2
            {"id": 12, "image_id": 2, "category_id": 3, "area": 32.0,
             "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4], [10, 10, 14, 10, 14, 14, 10, 14]]},
        ]
    if write_images:
        for img in images:
            write_image(root / img["file_name"], img["height"], img["width"])
    path = root / name
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    make_coco(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's ~/.cache from tests."""
    monkeypatch.setenv("TRASHSEG_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trashseg.data.sample import write_sample_dataset

    root = tmp_path_factory.mktemp("sample")
    write_sample_dataset(root, n_train=24, n_val=8, n_test=8, size=128, seed=0)
    return root


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run the real entry point (including its error handling) and return (exit code, stdout+stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture) -> Callable[[list], tuple[int, str]]:
    """`run_cli` as a fixture (bound to this test's capsys): ``code, text = cli(["split", data])``."""
    return lambda args: run_cli(args, capsys)


@pytest.fixture(scope="session")
def trained_run(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained for a few steps on the sample data: enough to exercise every inference command."""
    from trashseg.config import load_config
    from trashseg.train.run import train

    tmp = tmp_path_factory.mktemp("run")
    recipe = Path(__file__).resolve().parents[1] / "configs" / "small_cpu.yaml"
    cfg = load_config(recipe, [f"data.root={sample_data}", f"data.cache_dir={tmp / 'cache'}", "train.epochs=1",
                               "train.val_every=1", "train.max_steps_per_epoch=4", "augment.image_size=64",
                               "train.loggers=[csv]"])
    train(cfg, tmp / "run")
    return tmp / "run"


def make_read_only(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder nothing can be created in. Root ignores file modes, so for root creating a file or folder inside it
    fails here as the OS fails it for anyone else (EACCES)."""
    import errno
    import os

    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    if os.geteuid() != 0:
        return folder

    def refuse(real, creates):
        def call(path, *args, **kwargs):
            if creates(*args) and Path(path).absolute().is_relative_to(folder.absolute()):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "open", refuse(os.open, lambda flags, *_: flags & os.O_CREAT))
    monkeypatch.setattr(os, "mkdir", refuse(os.mkdir, lambda *_: True))
    return folder
