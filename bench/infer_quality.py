"""Quality on TrashCan val for each inference trick, in one table: single model, + flip TTA, + multi-scale,
+ dense CRF, a soft ensemble of the given runs, and + pseudo-labels (retrain with confident val pixels).

    python bench/infer_quality.py --runs RUN_A RUN_B [RUN_C] [--pseudo-minutes 10]

Runs are trashseg run folders trained on ../shared/datasets/trashcan (e.g. by bench/train_trashcan.py).
Scores: competition mIoU on masks resized to 256² (nearest), predictions made at each image's own size.
Pseudo-labels here are transductive, as the seed team used them on the competition's test set: the val images
(never their labels) are pseudo-labelled by the ensemble and mixed into training, then val is scored.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import update_section  # noqa: E402

from trashseg.config import CRFConfig, InferConfig, load_config  # noqa: E402
from trashseg.data.coco import load_split  # noqa: E402
from trashseg.data.masks import MaskCache  # noqa: E402
from trashseg.ensemble.voting import ensemble_folders  # noqa: E402
from trashseg.evaluate import evaluate  # noqa: E402
from trashseg.infer.predict import predict_split  # noqa: E402
from trashseg.models.segmenter import load_model  # noqa: E402
from trashseg.postprocess.apply import crf_folder  # noqa: E402
from trashseg.pseudo import write_pseudo  # noqa: E402
from trashseg.train.run import train  # noqa: E402

# Upscales only: the benchmark's models see 64² inputs, where 0.75 and 1.25 round back to 64 (multiples of 32)
# and the "multi-scale" row would repeat the single scale. 1 / 1.5 / 2 feed them 64, 96 and 128.
SCALES = [1.0, 1.5, 2.0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/trashcan"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench_infer_quality"))
    parser.add_argument("--pseudo-minutes", type=float, default=10.0, help="0 skips the pseudo-label row")
    args = parser.parse_args()
    cfg = load_config("configs/data/trashcan.yaml", [f"data.root={args.data}"])
    val = load_split(args.data / "val.json", args.data, cfg.data.classes)
    gt = MaskCache(val, args.out / "cache" / "masks")
    rows: list[tuple[str, float, float]] = []

    def predict(name: str, run: Path, infer: InferConfig, probs: bool = False) -> Path:
        out = args.out / name
        stats = predict_split(load_model(run), val, out, cfg=infer, save_probs=probs, workers=1)
        score = evaluate(out, val, gt).miou
        rows.append((name, score, stats["img_per_s"] or float("nan")))
        return out

    first = args.runs[0]
    predict("single model", first, InferConfig())
    flip = predict("+ flip TTA", first, InferConfig(hflip=True), probs=True)
    predict(f"+ flip + scales {'/'.join(f'{s:g}' for s in SCALES)}", first, InferConfig(hflip=True, scales=SCALES))
    start = time.perf_counter()
    crf_folder(flip, val, args.out / "+ flip TTA + dense CRF", cfg=CRFConfig(iterations=5))
    rows.append(
        (
            "+ flip TTA + dense CRF (5 it.)",
            evaluate(args.out / "+ flip TTA + dense CRF", val, gt).miou,
            len(val.images) / (time.perf_counter() - start),
        )
    )
    members = [flip] + [
        predict(f"model {k + 2} + flip TTA", run, InferConfig(hflip=True), probs=True)
        for k, run in enumerate(args.runs[1:])
    ]
    ensemble = args.out / "soft ensemble"
    if len(members) > 1:
        ensemble_folders(members, ensemble, "soft", save_probs=True)
        rows.append((f"soft ensemble of {len(members)} (flip TTA)", evaluate(ensemble, val, gt).miou, float("nan")))
    if args.pseudo_minutes > 0:
        source = ensemble if len(members) > 1 else flip
        summary = write_pseudo(source, args.out / "pseudo", 0.9)
        run_cfg = load_config(
            first / "config.yaml",
            [
                f"data.extra=[{args.out / 'pseudo'}]",
                "data.extra_ratio=0.3",
                f"train.time_limit_minutes={args.pseudo_minutes}",
            ],
        )
        pseudo_run = args.out / f"pseudo_run_{time.strftime('%H%M%S')}"
        train(run_cfg, pseudo_run)
        predict(
            f"retrained with pseudo-labels ({summary['kept_pixel_share']:.0%} of val pixels) + flip",
            pseudo_run,
            InferConfig(hflip=True),
        )
    base = rows[0][1]
    lines = [
        f"TrashCan val, 452 images, scored at 256² (competition mIoU); {platform.machine()} CPU, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}. Runs: {', '.join(map(str, args.runs))}.",
        "",
        "| predictions | mIoU | Δ vs single | img/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {name} | {score:.4f} | {score - base:+.4f} | {rate:.1f} |" for name, score, rate in rows]
    text = "\n".join(lines)
    print(text)
    update_section(Path("docs/benchmarks.md"), "Inference tricks on TrashCan (bench/infer_quality.py)", text)


if __name__ == "__main__":
    main()
