"""Precision and recall of `trashseg audit` on label errors planted into the generated dataset.

    python bench/audit_planted.py [--train 128] [--share 0.1] [--epochs 15] [--folds 2] [--out runs/bench_audit]

The generated dataset's labels are exact (its pixels are drawn from them). A share of its train annotations is
corrupted (class swaps, dropped objects, shifted polygons, duplicates as another class: analysis/planted.py), a
model is trained out-of-fold on the corrupted labels (`split`, `train --all-folds`), `trashseg audit` ranks
suspects from the out-of-fold probabilities, and the top of the list is scored against what was planted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import update_section  # noqa: E402

from trashseg.analysis.planted import plant_errors, score_audit  # noqa: E402
from trashseg.data.sample import write_sample_dataset  # noqa: E402

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "small_cpu.yaml"


def trashseg(*args: object) -> None:
    subprocess.run([sys.executable, "-m", "trashseg", *map(str, args)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=128, help="generated train images")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--share", type=float, default=0.1, help="share of annotations corrupted")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_audit"))
    parser.add_argument("--doc", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    data = args.out / "data"
    write_sample_dataset(data, n_train=args.train, n_val=8, n_test=8, size=args.size, seed=args.seed)
    clean = json.loads((data / "train.json").read_text())
    corrupted, planted = plant_errors(clean, args.share, seed=args.seed)
    (data / "train.json").write_text(json.dumps(corrupted))
    settings = [
        "--set",
        f"data.cache_dir={args.out / 'cache'}",
        "--set",
        f"train.epochs={args.epochs}",
        "--set",
        f"train.val_every={args.epochs}",
        "--set",
        "train.loggers=[csv]",
    ]
    start = time.perf_counter()
    trashseg("split", data, "--folds", args.folds)
    trashseg("train", RECIPE, "--data", data, "--all-folds", args.folds, "--out", args.out / "runs", *settings)
    trashseg("audit", args.out / "runs", "--data", data, "--out", args.out / "audit", *settings[:2])
    minutes = (time.perf_counter() - start) / 60
    issues = json.loads((args.out / "audit" / "issues.json").read_text())
    at_n = score_audit(issues, planted)
    at_2n = score_audit(issues, planted, top=2 * len(planted))
    print(json.dumps({"at_planted": at_n, "at_twice": at_2n, "listed": len(issues)}, indent=2))
    fold_miou = [
        json.loads(m.read_text())["best"]["miou"] for m in sorted((args.out / "runs").glob("fold*/metrics.json"))
    ]
    kinds = ", ".join(f"{k} {v:.2f}" for k, v in at_n["recall_by_kind"].items())
    body = (
        f"`python bench/audit_planted.py --train {args.train} --share {args.share} --epochs {args.epochs} "
        f"--folds {args.folds}`: generated data ({args.train} train images at {args.size}²), "
        f"{len(planted)} errors planted in {len(clean['annotations'])} annotations (swap, drop, shift, duplicate "
        "in turn, on objects of at least 0.5% of the image), small_cpu Unet-lite0 trained out-of-fold "
        f"({args.folds} folds × {args.epochs} epochs) on the corrupted labels, then `trashseg audit` on the "
        f"out-of-fold probabilities (fold models' val mIoU {', '.join(f'{m:.2f}' for m in fold_miou)}). "
        f"{platform.machine()} CPU, {os.cpu_count()} cores, "
        f"{minutes:.1f} min in all, {time.strftime('%Y-%m-%d')}.\n\n"
        "| top of the list | precision | recall |\n| --- | ---: | ---: |\n"
        f"| planted count ({at_n['top']}) | {at_n['precision']:.2f} | {at_n['recall']:.2f} |\n"
        f"| twice that ({at_2n['top']}) | {at_2n['precision']:.2f} | {at_2n['recall']:.2f} |\n\n"
        f"Recall at the planted count by kind: {kinds}. {len(issues)} suspects listed in all. Precision counts "
        "the listed items that point at a planted error (a moved polygon and the hole it left are two true "
        "findings); recall counts planted errors found by at least one item."
    )
    update_section(args.doc, "Label-error audit on planted errors (bench/audit_planted.py)", body)


if __name__ == "__main__":
    main()
