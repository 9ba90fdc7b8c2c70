"""Quality on real data in a fixed wall-clock budget: trashseg's small recipe vs a plain baseline loop.

Both train from random init on ../shared/datasets/trashcan on this machine's CPU for the same number of minutes
(everything inside the budget: trashseg's cache filling and validations included), then both are scored the same
way: val split, competition mIoU on masks resized to 256² (nearest). The baseline sees 256² inputs (its training size);
trashseg's model goes through ``trashseg predict``'s Predictor, which feeds it at its own training size
(``augment.image_size``) and brings probabilities back to 256².

Baseline (the issue's reference loop): smp Unet-ResNet34, Adam 1e-4, plain CE, resize to 256 only, no
augmentation, batch 8, the model of the last step.

    python bench/train_trashcan.py [--minutes 20] [--recipe configs/small_cpu_trashcan.yaml] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import albumentations as A
import numpy as np
import segmentation_models_pytorch as smp
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import update_section  # noqa: E402

from trashseg.config import InferConfig, load_config  # noqa: E402
from trashseg.data.coco import load_split  # noqa: E402
from trashseg.data.dataset import SegmentationDataset  # noqa: E402
from trashseg.data.masks import MaskCache  # noqa: E402
from trashseg.infer.predictor import Predictor  # noqa: E402
from trashseg.metrics import ConfusionMeter  # noqa: E402
from trashseg.train.module import load_module  # noqa: E402
from trashseg.train.run import train  # noqa: E402

EVAL_SIZE = 256


def val_loader(data: Path, classes: list[str], cache: Path) -> DataLoader:
    split = load_split(data / "val.json", data, classes, require_annotations=True)
    ds = SegmentationDataset(split, MaskCache(split, cache / "masks"), A.Compose([A.Resize(EVAL_SIZE, EVAL_SIZE)]))
    return DataLoader(ds, batch_size=16, num_workers=1)


@torch.no_grad()
def score(predict, loader: DataLoader, num_classes: int) -> dict:
    meter = ConfusionMeter(num_classes)
    for batch in loader:
        meter.update(predict(batch["image"]).argmax(1), batch["mask"])
    s = meter.compute()
    return {"miou": s.miou, "iou": s.iou}


def run_baseline(data: Path, classes: list[str], minutes: float, cache: Path) -> tuple[torch.nn.Module, dict]:
    """The naive loop: everything a first notebook does, nothing more."""
    torch.manual_seed(0)
    split = load_split(data / "train.json", data, classes, require_annotations=True)
    ds = SegmentationDataset(split, MaskCache(split, cache / "masks"), A.Compose([A.Resize(EVAL_SIZE, EVAL_SIZE)]))
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=1, drop_last=True)
    model = smp.Unet("resnet34", encoder_weights=None, classes=len(classes))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)
    deadline, steps, epochs = time.monotonic() + minutes * 60, 0, 0.0
    model.train()
    while time.monotonic() < deadline:
        for batch in loader:
            x = batch["image"].permute(0, 3, 1, 2).float() / 255.0
            loss = loss_fn(model(x), batch["mask"].long())
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if time.monotonic() >= deadline:
                break
        epochs = steps * 8 / len(ds)
    model.eval()
    return model, {"steps": steps, "epochs": round(epochs, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/trashcan"))
    parser.add_argument("--recipe", default="configs/small_cpu_trashcan.yaml")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_trashcan"))
    parser.add_argument("--skip-baseline", action="store_true", help="reuse the baseline figures of a previous run")
    parser.add_argument("--set", nargs="*", default=[], help="recipe overrides, as for `trashseg train --set`")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    cache = args.out / "cache"
    cfg = load_config(args.recipe, [f"data.root={args.data}", f"data.cache_dir={cache}",
                                    f"train.time_limit_minutes={args.minutes}", *args.set])
    classes = cfg.data.classes
    val = val_loader(args.data, classes, cache)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}

    if not args.skip_baseline or "baseline" not in results:
        model, info = run_baseline(args.data, classes, args.minutes, cache)
        results["baseline"] = {**info, **score(lambda x: model(x.permute(0, 3, 1, 2).float() / 255.0), val,
                                                len(classes))}
        print("baseline", results["baseline"]["miou"], info)
        args.out.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2))  # kept even if the trashseg run fails

    run = args.out / f"ours_{time.strftime('%Y%m%d_%H%M%S')}"
    start = time.monotonic()
    train(cfg, run)
    elapsed = (time.monotonic() - start) / 60
    for which in ("last", "best"):
        ckpt = run / "checkpoints" / f"{which}.ckpt"
        module = load_module(ckpt if ckpt.exists() else run / "checkpoints" / "last.ckpt")
        predictor = Predictor(module, module.cfg.augment.image_size, InferConfig(batch_size=16))
        predict = lambda x: torch.from_numpy(np.stack(predictor.predict(list(x.numpy()))))  # noqa: E731
        results[f"ours_{which}"] = {"minutes": round(elapsed, 1), **score(predict, val, len(classes))}
    results["recipe"] = " ".join([args.recipe, *(f"--set {s}" for s in args.set)])
    args.out.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2))
    report(results, classes, args.minutes)


def report(results: dict, classes: list[str], minutes: float) -> None:
    base, last, best = results["baseline"], results["ours_last"], results["ours_best"]
    fmt = lambda v: "—" if v is None or v != v else f"{v:.3f}"  # noqa: E731
    lines = [
        f"TrashCan val (452 images), scored at {EVAL_SIZE}² with the competition mIoU; {minutes:g} min of training "
        f"each from random init on {platform.machine()} CPU ({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}. "
        f"trashseg recipe: `{results['recipe']}`.",
        "",
        "| | baseline loop | trashseg last epoch | trashseg best (val-selected) |",
        "| --- | ---: | ---: | ---: |",
        f"| **mIoU** | **{fmt(base['miou'])}** | **{fmt(last['miou'])}** | {fmt(best['miou'])} |",
        f"| ratio to baseline | 1.00× | {last['miou'] / base['miou']:.2f}× | {best['miou'] / base['miou']:.2f}× |",
    ]
    lines += [f"| {name} | {fmt(b)} | {fmt(l)} | {fmt(x)} |"
              for name, b, l, x in zip(classes, base["iou"], last["iou"], best["iou"])]
    lines += ["", f"Baseline: {base['steps']} steps, {base['epochs']} epochs in the budget."]
    text = "\n".join(lines)
    print(text)
    update_section(Path("docs/benchmarks.md"), "Training quality on TrashCan (bench/train_trashcan.py)", text)


if __name__ == "__main__":
    main()
