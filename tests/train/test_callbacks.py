import json

from trashseg.train.callbacks import ValidationReport


def test_history_keeps_one_line_per_epoch_when_an_epoch_is_repeated(tmp_path):
    """A crash between a validation and its checkpoint makes the resumed run validate that epoch again."""
    report = ValidationReport(tmp_path, ["bg", "a"])
    for epoch, miou in [(0, 0.1), (1, 0.2), (1, 0.25), (2, 0.3)]:
        report._append_history({"epoch": epoch, "miou": miou})
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"epoch": 0, "miou": 0.1},
        {"epoch": 1, "miou": 0.25},
        {"epoch": 2, "miou": 0.3},
    ]


def test_prediction_images_go_to_tensorboard_and_nowhere_without_it(tmp_path):
    from types import SimpleNamespace

    import torch
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from trashseg.train.callbacks import PredictionImages

    def model(images):  # logits: class 1 on the left half
        logits = torch.zeros(len(images), 2, *images.shape[1:3])
        logits[:, 1, :, : images.shape[2] // 2] = 1
        return logits

    batch = {
        "image": torch.full((3, 16, 20, 3), 90, dtype=torch.uint8),
        "mask": torch.ones(3, 16, 20, dtype=torch.uint8),
    }
    callback = PredictionImages(["bg", "paper"], count=2)
    tb = TensorBoardLogger(tmp_path, name="tb", version=0)
    trainer = SimpleNamespace(
        loggers=[CSVLogger(tmp_path), tb], sanity_checking=False, is_global_zero=True, global_step=7
    )
    callback.on_validation_batch_end(trainer, model, None, batch, 1)  # only the first batch is drawn
    callback.on_validation_batch_end(trainer, model, None, batch, 0)
    tb.experiment.flush()
    events = EventAccumulator(str(tmp_path / "tb" / "version_0"))
    events.Reload()
    (image,) = events.Images("val/predictions")
    assert image.step == 7 and image.height > 2 * 16 and image.width == 2 * 20 + 6  # two panels: prediction | truth
    calls = []
    trainer.loggers = [CSVLogger(tmp_path)]
    callback.on_validation_batch_end(trainer, lambda x: calls.append(x), None, batch, 0)
    assert calls == []  # no image logger: not even a forward pass


def test_a_checkpoint_that_fills_the_disk_is_named_and_the_last_one_kept(tmp_path, monkeypatch):
    """Issue 27.2: Lightning's checkpoint write failing half-way with ENOSPC is DiskFull naming the run folder; the
    previous last.ckpt stays whole (train --resume starts from it) and the torn temporary is removed."""
    import errno
    import io
    import os

    import pytest
    import torch
    from lightning.fabric.plugins.io import torch_io

    from trashseg.errors import DiskFull
    from trashseg.train.callbacks import AtomicCheckpointIO

    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 1, "w": torch.ones(1000)}, last)

    def filling_save(checkpoint, path):
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with open(path, "wb") as fh:
            fh.write(buffer.getvalue()[: buffer.tell() // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(torch_io, "_atomic_save", filling_save)
    with pytest.raises(DiskFull, match=r"checkpoints is full \(no space left on its disk\): cannot write last.ckpt"):
        AtomicCheckpointIO().save_checkpoint({"epoch": 2, "w": torch.ones(1000)}, last)
    assert os.listdir(last.parent) == ["last.ckpt"]
    assert torch.load(last, weights_only=True)["epoch"] == 1
