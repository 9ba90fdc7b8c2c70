"""Quality on real data in a fixed wall-clock budget: trashseg's recipe against a plain loop, with and without
the same pretrained encoder.

Every row trains on ../shared/datasets/trashcan on this machine's CPU for the same number of minutes (everything
inside the budget: trashseg's cache filling and validations included), then is scored the same way: val split,
competition mIoU on masks resized to 256² (nearest). The plain loops see 256² inputs (their training size);
trashseg's model goes through ``trashseg predict``'s Predictor with the recipe's own ``infer`` settings (its TTA,
as ``trashseg predict`` uses them), which takes each frame at its own size, feeds it to the network at the
recipe's training size (``augment.image_size``, square or not) and returns probabilities at the frame's size; they
are resized to 256² (bilinear) before the argmax, as the competition resized its predicted masks.

Plain loop (the issue's reference): smp Unet, Adam 1e-3, plain CE, resize to 256 only, no augmentation, batch 8,
fp32, the model of the last step. ``plain_random``: ResNet34 from random init, inputs /255.
``plain_pretrained``: the recipe's encoder with the same offline ImageNet weights and its own normalisation —
the fair baseline, since it isolates what trashseg adds beyond the weights.

    python bench/train_trashcan.py [--minutes 20] [--rows plain_random,plain_pretrained,ours]
                                   [--recipe configs/small_cpu_trashcan.yaml] [--set key=value ...]

Rows already in ``--out``/results.json for the same budget are kept, so rows can run in separate invocations.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import commit, cpu_model, update_section  # noqa: E402

from trashseg.config import Config, InferConfig, ModelConfig, load_config  # noqa: E402
from trashseg.data.coco import load_split  # noqa: E402
from trashseg.data.dataset import SegmentationDataset  # noqa: E402
from trashseg.data.masks import MaskCache  # noqa: E402
from trashseg.fileio import atomic_write_json  # noqa: E402
from trashseg.infer.predictor import Predictor  # noqa: E402
from trashseg.metrics import ConfusionMeter  # noqa: E402
from trashseg.models import create_model  # noqa: E402
from trashseg.models.pretrained import encoder_normalization  # noqa: E402
from trashseg.models.segmenter import Segmenter  # noqa: E402
from trashseg.train.run import train  # noqa: E402

EVAL_SIZE = 256
ROWS = ("plain_random", "plain_pretrained", "ours")


def loader(data: Path, split: str, classes: list[str], cache: Path, train: bool) -> DataLoader:
    coco = load_split(data / f"{split}.json", data, classes, require_annotations=True)
    ds = SegmentationDataset(coco, MaskCache(coco, cache / "masks"), A.Compose([A.Resize(EVAL_SIZE, EVAL_SIZE)]))
    return DataLoader(ds, batch_size=8 if train else 16, shuffle=train, num_workers=1, drop_last=train)


@torch.no_grad()
def score(predict: Callable[[Any], torch.Tensor], val: DataLoader, num_classes: int) -> dict:
    meter = ConfusionMeter(num_classes)
    for batch in val:
        meter.update(predict(batch["image"]).argmax(1), batch["mask"])
    s = meter.compute()
    return {"miou": s.miou, "iou": s.iou}


def plain_loop(
    model: torch.nn.Module, normalize: Callable[[torch.Tensor], torch.Tensor], train_loader: DataLoader, minutes: float
) -> dict:
    """The naive loop: everything a first notebook does, nothing more."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)
    deadline, steps = time.monotonic() + minutes * 60, 0
    model.train()
    while time.monotonic() < deadline:
        for batch in train_loader:
            loss = loss_fn(model(normalize(batch["image"])), batch["mask"].long())
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if time.monotonic() >= deadline:
                break
    model.eval()
    return {"steps": steps, "epochs": round(steps * 8 / len(train_loader.dataset), 2)}


def normalizer(mean: list[float], std: list[float]) -> Callable[[torch.Tensor], torch.Tensor]:
    m = torch.tensor(mean).view(1, 3, 1, 1) * 255
    s = torch.tensor(std).view(1, 3, 1, 1) * 255
    return lambda x: (x.permute(0, 3, 1, 2).float() - m) / s


def run_plain(row: str, cfg: Config, args: argparse.Namespace, val: DataLoader) -> dict:
    torch.manual_seed(0)
    classes = cfg.data.classes
    if row == "plain_random":
        model_cfg, norm = ModelConfig(arch="Unet", encoder="resnet34"), normalizer([0, 0, 0], [1, 1, 1])
    else:  # the recipe's encoder and weights, in a plain Unet
        model_cfg = ModelConfig(arch="Unet", encoder=cfg.model.encoder, weights=cfg.model.weights)
        norm = normalizer(*encoder_normalization(cfg.model.encoder, cfg.model.weights))
    model = create_model(model_cfg, len(classes))
    info = plain_loop(model, norm, loader(args.data, "train", classes, args.out / "cache", True), args.minutes)
    return {
        **info,
        "encoder": model_cfg.encoder,
        "weights": model_cfg.weights,
        **score(lambda x: model(norm(x)), val, len(classes)),
    }


def run_ours(cfg: Config, args: argparse.Namespace, val: DataLoader) -> dict:
    run = args.out / f"ours_{args.minutes:g}min_{time.strftime('%Y%m%d_%H%M%S')}"
    start = time.monotonic()
    train(cfg, run)
    elapsed = (time.monotonic() - start) / 60
    out = {
        "recipe": " ".join([args.recipe, *(f"--set {s}" for s in args.set)]),
        "minutes": round(elapsed, 1),
        "run": str(run),
    }
    for which in ("last", "best"):
        ckpt = run / "checkpoints" / f"{which}.ckpt"
        model = Segmenter.load(ckpt if ckpt.exists() else run / "checkpoints" / "last.ckpt")
        infer = InferConfig(batch_size=16).over(model.infer)  # the recipe's own test-time settings, as predict
        out[which] = score(_native_predict(Predictor(model, model.image_size, infer)), val, len(cfg.data.classes))
    out["tta"] = {"hflip": infer.hflip, "vflip": infer.vflip, "scales": infer.scales}  # one config, both checkpoints
    return out


def native_loader(data: Path, classes: list[str], cache: Path) -> DataLoader:
    """Val frames at their own size (480×270 and 480×360 mixed, hence lists), masks at 256² as ``loader``'s."""
    coco = load_split(data / "val.json", data, classes, require_annotations=True)
    ds = SegmentationDataset(coco, MaskCache(coco, cache / "masks"), None)
    return DataLoader(ds, batch_size=16, num_workers=1, collate_fn=_native_batch)


def _native_batch(batch: list[dict]) -> dict:
    size = (EVAL_SIZE, EVAL_SIZE)
    masks = [cv2.resize(b["mask"].numpy(), size, interpolation=cv2.INTER_NEAREST) for b in batch]
    return {"image": [b["image"].numpy() for b in batch], "mask": torch.from_numpy(np.stack(masks))}


def _native_predict(predictor: Predictor) -> Callable[[list[np.ndarray]], torch.Tensor]:
    """Probabilities at each frame's size → 256² (bilinear), stacked for `score`."""
    return lambda images: torch.stack(
        [
            F.interpolate(torch.from_numpy(p)[None], size=(EVAL_SIZE, EVAL_SIZE), mode="bilinear")[0]
            for p in predictor.predict(images)
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/trashcan"))
    parser.add_argument("--recipe", default="configs/small_cpu_trashcan.yaml")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"which of {', '.join(ROWS)} to (re)run")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_trashcan"))
    parser.add_argument(
        "--set", nargs="+", action="extend", default=[], help="recipe overrides, as for `trashseg train --set`"
    )
    parser.add_argument("--name", default="ours", help="row name for this recipe run (compare variants side by side)")
    args = parser.parse_args()
    rows = args.rows.split(",")
    if unknown := set(rows) - set(ROWS):
        parser.error(f"--rows: unknown {sorted(unknown)}; choose from {', '.join(ROWS)}")
    torch.set_num_threads(os.cpu_count() or 1)
    cfg = load_config(
        args.recipe,
        [
            f"data.root={args.data}",
            f"data.cache_dir={args.out / 'cache'}",
            f"train.time_limit_minutes={args.minutes}",
            *args.set,
        ],
    )
    val = loader(args.data, "val", cfg.data.classes, args.out / "cache", False)
    val_native = native_loader(args.data, cfg.data.classes, args.out / "cache")
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    budget = results.setdefault(f"{args.minutes:g}", {})
    for row in rows:
        key = args.name if row == "ours" else row
        budget[key] = run_ours(cfg, args, val_native) if row == "ours" else run_plain(row, cfg, args, val)
        budget[key]["date"] = time.strftime("%Y-%m-%d")
        budget[key]["cpu"] = cpu_model()  # the same recipe runs twice the epochs on some machines than on others
        budget[key]["commit"] = commit()  # a recipe file changes between runs: its name alone does not say which
        budget[key]["command"] = "python " + " ".join(sys.argv)
        atomic_write_json(results_path, results)  # every finished row survives a later crash
        print(key, json.dumps(budget[key])[:300])
    report(results, cfg.data.classes)


def _on(row: dict) -> str:
    """Where and from what a row ran, for rows that recorded it (CPU since 2026-11-29, noon; commit and command
    since 2026-12-02)."""
    where = f", on {row['cpu']}" if "cpu" in row else ""
    return where + (f", commit {row['commit']}: `{row['command']}`" if "commit" in row else "")


def _fmt(v: float | None) -> str:
    return "—" if v is None or v != v else f"{v:.3f}"


def _tta(tta: dict | None) -> str:
    """Rows scored before the recipe's own infer settings were used had no TTA."""
    if not tta:
        return "no TTA"
    parts = [name for name in ("hflip", "vflip") if tta[name]]
    if tta["scales"] != [1.0]:
        parts.append("scales " + ", ".join(f"{v:g}" for v in tta["scales"]))
    return " + ".join(parts) or "no TTA"


def _above(iou: list[float], floor: float = 0.05) -> int:
    """Foreground classes (index 0 = background) above `floor` IoU."""
    return sum(v == v and v > floor for v in iou[1:])


def report(results: dict, classes: list[str]) -> None:
    lines = []
    for minutes, rows in sorted(results.items(), key=lambda kv: float(kv[0])):
        ours = sorted(key for key in rows if key.startswith("ours"))
        cols = [
            (name, rows[key])
            for name, key in (
                ("plain loop, random init", "plain_random"),
                ("plain loop, same pretrained encoder", "plain_pretrained"),
            )
            if key in rows
        ]
        for key in ours:
            last, best = rows[key]["last"], rows[key]["best"]
            # one column when validation kept the last checkpoint (every 20-minute row validates only at the end)
            cols += [(key, last)] if best["iou"] == last["iou"] else [(f"{key} last", last), (f"{key} best", best)]
        fair = rows.get("plain_pretrained", {}).get("miou")
        lines += [f"### {minutes} minutes of training per row", ""]
        lines += [
            f"{key}: `{rows[key]['recipe']}` ({rows[key]['minutes']} min incl. validations, {rows[key]['date']}"
            f"{_on(rows[key])}; predicted with {_tta(rows[key].get('tta'))})."
            for key in ours
        ]
        for key in ("plain_random", "plain_pretrained"):
            if key in rows:
                r = rows[key]
                lines += [
                    f"{key}: Unet-{r['encoder']} weights={r['weights']}, {r['steps']} steps, "
                    f"{r['epochs']} epochs ({r['date']}{_on(r)})."
                ]
        lines += [
            "",
            "| | " + " | ".join(name for name, _ in cols) + " |",
            "| --- |" + " ---: |" * len(cols),
            "| **mIoU** | " + " | ".join(f"**{_fmt(c['miou'])}**" for _, c in cols) + " |",
        ]
        if fair:
            ratios = " | ".join(f"{c['miou'] / fair:.2f}×" for _, c in cols)
            lines += [f"| ratio to the pretrained plain loop | {ratios} |"]
        lines += ["| foreground classes > 0.05 IoU | " + " | ".join(str(_above(c["iou"])) for _, c in cols) + " |"]
        lines += [
            f"| {name} | " + " | ".join(_fmt(c["iou"][i]) for _, c in cols) + " |" for i, name in enumerate(classes)
        ]
        lines += [""]
    text = (
        f"TrashCan val (452 images, 39 videos), scored at {EVAL_SIZE}² with the competition mIoU, on "
        f"{platform.machine()} CPU ({os.cpu_count()} cores). Each budget is wall-clock training time per row. "
        "The plain loops predict from 256² inputs; trashseg's rows from each frame at its own size through the "
        "recipe's Predictor, probabilities resized to 256² (since 2026-11-29, late morning; for square recipes the "
        "same figure as before: 0.1639 both ways on `ours_seed7`). "
        "A recipe gets `last` and `best` columns only where validation kept an earlier checkpoint as best.\n\n"
        + "\n".join(lines)
    )
    print(text)
    update_section(Path("docs/benchmarks.md"), "Training quality on TrashCan (bench/train_trashcan.py)", text)


if __name__ == "__main__":
    main()
