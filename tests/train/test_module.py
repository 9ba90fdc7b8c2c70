"""Checkpoints are read as data, never run as code: every command that opens one goes through load_module
(issue 16.1)."""

import os
from pathlib import Path

import pytest
import torch

from tests.conftest import run_cli
from trashseg.errors import TrashsegError
from trashseg.train.module import load_module


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


def test_checkpoints_our_trainer_writes_hold_only_tensors_and_plain_values(trained_run):
    for name in ("best.ckpt", "last.ckpt"):
        assert torch.serialization.get_unsafe_globals_in_checkpoint(trained_run / "checkpoints" / name) == []
    assert load_module(trained_run / "checkpoints" / "best.ckpt").cfg.data.num_classes == 11


def test_checkpoint_with_a_pickled_payload_is_refused_without_running_it(trained_run, tmp_path):
    marker = tmp_path / "pwned"
    path = hostile_checkpoint(trained_run / "checkpoints" / "best.ckpt", tmp_path / "evil.ckpt", marker)
    with pytest.raises(TrashsegError, match=r"checkpoint: .*evil.ckpt holds Python objects besides tensors "
                                            r"\(posix.system\).*files you trust.*torch.save"):
        load_module(path)
    assert not marker.exists()


def test_unreadable_or_foreign_checkpoints_are_named(tmp_path):
    corrupt, foreign = tmp_path / "corrupt.ckpt", tmp_path / "foreign.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    torch.save([1, 2, 3], foreign)
    with pytest.raises(TrashsegError, match="checkpoint: cannot read .*corrupt.ckpt as a checkpoint"):
        load_module(corrupt)
    with pytest.raises(TrashsegError, match="foreign.ckpt: not a trashseg checkpoint"):
        load_module(foreign)


@pytest.mark.parametrize("command", ["predict-ckpt", "predict-run", "export", "kfold", "serve"])
def test_every_command_that_opens_a_checkpoint_refuses_the_payload(trained_run, sample_data, tmp_path, capsys,
                                                                   command):
    marker = tmp_path / "pwned"
    run = tmp_path / "runs" / "fold0"
    path = hostile_checkpoint(trained_run / "checkpoints" / "best.ckpt", run / "checkpoints" / "best.ckpt", marker)
    args = {"predict-ckpt": ["predict", path, "--data", sample_data, "--out", tmp_path / "p"],
            "predict-run": ["predict", run, "--data", sample_data, "--out", tmp_path / "p"],
            "export": ["export", path, "--out", tmp_path / "m.onnx"],
            "kfold": ["kfold", run.parent, "--data", sample_data, "--out", tmp_path / "k"],
            "serve": ["serve", path, "--port", "1"]}[command]
    code, text = run_cli(args, capsys)
    assert code == 2 and "holds Python objects besides tensors (posix.system)" in text, text
    assert "Traceback" not in text and not marker.exists()
