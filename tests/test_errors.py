"""Errors raised in DataLoader worker processes reach the user as their own message (issue 16.8)."""

import errno
import json

import pytest
from torch.utils.data import DataLoader, Dataset

from tests.helpers import CLASSES, make_coco, predict_val, run_cli
from trashseg.errors import TrashsegError, user_message


class _Broken(Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int):
        raise TrashsegError("a.png: cannot be decoded\nsecond line")


def test_worker_error_is_unwrapped_to_its_own_message():
    with pytest.raises(TrashsegError) as info:
        next(iter(DataLoader(_Broken(), num_workers=1)))
    assert str(info.value).startswith("Caught TrashsegError in DataLoader worker process 0")  # what torch gives
    assert user_message(info.value) == "a.png: cannot be decoded\nsecond line"
    assert user_message(TrashsegError("plain")) == "plain"


def test_cli_shows_a_training_workers_error_without_its_traceback(tmp_path, capsys):
    make_coco(tmp_path)
    (tmp_path / "val.json").write_text((tmp_path / "train.json").read_text())
    (tmp_path / "batch_01" / "0001.png").write_bytes(b"not a png")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        json.dumps(
            {
                "data": {"classes": CLASSES, "cache_images": False},
                "model": {"encoder": "resnet18", "weights": None},
                "augment": {"image_size": 32, "preset": "none"},
                "train": {"epochs": 1, "batch_size": 2, "num_workers": 1, "loggers": ["csv"]},
            }
        )
    )
    code, text = run_cli(["train", recipe, "--data", tmp_path, "--out", tmp_path / "run"], capsys)
    assert code == 2 and "0001.png: cannot be decoded" in text, text
    assert "Caught" not in text and "Traceback" not in text


def test_missing_extra_names_the_extra_to_install(monkeypatch):
    import sys

    from trashseg.errors import MissingExtra, require_extra

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(
        MissingExtra, match=r"""needs the optional package 'onnxruntime': pip install "trashseg\[onnx\]\""""
    ):
        require_extra("onnxruntime", "onnx", "Running an ONNX model")
    assert require_extra("json", "x", "y") is json


def test_a_broken_import_inside_an_installed_extra_is_not_reported_as_missing(tmp_path, monkeypatch):
    from trashseg.errors import require_extra

    (tmp_path / "half_installed.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        require_extra("half_installed", "onnx", "x")


def test_commands_without_their_extra_exit_with_the_install_line(
    trained_run, sample_data, tmp_path, monkeypatch, capsys
):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)
    code, text = run_cli(["export", trained_run, "--out", tmp_path / "m.onnx"], capsys)
    assert code == 2 and 'pip install "trashseg[onnx]"' in " ".join(text.split()), text
    assert not (tmp_path / "m.onnx").exists()
    for module in ("pydensecrf", "pydensecrf.densecrf"):  # the solver too: an earlier test may have imported it
        monkeypatch.setitem(sys.modules, module, None)
    pred = tmp_path / "pred"
    assert run_cli(predict_val(trained_run, sample_data, pred, "--save-probs"), capsys)[0] == 0
    code, text = run_cli(["crf", pred, "--out", tmp_path / "crf"], capsys)
    assert code == 2 and 'pip install "trashseg[crf]"' in " ".join(text.split()), text
    assert not (tmp_path / "crf").exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/out/log.csv"), "/data/out is full (no space left"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "an output's disk is over your quota. Nothing half-written"),
    ],
)
def test_a_full_disk_met_outside_trashseg_writers_is_named_by_the_cli(monkeypatch, capsys, error, shown):
    """Issue 27.2: a library writing on its own (a logger, a download) meets ENOSPC: one named line, exit 2; any
    other OSError stays a traceback, as a bug should."""
    from trashseg import cli

    def failing(**_):
        raise error

    monkeypatch.setattr(cli, "app", failing)
    code, text = run_cli(["train"], capsys)
    assert code == 2 and shown in " ".join(text.split()) and "rerun the same command to resume" in text, text
    monkeypatch.setattr(cli, "app", lambda **_: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        run_cli(["train"], capsys)
