"""Helpers the tests share: a hand-made COCO dataset, image writers, the CLI runner, a quick training config and
a hostile pickle. Plain functions (fixtures live in conftest.py); import them with ``from tests.helpers import ...``."""

from __future__ import annotations

import errno
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from trashseg.cli import main
from trashseg.config import Config, load_config

CLASSES = ["Background", "Paper", "Metal", "Battery"]


def write_image(path: Path, h: int = 32, w: int = 48, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))


def write_bomb(path: Path, w: int = 7000, h: int = 7000) -> Path:
    """A decompression bomb: a 1-bit PNG of w×h pixels (49 MP by default, over the 40 MP limit), ~6 kB on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("1", (w, h)).save(path)
    return path


def write_two_faced_tiff(path: Path, w: int, h: int, said: int = 8) -> Path:
    """A TIFF that Pillow reads as `said`×`said` and libtiff (OpenCV) decodes to w×h zeros, a few kB on disk.

    Its ImageWidth and ImageLength are each given twice: first as SLONG8, a type libtiff reads and Pillow skips,
    then as LONG. libtiff keeps the first of duplicate tags, Pillow the first it can read. All the deflated strips
    of zeros share one copy of the bytes."""
    rows = 64
    strip = zlib.compress(bytes(w * rows), 9)
    n = -(-h // rows)
    tags = [(256, 17, 1, 0), (256, 4, 1, said), (257, 17, 1, 8), (257, 4, 1, said), (258, 3, 1, 8), (259, 3, 1, 8)]
    tags += [(262, 3, 1, 1), (273, 4, n, 16), (277, 3, 1, 1), (278, 4, 1, rows), (279, 4, n, 16 + 4 * n)]
    values = 8 + 2 + 12 * len(tags) + 4  # where the out-of-line values start; tags above give offsets from there
    data = values + 16 + 8 * n
    out = bytearray(b"II*\x00" + struct.pack("<IH", 8, len(tags)))
    for tag, typ, count, value in tags:
        if typ == 17 or count > 1:
            value += values
        field = struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)  # a SHORT fills 2 of 4 bytes
        out += struct.pack("<HHI", tag, typ, count) + field
    out += struct.pack("<I", 0) + struct.pack("<qq", w, h)
    out += struct.pack(f"<{n}I", *[data] * n) + struct.pack(f"<{n}I", *[len(strip)] * n) + strip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


def fill_disk(monkeypatch: pytest.MonkeyPatch, folder: Path, free: int, code: int = errno.ENOSPC) -> None:
    """Files that trashseg's atomic writers open under `folder` (through ``os.fdopen``) share `free` bytes; the
    write that passes them writes what fits and then fails as on a full disk (ENOSPC) or quota (EDQUOT)."""
    real_fdopen, left = os.fdopen, [free]

    class Filling:
        def __init__(self, fh: Any):
            self.fh = fh

        def write(self, data: bytes | str) -> int:
            if len(data) > left[0]:
                self.fh.write(data[: left[0]])
                left[0] = 0
                raise OSError(code, os.strerror(code))
            left[0] -= len(data)
            return self.fh.write(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.fh, name)

        def __enter__(self) -> Filling:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        fh = real_fdopen(fd, *args, **kwargs)
        return Filling(fh) if Path(os.readlink(f"/proc/self/fd/{fd}")).is_relative_to(folder) else fh

    monkeypatch.setattr(os, "fdopen", fdopen)


def make_coco(
    root: Path,
    annotations: list[dict] | None = None,
    images: list[dict] | None = None,
    categories: list[dict] | None = None,
    name: str = "train.json",
    write_images: bool = True,
) -> Path:
    """A small dataset: by default two 32×48 images and three annotations (polygon, multi-part, RLE)."""
    images = (
        images
        if images is not None
        else [
            {"id": 1, "file_name": "batch_01/0001.png", "height": 32, "width": 48},
            {"id": 2, "file_name": "batch_01/0002.png", "height": 32, "width": 48},
        ]
    )
    categories = (
        categories
        if categories is not None
        else [{"id": 1, "name": "Paper"}, {"id": 2, "name": "Metal"}, {"id": 3, "name": "Battery"}]
    )
    if annotations is None:
        annotations = [
            # big Paper rectangle x 0..20, y 0..16 (area 320)
            {"id": 10, "image_id": 1, "category_id": 1, "area": 320.0, "segmentation": [[0, 0, 20, 0, 20, 16, 0, 16]]},
            # small Metal square inside it, x 4..8, y 4..8 (area 16), drawn on top
            {"id": 11, "image_id": 1, "category_id": 2, "area": 16.0, "segmentation": [[4, 4, 8, 4, 8, 8, 4, 8]]},
            # two-part Battery on image 2
            {
                "id": 12,
                "image_id": 2,
                "category_id": 3,
                "area": 32.0,
                "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4], [10, 10, 14, 10, 14, 14, 10, 14]],
            },
        ]
    if write_images:
        for img in images:
            write_image(root / img["file_name"], img["height"], img["width"])
    path = root / name
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run the real entry point (including its error handling) and return (exit code, stdout+stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out + out.err


RECIPE = Path(__file__).resolve().parents[1] / "configs" / "small_cpu.yaml"


def predict_val(model: Path, data: Path, out: Path, *options: str) -> list:
    """`trashseg predict` of `model` on `data`'s val split into `out`, in the main process (no loader workers)."""
    return ["predict", model, "--data", data, "--split", "val", "--out", out, "--workers", "0", *options]


# One step per epoch on 32 px crops from random init: the workflow, not the accuracy, is under test.
TINY = [
    "model.weights=null",
    "train.epochs=1",
    "train.val_every=1",
    "train.max_steps_per_epoch=1",
    "augment.image_size=32",
    "train.batch_size=2",
    "train.loggers=[csv]",
]

QUICK = [
    "train.epochs=2",
    "train.val_every=1",
    "train.max_steps_per_epoch=3",
    "augment.image_size=64",
    "train.batch_size=4",
    "train.loggers=[csv]",
]


def quick_cfg(data: Path, tmp: Path, *extra: str) -> Config:
    """The small CPU recipe cut to a few steps of two epochs, caching under `tmp`."""
    return load_config(RECIPE, [f"data.root={data}", f"data.cache_dir={tmp / 'cache'}", *QUICK, *extra])


class Payload:
    """What a hostile checkpoint carries: unpickling it runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def hostile_checkpoint(real: Path, out: Path, marker: Path) -> Path:
    """A real trashseg checkpoint with a payload added beside its weights and config."""
    ckpt = torch.load(real, weights_only=True)
    ckpt["callbacks"] = {"Innocent": Payload(marker)}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out)
    return out


def make_read_only(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder nothing can be created in. Root ignores file modes, so for root creating a file or folder inside it
    fails here as the OS fails it for anyone else (EACCES)."""
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
