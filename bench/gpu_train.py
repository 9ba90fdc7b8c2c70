"""GPU training throughput: trashseg's trainer end to end vs the bare compiled train-step ceiling, same run.

Models: UPerNet Swin-B and DeepLabV3+ SE-ResNeXt101 at 512², bf16, channels_last, batch 16. The trainer runs
on real JPEGs (a TrashCan subset copied next to the repo) with the seed augmentation preset and copy-paste on;
the ceiling is forward + loss + backward + AdamW step of the same compiled model on tensors already on the GPU.
Target: trainer ≥ 85% of the ceiling. Reference (issue, one H200, smp 0.6, torch 2.11): UPerNet Swin-B 134 img/s
eager, 203 compiled; naive fp32 56.

    # here, once: copy a subset of TrashCan into bench_data/ and fetch the wheels the GPU image lacks into .whl/
    python bench/gpu_train.py --prepare --data ../shared/datasets/trashcan && bash bench/gpu_wheels.sh
    # on the GPU machine (device tool, carry bench_data and .whl): installs the wheels, runs this
    bash bench/gpu_run.sh train
    # here, before spending device time: the same code paths on CPU at toy counts (no compile; figures in /tmp)
    python bench/gpu_train.py --smoke

Each figure is measured on its own and the table is rewritten after each, so a failure or a timeout keeps the rest.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import traceback
from pathlib import Path

import lightning.pytorch as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import update_section  # noqa: E402

MODELS = {
    "UPerNet Swin-B": "configs/upernet_swin_b.yaml",
    "DeepLabV3+ SE-ResNeXt101": "configs/deeplabv3plus_seresnext101.yaml",
}
BATCH, SIZE, STEPS, WARMUP = 16, 512, 60, 15
SUBSET = Path("bench_data")
DEVICE = "cuda"


def smoke(data: Path) -> None:
    """Toy counts on CPU: checks the script end to end without a GPU (its figures mean nothing)."""
    global BATCH, STEPS, WARMUP, DEVICE, SUBSET
    BATCH, STEPS, WARMUP, DEVICE, SUBSET = 2, 3, 1, "cpu", Path("/tmp/trashseg_gpu_smoke")
    shutil.rmtree(SUBSET, ignore_errors=True)
    prepare(data, n=8, n_val=2)


def start(smoke_run: bool, data: Path, out: Path | None) -> Path:
    """Smoke mode, or a GPU, or exit; returns the output folder (a smoke run's toy figures stay in /tmp)."""
    if smoke_run:
        smoke(data)
        return out or SUBSET / "out"
    if not torch.cuda.is_available():
        sys.exit("no GPU: run this on the GPU machine (see the module docstring), or --smoke to check it on CPU")
    return out or Path("runs/bench_gpu")


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def prepare(data: Path, n: int = 1000, n_val: int = 64) -> None:
    """Copy n train images (+ their annotations) and the val json's first n_val images: ~35 MB of real JPEGs.

    n ≥ (STEPS + 1) × BATCH, so that the timed steps lie inside one epoch (no epoch-boundary refill timed).
    """
    for name, count in (("train.json", n), ("val.json", n_val)):
        coco = json.loads((data / name).read_text())
        coco["images"] = coco["images"][:count]
        ids = {i["id"] for i in coco["images"]}
        coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
        for img in coco["images"]:
            dst = SUBSET / img["file_name"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(data / img["file_name"], dst)
        (SUBSET / name).write_text(json.dumps(coco))


class Timed(Exception):
    """Raised once the timed steps are done: skips the epoch-end validation and checkpoints (device time)."""


class StepTimer(pl.Callback):
    """Wall time of the steps after warm-up, synchronised so that queued GPU work is counted."""

    def __init__(self):
        self.start = self.seconds = 0.0

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step in (WARMUP, STEPS):
            sync()
            if trainer.global_step == WARMUP:
                self.start = time.perf_counter()
            else:
                self.seconds = time.perf_counter() - self.start
                raise Timed


def trainer_rate(recipe: str, out: Path, compile_: bool) -> float:
    from trashseg.config import load_config
    from trashseg.train.run import train

    cfg = load_config(
        recipe,
        [
            f"data.root={SUBSET}",
            "data.classes=" + json.dumps(_classes()),
            "model.weights=null",
            "train.precision=bf16-mixed",
            f"train.batch_size={BATCH}",
            f"train.num_workers={12 if DEVICE == 'cuda' else 2}",
            "train.epochs=1",
            f"train.max_steps_per_epoch={STEPS + 1}",
            f"train.compile={str(compile_ and DEVICE == 'cuda').lower()}",
            "augment.preset=seed",
            "augment.copy_paste.prob=0.5",
            "train.loggers=[csv]",
            f"data.cache_size={SIZE}",
            f"data.cache_dir={out / 'cache'}",
        ],
    )
    timer = StepTimer()
    try:
        train(cfg, out / f"{cfg.name}_{'compiled' if compile_ else 'eager'}", extra_callbacks=[timer])
    except Timed:
        pass
    if not timer.seconds:
        raise RuntimeError(
            f"the epoch ended before step {STEPS}: {SUBSET} needs ≥ {(STEPS + 1) * BATCH} training "
            "images (rerun --prepare)"
        )
    return (STEPS - WARMUP) * BATCH / timer.seconds


def ceiling_rate(recipe: str) -> float:
    from trashseg.config import load_config
    from trashseg.models import create_model

    cfg = load_config(recipe, ["model.weights=null"])
    model = create_model(cfg.model, len(_classes())).to(DEVICE, memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    step_model = torch.compile(model) if DEVICE == "cuda" else model
    x = torch.randn(BATCH, 3, SIZE, SIZE, device=DEVICE).to(memory_format=torch.channels_last)
    y = torch.randint(0, len(_classes()), (BATCH, SIZE, SIZE), device=DEVICE)

    def step():
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            out = step_model(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            loss = torch.nn.functional.cross_entropy(out, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(WARMUP):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(STEPS - WARMUP):
        step()
    sync()
    return (STEPS - WARMUP) * BATCH / (time.perf_counter() - start)


def _classes() -> list[str]:
    from trashseg.config import load_config

    return load_config("configs/data/trashcan.yaml").data.classes


def measured(what: str, fn, *args) -> float | None:
    """fn's img/s, or None after logging its error: one failure must not cost the other figures of the run."""
    try:
        rate = fn(*args)
    except Exception as exc:  # noqa: BLE001 - logged with its traceback and shown as "failed"; the run goes on
        print(f"{what} failed:", "".join(traceback.format_exception(exc))[-3000:], file=sys.stderr, flush=True)
        return None
    print(f"{what}: {rate:.1f} img/s", flush=True)
    return rate


def cell(rate: float | None) -> str:
    return "failed" if rate is None else f"{rate:.0f}"


def ratio(compiled: float | None, ceiling: float | None) -> str:
    return f"{compiled / ceiling:.0%}" if compiled and ceiling else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="toy counts on CPU, to check the script without a GPU")
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/trashcan"))
    parser.add_argument("--out", type=Path, help="default runs/bench_gpu, or /tmp/trashseg_gpu_smoke/out with --smoke")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    args = parser.parse_args()
    if args.prepare:
        prepare(args.data)
        return
    args.out = start(args.smoke, args.data, args.out)
    device = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU smoke run"
    head = [
        f"{device}, torch {torch.__version__}, bf16, channels_last, batch {BATCH}, {SIZE}², img/s over steps "
        f"{WARMUP}–{STEPS} ({time.strftime('%Y-%m-%d')}).",
        "",
        "| model | bare compiled step (ceiling) | trainer compiled | trainer eager | compiled / ceiling |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    rows = []
    for name in args.models:
        recipe = MODELS[name]
        ceiling = measured(f"{name} ceiling", ceiling_rate, recipe)
        compiled = measured(f"{name} trainer compiled", trainer_rate, recipe, args.out, True)
        eager = measured(f"{name} trainer eager", trainer_rate, recipe, args.out, False)
        rows.append(f"| {name} | {cell(ceiling)} | {cell(compiled)} | {cell(eager)} | {ratio(compiled, ceiling)} |")
        update_section(
            args.out / "benchmarks_gpu.md", "GPU training throughput (bench/gpu_train.py)", "\n".join([*head, *rows])
        )
    print("\n".join([*head, *rows]))


if __name__ == "__main__":
    main()
