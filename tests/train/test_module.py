"""Checkpoints are read as data, never run as code: every command that opens one goes through Segmenter.load
(issue 16.1)."""

import pytest
import torch

from tests.helpers import hostile_checkpoint, run_cli
from trashseg.errors import TrashsegError
from trashseg.models.segmenter import Segmenter


def test_checkpoints_our_trainer_writes_hold_only_tensors_and_plain_values(trained_run):
    for name in ("best.ckpt", "last.ckpt"):
        assert torch.serialization.get_unsafe_globals_in_checkpoint(trained_run / "checkpoints" / name) == []
    assert Segmenter.load(trained_run / "checkpoints" / "best.ckpt").config.data.num_classes == 11


def test_checkpoint_with_a_pickled_payload_is_refused_without_running_it(trained_run, tmp_path):
    marker = tmp_path / "pwned"
    path = hostile_checkpoint(trained_run / "checkpoints" / "best.ckpt", tmp_path / "evil.ckpt", marker)
    with pytest.raises(
        TrashsegError,
        match=r"checkpoint: .*evil.ckpt holds Python objects besides tensors "
        r"\(posix.system\).*files you trust.*torch.save",
    ):
        Segmenter.load(path)
    assert not marker.exists()


def test_unreadable_or_foreign_checkpoints_are_named(tmp_path):
    corrupt, foreign = tmp_path / "corrupt.ckpt", tmp_path / "foreign.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    torch.save([1, 2, 3], foreign)
    with pytest.raises(TrashsegError, match="checkpoint: cannot read .*corrupt.ckpt as a checkpoint"):
        Segmenter.load(corrupt)
    with pytest.raises(TrashsegError, match="foreign.ckpt: not a trashseg checkpoint"):
        Segmenter.load(foreign)


def test_checkpoints_without_their_weights_are_named(trained_run, tmp_path):
    ckpt = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=True)
    del ckpt["state_dict"][next(iter(ckpt["state_dict"]))]
    torch.save(ckpt, tmp_path / "partial.ckpt")
    with pytest.raises(TrashsegError, match=r"partial.ckpt: its weights do not fit its own config: .*Missing key"):
        Segmenter.load(tmp_path / "partial.ckpt")
    del ckpt["state_dict"]
    torch.save(ckpt, tmp_path / "bare.ckpt")
    with pytest.raises(TrashsegError, match=r"bare.ckpt: a trashseg config but no weights inside \(no state_dict\)"):
        Segmenter.load(tmp_path / "bare.ckpt")


@pytest.mark.parametrize("command", ["predict-ckpt", "predict-run", "export", "kfold", "serve"])
def test_every_command_that_opens_a_checkpoint_refuses_the_payload(trained_run, sample_data, tmp_path, capsys, command):
    marker = tmp_path / "pwned"
    run = tmp_path / "runs" / "fold0"
    path = hostile_checkpoint(trained_run / "checkpoints" / "best.ckpt", run / "checkpoints" / "best.ckpt", marker)
    args = {
        "predict-ckpt": ["predict", path, "--data", sample_data, "--out", tmp_path / "p"],
        "predict-run": ["predict", run, "--data", sample_data, "--out", tmp_path / "p"],
        "export": ["export", path, "--out", tmp_path / "m.onnx"],
        "kfold": ["kfold", run.parent, "--data", sample_data, "--out", tmp_path / "k"],
        "serve": ["serve", path, "--port", "0"],
    }[command]  # serve: any free port; it exits once the load fails
    code, text = run_cli(args, capsys)
    assert code == 2 and "holds Python objects besides tensors (posix.system)" in text, text
    assert "Traceback" not in text and not marker.exists()


def test_resuming_an_old_checkpoint_renames_its_network_keys_ema_included(trained_run):
    """Checkpoints from before the Segmenter hold the network as `model.*`; with EMA, the raw weights sit under
    `current_model_state` beside the averaged ones. Both come back under today's keys and load strictly."""
    from trashseg.train.module import SegmentationModule

    ckpt = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=True)
    new = ckpt["state_dict"]
    old = {k.replace("segmenter.net.", "model.", 1): v for k, v in new.items()}
    assert any(k.startswith("model.") for k in old) and not any(k.startswith("segmenter.") for k in old)
    checkpoint = {"state_dict": dict(old), "current_model_state": dict(old)}
    module = SegmentationModule(Segmenter.load(trained_run).config, new.get("criterion.terms.ce.weight"))
    module.on_load_checkpoint(checkpoint)
    assert checkpoint["state_dict"].keys() == checkpoint["current_model_state"].keys() == new.keys()
    module.load_state_dict(checkpoint["current_model_state"])  # strict: every key found, none left over
