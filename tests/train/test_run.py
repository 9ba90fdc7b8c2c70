"""End-to-end training on generated data: learnability, exact resume, NaN stop, run folder contents."""

import csv
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from tests.helpers import QUICK, RECIPE, Payload, quick_cfg, run_cli
from trashseg.config import load_config
from trashseg.errors import TrashsegError
from trashseg.infer.export import export_run
from trashseg.infer.predictor import Predictor
from trashseg.models.onnx import OnnxSegmenter
from trashseg.models.segmenter import Segmenter
from trashseg.train.run import build_data, build_trainer, train


class Crash(pl.Callback):
    """Simulates a machine dying at the start of epoch `at` (after the previous epoch's checkpoint)."""

    def __init__(self, at: int):
        self.at = at

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.at:
            raise RuntimeError("simulated crash")


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_learns_generated_data(tmp_path):
    """Learnability: the small recipe (as the demo runs it, ~1 min) must clearly beat a model that predicts only
    background (mIoU ≈ 0.08 here); measured 0.29–0.34 over several runs."""
    from trashseg.data.sample import write_sample_dataset

    write_sample_dataset(tmp_path / "data")
    cfg = load_config(
        RECIPE, [f"data.root={tmp_path / 'data'}", f"data.cache_dir={tmp_path / 'cache'}", "train.loggers=[csv]"]
    )
    best = train(cfg, tmp_path / "run")
    assert best["miou"] > 0.2, best
    assert sum(v is not None and v > 0.2 for v in best["iou"][1:]) >= 4, best  # several objects, not just one
    run = tmp_path / "run"
    assert (run / "checkpoints" / "best.ckpt").exists() and (run / "checkpoints" / "last.ckpt").exists()
    assert (run / "plots" / "confusion_best.png").stat().st_size > 1000
    assert load_config(run / "config.yaml") == cfg
    assert json.loads((run / "metrics.json").read_text())["best"]["miou"] == best["miou"]


def test_resume_reproduces_the_next_epoch(sample_data, tmp_path):
    straight = tmp_path / "straight"
    train(quick_cfg(sample_data, tmp_path), straight)
    broken = tmp_path / "broken"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(quick_cfg(sample_data, tmp_path), broken, extra_callbacks=[Crash(at=1)])
    assert len(_history(broken)) == 1
    train(quick_cfg(sample_data, tmp_path), broken, resume=True)
    a, b = _history(straight), _history(broken)
    assert [r["epoch"] for r in b] == [0, 1]
    assert b[1]["miou"] == pytest.approx(a[1]["miou"], abs=1e-9)
    assert b[1]["iou"] == a[1]["iou"]


def test_resume_with_dataloader_workers_reproduces_the_next_epoch(sample_data, tmp_path):
    """Lightning builds a resumed run's loader iterator before setting the sampler's epoch, and workers prefetch
    at once: without SamplerEpoch the resumed epoch would start in epoch 0's order (issue 16.7's kill test)."""
    extra = ("train.num_workers=2", "train.max_steps_per_epoch=1", "augment.image_size=32", "model.weights=null")
    train(quick_cfg(sample_data, tmp_path, *extra), tmp_path / "straight")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(quick_cfg(sample_data, tmp_path, *extra), tmp_path / "broken", extra_callbacks=[Crash(at=1)])
    train(quick_cfg(sample_data, tmp_path, *extra), tmp_path / "broken", resume=True)
    assert _history(tmp_path / "broken") == _history(tmp_path / "straight")


def test_logit_adjustment_is_stored_with_the_model_and_survives_resume(sample_data, tmp_path):
    """The bias comes from the training data's class weights: it is written into config.yaml and the checkpoint,
    so the loaded model predicts with it, and a resumed run keeps it instead of refusing a changed model."""
    extra = ("loss.class_weights=sqrt_inverse", "loss.logit_adjustment=0.5", "augment.image_size=32")
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(quick_cfg(sample_data, tmp_path, *extra), run, extra_callbacks=[Crash(at=1)])
    train(quick_cfg(sample_data, tmp_path, *extra), run, resume=True)
    weights = build_data(quick_cfg(sample_data, tmp_path, *extra)).weights
    bias = load_config(run / "config.yaml").model.logit_bias
    assert bias == pytest.approx((-0.5 * weights.log()).tolist(), abs=1e-5)
    model = Segmenter.load(run)
    images = torch.randint(0, 255, (1, 32, 32, 3), dtype=torch.uint8)
    with torch.no_grad():
        shift = model(images) - model.outputs(images)[0]
    assert shift[0, :, 5, 7].tolist() == pytest.approx(bias, abs=1e-5)


class Worsening(pl.Callback):
    """Makes val mIoU fall every epoch (runs before the checkpoint callbacks, which Lightning always puts last)."""

    def on_validation_end(self, trainer, pl_module):
        trainer.callback_metrics["val/mIoU"] = torch.tensor(1.0 - trainer.current_epoch)


def test_last_checkpoint_follows_the_last_epoch_when_val_stops_improving(sample_data, tmp_path):
    train(quick_cfg(sample_data, tmp_path), tmp_path / "run", extra_callbacks=[Worsening()])
    epochs = {
        name: torch.load(tmp_path / "run" / "checkpoints" / f"{name}.ckpt", weights_only=False)["epoch"]
        for name in ("best", "last")
    }
    assert epochs == {"best": 0, "last": 1}


def test_existing_run_and_missing_resume_are_named(sample_data, tmp_path):
    with pytest.raises(TrashsegError, match="last.ckpt not found"):
        train(quick_cfg(sample_data, tmp_path), tmp_path / "none", resume=True)


def test_nan_loss_stops_with_message_and_keeps_checkpoint(sample_data, tmp_path):
    run = tmp_path / "nan"
    cfg = quick_cfg(sample_data, tmp_path, "train.epochs=3", "optim.lr=1e30", "optim.warmup_epochs=0")
    with pytest.raises(TrashsegError, match=r"loss became (nan|inf).*lower optim.lr.*The run stopped"):
        train(cfg, run)


class PoisonWeights(pl.Callback):
    """Makes the loss NaN from the start of epoch `at` on."""

    def __init__(self, at: int):
        self.at = at

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.at:
            with torch.no_grad():
                next(pl_module.segmenter.net.parameters()).fill_(float("nan"))


@pytest.mark.parametrize("at", [0, 1])
def test_nan_loss_message_names_only_a_checkpoint_that_exists(sample_data, tmp_path, at):
    run = tmp_path / "nan"
    with pytest.raises(TrashsegError, match=rf"loss became nan at epoch {at}") as info:
        train(quick_cfg(sample_data, tmp_path), run, extra_callbacks=[PoisonWeights(at)])
    last = run / "checkpoints" / "last.ckpt"
    assert last.exists() == (at == 1)
    assert (f"its last good checkpoint is kept: {last}" in str(info.value)) == (at == 1)
    assert ("stopped before its first checkpoint" in str(info.value)) == (at == 0)


def test_resume_refuses_a_last_ckpt_with_a_pickled_payload(sample_data, tmp_path, capsys):
    marker, run = tmp_path / "pwned", tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {}, "loops": Payload(marker)}, run / "checkpoints" / "last.ckpt")
    code, text = run_cli(
        ["train", RECIPE, "--data", sample_data, "--out", run, "--resume", "--set", f"data.cache_dir={tmp_path / 'c'}"],
        capsys,
    )
    assert code == 2 and "--resume: " in text and "last.ckpt holds Python objects besides tensors" in text, text
    assert "Traceback" not in text and not marker.exists()


def test_out_that_is_a_file_is_named(sample_data, tmp_path, capsys):
    out = tmp_path / "run.txt"
    out.write_text("not a run folder")
    code, text = run_cli(["train", RECIPE, "--data", sample_data, "--out", out], capsys)
    assert code == 2 and f"cannot create folder {out}: {out} is a file" in text, text


def test_cli_train_and_set_override(sample_data, tmp_path, capsys, caplog):
    out = tmp_path / "cli"
    args = ["train", RECIPE, "--data", sample_data, "--out", out, "--set", f"data.cache_dir={tmp_path / 'c'}"]
    for item in QUICK + ["train.epochs=1"]:
        args += ["--set", item]
    with caplog.at_level(logging.INFO), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, text = run_cli(args, capsys)
    assert code == 0, text
    assert "mIoU" in text and (out / "metrics.json").exists()
    assert "GPU available" in caplog.text  # Lightning's own records reach the log...
    assert "Tip:" not in caplog.text and "estimate number of stepping batches" not in caplog.text  # ...not its noise
    assert not [w for w in caught if "LeafSpec" in str(w.message)]
    code, text = run_cli(args, capsys)
    assert code == 2 and "already holds a run" in text
    code, text = run_cli(["train", RECIPE, "--data", sample_data, "--set", "train.epoks=1"], capsys)
    assert code == 2 and "train.epoks: unknown key" in text


def test_set_help_shows_its_list_example(capsys):
    code, text = run_cli(["train", "--help"], capsys)
    assert code == 0 and "data.classes=[a,b]" in " ".join(text.split())


@pytest.mark.slow
def test_ddp_two_cpu_processes_with_gloo(sample_data, tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "trashseg",
        "train",
        str(RECIPE),
        "--data",
        str(sample_data),
        "--out",
        str(out),
        "--set",
        f"data.cache_dir={tmp_path / 'c'}",
        "--set",
        "train.devices=2",
        "--set",
        "train.accelerator=cpu",
        *sum([["--set", q] for q in QUICK + ["train.epochs=1"]], []),
    ]
    env = {**os.environ, "PL_DISABLE_FORK": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "world_size: 2" in (proc.stdout + proc.stderr) or "distributed_backend=gloo" in (proc.stdout + proc.stderr)
    assert (out / "checkpoints" / "last.ckpt").exists()
    # one confusion matrix over the whole val split, summed across both ranks: every labelled val pixel counted once
    cfg = load_config(RECIPE, [f"data.root={sample_data}", f"data.cache_dir={tmp_path / 'c'}", *QUICK])
    val = build_data(cfg).val
    labelled = sum(int((val[i]["mask"] != cfg.data.ignore_index).sum()) for i in range(len(val)))
    last = json.loads((out / "history.jsonl").read_text().splitlines()[-1])
    assert last["pixels"] == labelled, (last["pixels"], labelled)


def test_a_schedule_fitted_to_the_time_limit_ends_when_the_budget_does(sample_data, tmp_path):
    """A time-boxed recipe on a fast machine: the learning rate comes down to its floor by the time limit and the
    run stops there, far short of its epoch cap, with a checkpoint to score."""
    extra = ["train.epochs=500", "train.time_limit_minutes=0.25", "train.fit_schedule_to_time_limit=true"]
    train(quick_cfg(sample_data, tmp_path, *extra, "optim.lr=0.01", "optim.min_lr_ratio=0"), tmp_path / "run")
    with open(tmp_path / "run" / "logs" / "csv" / "launch_0" / "metrics.csv") as f:
        lrs = [float(row["lr"]) for row in csv.DictReader(f) if row["lr"]]
    assert max(lrs) > 0.009 and lrs[-1] < 0.001, (max(lrs), lrs[-1])  # the step the budget ran out in: near the floor
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert 0 < last["epoch"] < 499


def test_a_time_fitted_schedule_refuses_several_devices(sample_data, tmp_path):
    extra = ["train.time_limit_minutes=1", "train.fit_schedule_to_time_limit=true", "train.devices=2"]
    with pytest.raises(TrashsegError, match="fit_schedule_to_time_limit runs on one device only"):
        build_trainer(quick_cfg(sample_data, tmp_path, *extra), tmp_path / "run")


@pytest.mark.parametrize(("crop", "named"), [("120", "120"), ("[96, 120]", "[96, 120]")])
def test_a_crop_the_architecture_cannot_take_is_named(sample_data, tmp_path, capsys, crop, named):
    args = ["train", RECIPE, "--data", sample_data, "--out", tmp_path / "run", "--set", f"data.cache_dir={tmp_path}/c"]
    for key in ("model.arch=FPN", "model.params={}", f"augment.crop_size={crop}"):
        args += ["--set", key]
    code, text = run_cli(args, capsys)
    assert code == 2 and f"augment.crop_size={named}: FPN on tu-tf_efficientnet_lite0 needs sizes divisible by 32" in (
        text
    )
    assert "use 96 or 128" in text and "Traceback" not in text, text


def test_a_height_width_size_trains_predicts_and_exports(sample_data, tmp_path):
    """Wide video frames keep their shape: an [H, W] size runs through the cache, training, the saved model,
    the predictor and ONNX export."""
    sizes = ("augment.image_size=[32, 64]", "augment.crop_size=[32, 32]", "data.cache_size=[32, 64]")
    run = tmp_path / "run"
    train(quick_cfg(sample_data, tmp_path, "train.epochs=1", "train.max_steps_per_epoch=1", *sizes), run)
    model = Segmenter.load(run)
    assert model.image_size == (32, 64)
    seen = []

    def spy(batch: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(batch.shape[1:3]))
        return model(batch)

    mask = Predictor(spy, model.image_size, model.infer).predict_masks([np.zeros((45, 120, 3), np.uint8)])[0]
    assert mask.shape == (45, 120) and seen and set(seen) == {(32, 64)}
    assert export_run(run, tmp_path / "m.onnx")["max_abs_prob_diff"] < 1e-4
    assert OnnxSegmenter(tmp_path / "m.onnx").image_size == (32, 64)
