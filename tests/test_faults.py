"""Fault injection (issue 16.7): SIGKILL ``trashseg train`` and ``trashseg predict`` at random points, rerun them
the way a user would, and get what an uninterrupted run gets, with no orphaned worker and no stray temporary."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import QUICK, RECIPE, run_cli
from trashseg.config import load_config
from trashseg.procs import process_running
from trashseg.train.run import train

pytestmark = pytest.mark.slow
KILLS = 3
# Two epochs (one resume point) from random init: converting pretrained weights on the first use of a cache
# draws from the global RNG, which would make the first run differ from later ones whatever the kills do.
TRAIN = [
    *QUICK,
    "train.max_steps_per_epoch=1",
    "train.batch_size=2",
    "augment.image_size=32",
    "train.num_workers=2",
    "model.weights=null",
]


def _descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc (psutil is not a dependency)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _run(args: list, log: Path, kill_after: float | None = None) -> tuple[int, float, set[int]]:
    """Run `trashseg ARGS`; with `kill_after`, SIGKILL it that long after its first worker process appeared, so
    that the kill lands in the work rather than in the 5-10 s of imports. Returns (exit code, seconds from the
    first worker to the end, every descendant seen)."""
    with open(log, "a") as out:
        proc = subprocess.Popen([sys.executable, "-m", "trashseg", *map(str, args)], stdout=out, stderr=out)
    seen: set[int] = set()
    working_since = None
    while proc.poll() is None:
        seen |= _descendants(proc.pid)
        working_since = working_since or (time.monotonic() if seen else None)
        if kill_after is not None and working_since and time.monotonic() - working_since > kill_after:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            break
        time.sleep(0.05)
    return proc.returncode, time.monotonic() - working_since if working_since else 0.0, seen


def _assert_no_orphans(pids: set[int]) -> None:
    end = time.monotonic() + 5
    while time.monotonic() < end and any(process_running(p) for p in pids):
        time.sleep(0.1)
    assert not [p for p in pids if process_running(p)], "workers outlived their killed parent"


def _killed_then_finished(command, straight_seconds: float, log: Path, seed: int) -> None:
    """KILLS runs of `command()` killed at random points of an uninterrupted run's working time, then one run to
    the end."""
    rng = random.Random(seed)
    codes = []
    for _ in range(KILLS):
        code, _, seen = _run(command(), log, kill_after=rng.uniform(0.05, 0.7) * straight_seconds)
        _assert_no_orphans(seen)
        codes.append(code)
    assert -signal.SIGKILL in codes, f"every run ended before its kill ({codes}): nothing was tested"
    code, _, _ = _run(command(), log)
    assert code == 0, log.read_text()[-3000:]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from trashseg.data.sample import write_sample_dataset

    root = tmp_path_factory.mktemp("faults_data")
    write_sample_dataset(root, n_train=6, n_val=2, n_test=16, size=64, seed=0)
    return root


@pytest.fixture(scope="module")
def straight_run(tiny_data, tmp_path_factory) -> tuple[Path, float]:
    """The uninterrupted run (in this process: no imports to wait for) and its duration."""
    tmp = tmp_path_factory.mktemp("faults_straight")
    start = time.monotonic()
    train(load_config(RECIPE, [f"data.root={tiny_data}", f"data.cache_dir={tmp / 'cache'}", *TRAIN]), tmp / "run")
    return tmp / "run", time.monotonic() - start


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def test_killed_training_resumes_to_the_uninterrupted_result(tiny_data, straight_run, tmp_path):
    straight, seconds = straight_run
    run, cache = tmp_path / "run", tmp_path / "cache"
    base = [
        "train",
        RECIPE,
        "--data",
        tiny_data,
        "--out",
        run,
        "--set",
        f"data.cache_dir={cache}",
        *sum([["--set", s] for s in TRAIN], []),
    ]
    # a user reruns with --resume once a checkpoint exists (before that, --resume refuses and says so)
    _killed_then_finished(
        lambda: base + ["--resume"] * (run / "checkpoints/last.ckpt").exists(), seconds, tmp_path / "log.txt", seed=0
    )
    assert _history(run) == _history(straight)
    assert json.loads((run / "metrics.json").read_text()) == json.loads((straight / "metrics.json").read_text())
    a, b = (torch.load(r / "checkpoints/last.ckpt", weights_only=False)["state_dict"] for r in (straight, run))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not list(run.rglob("*.tmp*")) and not list(cache.rglob("*.tmp*"))


def test_killed_predict_reruns_to_the_uninterrupted_result(tiny_data, straight_run, tmp_path, capsys):
    model = straight_run[0]

    def args(out: Path) -> list:
        return [
            "predict",
            model,
            "--data",
            tiny_data,
            "--out",
            out,
            "--save-probs",
            "--workers",
            "2",
            "--set",
            "infer.batch_size=2",
        ]

    start = time.monotonic()
    assert run_cli(args(tmp_path / "straight"), capsys)[0] == 0
    seconds = time.monotonic() - start
    out = tmp_path / "killed"
    _killed_then_finished(lambda: args(out), seconds, tmp_path / "log.txt", seed=1)
    masks = sorted(p.relative_to(tmp_path / "straight") for p in (tmp_path / "straight" / "masks").rglob("*.png"))
    assert len(masks) == 16 and masks == sorted(p.relative_to(out) for p in (out / "masks").rglob("*.png"))
    for rel in masks:
        assert np.array_equal(
            cv2.imread(str(tmp_path / "straight" / rel), cv2.IMREAD_UNCHANGED),
            cv2.imread(str(out / rel), cv2.IMREAD_UNCHANGED),
        ), rel
    assert not list(out.rglob("*.tmp*"))
