"""GPU training throughput: trashseg's trainer end to end vs the bare compiled train-step ceiling, same run.

Models: UPerNet Swin-B and DeepLabV3+ SE-ResNeXt101 at 512², bf16, channels_last, batch 16. The trainer runs
on real JPEGs (a TrashCan subset copied next to the repo) with the seed augmentation preset and copy-paste on;
the ceiling is forward + loss + backward + AdamW step of the same compiled model on tensors already on the GPU.
Target: trainer ≥ 85% of the ceiling. Reference (issue, one H200, smp 0.6, torch 2.11): UPerNet Swin-B 134 img/s
eager, 203 compiled; naive fp32 56.

    # here, once: copy a subset of TrashCan into bench_data/ and fetch the wheels the GPU image lacks into .whl/
    python bench/gpu_train.py --prepare --data ../shared/datasets/trashcan && bash bench/gpu_wheels.sh
    # on the GPU machine (device tool, carry bench_data and .whl): installs the wheels, runs this and gpu_infer.py
    bash bench/gpu_run.sh
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import update_section  # noqa: E402

MODELS = {"UPerNet Swin-B": "configs/upernet_swin_b.yaml", "DeepLabV3+ SE-ResNeXt101":
          "configs/deeplabv3plus_seresnext101.yaml"}
BATCH, SIZE, STEPS, WARMUP = 16, 512, 60, 15
SUBSET = Path("bench_data")


def prepare(data: Path, n: int = 400) -> None:
    """Copy n train images (+ their annotations) and the val json's first 64 images: ~15 MB of real JPEGs."""
    for name, count in (("train.json", n), ("val.json", 64)):
        coco = json.loads((data / name).read_text())
        coco["images"] = coco["images"][:count]
        ids = {i["id"] for i in coco["images"]}
        coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
        for img in coco["images"]:
            dst = SUBSET / img["file_name"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(data / img["file_name"], dst)
        (SUBSET / name).write_text(json.dumps(coco))


class StepTimer(pl.Callback):
    """Wall time of the steps after warm-up, synchronised so that queued GPU work is counted."""

    def __init__(self):
        self.start = self.seconds = 0.0

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step in (WARMUP, STEPS):
            torch.cuda.synchronize()
            if trainer.global_step == WARMUP:
                self.start = time.perf_counter()
            else:
                self.seconds = time.perf_counter() - self.start
                trainer.should_stop = True


def trainer_rate(recipe: str, out: Path, compile_: bool) -> float:
    from trashseg.config import load_config
    from trashseg.train.run import train

    cfg = load_config(recipe, [f"data.root={SUBSET}", "data.classes=" + json.dumps(_classes()),
                               "model.weights=null", "train.precision=bf16-mixed", f"train.batch_size={BATCH}",
                               "train.num_workers=12", "train.epochs=1", "train.val_every=1",
                               f"train.max_steps_per_epoch={STEPS + 1}", f"train.compile={str(compile_).lower()}",
                               "augment.preset=seed", "augment.copy_paste.prob=0.5", "train.loggers=[csv]",
                               f"data.cache_size={SIZE}", f"data.cache_dir={out / 'cache'}"])
    timer = StepTimer()
    train(cfg, out / f"{cfg.name}_{'compiled' if compile_ else 'eager'}", extra_callbacks=[timer])
    return (STEPS - WARMUP) * BATCH / timer.seconds


def ceiling_rate(recipe: str) -> float:
    from trashseg.config import load_config
    from trashseg.models import create_model

    cfg = load_config(recipe, ["model.weights=null"])
    model = create_model(cfg.model, len(_classes())).cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    step_model = torch.compile(model)
    x = torch.randn(BATCH, 3, SIZE, SIZE, device="cuda").to(memory_format=torch.channels_last)
    y = torch.randint(0, len(_classes()), (BATCH, SIZE, SIZE), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = step_model(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            loss = torch.nn.functional.cross_entropy(out, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(WARMUP):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(STEPS - WARMUP):
        step()
    torch.cuda.synchronize()
    return (STEPS - WARMUP) * BATCH / (time.perf_counter() - start)


def _classes() -> list[str]:
    from trashseg.config import load_config

    return load_config("configs/data/trashcan.yaml").data.classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/trashcan"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench_gpu"))
    args = parser.parse_args()
    if args.prepare:
        prepare(args.data)
        return
    if not torch.cuda.is_available():
        sys.exit("no GPU: run this on the GPU machine (see the module docstring)")
    rows = []
    for name, recipe in MODELS.items():
        ceiling = ceiling_rate(recipe)
        eager = trainer_rate(recipe, args.out, compile_=False)
        compiled = trainer_rate(recipe, args.out, compile_=True)
        rows.append(f"| {name} | {ceiling:.0f} | {eager:.0f} | {compiled:.0f} | {compiled / ceiling:.0%} |")
        print(rows[-1], flush=True)
    text = "\n".join([f"{torch.cuda.get_device_name()}, torch {torch.__version__}, bf16, channels_last, batch {BATCH}, "
                      f"{SIZE}², img/s over steps {WARMUP}–{STEPS} ({time.strftime('%Y-%m-%d')}).", "",
                      "| model | bare compiled step (ceiling) | trainer eager | trainer compiled | compiled / ceiling |",
                      "| --- | ---: | ---: | ---: | ---: |", *rows])
    print(text)
    update_section(args.out / "benchmarks_gpu.md", "GPU training throughput (bench/gpu_train.py)", text)


if __name__ == "__main__":
    main()
