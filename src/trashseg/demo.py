"""``trashseg demo``: the whole pipeline on generated data, in a few minutes on a 2-core CPU.

sample → data check → folds → train two small models → predict with flip TTA → evaluate → dense CRF →
soft ensemble → overlays → submission CSV + check → pseudo-labels → ONNX export with parity → EDA and evaluation
reports (HTML). The CRF and ONNX steps need the `crf` and `onnx` extras; without them the demo says so and runs
the rest.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from trashseg.analysis.eda import write_eda
from trashseg.analysis.overlays import write_overlays
from trashseg.analysis.report import write_report
from trashseg.config import RECIPES, load_config
from trashseg.data.check import check_dataset, summarize
from trashseg.data.coco import load_split
from trashseg.data.masks import mask_cache
from trashseg.data.sample import write_sample_dataset
from trashseg.data.splits import default_groups, make_folds, write_folds
from trashseg.data.stats import class_stats
from trashseg.ensemble.voting import ensemble_folders
from trashseg.errors import MissingExtra, TrashsegError, require_extra
from trashseg.evaluate import evaluate
from trashseg.fileio import atomic_write_json
from trashseg.infer.export import export_run
from trashseg.infer.predict import predict_split
from trashseg.infer.submit import submit
from trashseg.models.segmenter import best_run, load_model
from trashseg.postprocess.apply import crf_folder
from trashseg.postprocess.crf import require_crf
from trashseg.pseudo import write_pseudo
from trashseg.submission import check_submission
from trashseg.train.run import train

RECIPE = RECIPES / "small_cpu.yaml"
MODELS = {
    "unet_lite0": [],
    "fpn_lite0": [
        "model.arch=FPN",
        "model.params={decoder_segmentation_channels: 64, decoder_pyramid_channels: 64}",
        "train.seed=7",
    ],
}


MARKER = ".trashseg-demo"


def fresh_out(out: Path) -> None:
    """Every demo starts from scratch (its runs would otherwise refuse to overwrite themselves), but only a
    folder an earlier demo made is ever deleted."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise TrashsegError(
                f"{out} is not empty and was not made by trashseg demo; delete it or choose another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).touch()


def _has_extra(check: Callable[[], object], console: Console) -> bool:
    """Whether an optional step can run; if not, the demo says which extra it needs and goes on."""
    try:
        check()
    except MissingExtra as exc:
        console.print(f"[yellow]skipped: {exc}[/yellow]", highlight=False)
        return False
    return True


def _has_onnx() -> None:
    require_extra("onnx", "onnx", "ONNX export")
    require_extra("onnxruntime", "onnx", "ONNX export's parity check")


def run_demo(out: Path, console: Console) -> None:
    start = time.perf_counter()
    fresh_out(out)
    data = out / "data"
    console.rule("1. generated dataset")
    console.print(write_sample_dataset(data), f"→ {data}")

    console.rule("2. data check")
    base = [f"data.root={data}", f"data.cache_dir={out / 'cache'}", "train.loggers=[csv]"]
    cfg = load_config(RECIPE, base)
    summary = summarize(check_dataset(cfg.data))
    atomic_write_json(out / "data_check.json", summary)
    console.print(
        {s["file"].split("/")[-1]: {"errors": s["errors"], "warnings": s["warnings"]} for s in summary["splits"]}
    )

    console.rule("3. grouped, stratified folds")
    train_split = load_split(data / "train.json", data, cfg.data.classes)
    stats = class_stats(train_split, mask_cache(train_split, cfg.data))
    folds = make_folds(stats, default_groups(train_split)[0], 3)
    write_folds(train_split, folds, data / "folds")
    console.print(f"3 folds by batch folder → {data / 'folds'}; val sizes {[len(f.val) for f in folds]}")

    runs = {}
    for step, (name, extra) in enumerate(MODELS.items(), start=4):
        console.rule(f"{step}. train {name}")
        runs[name] = out / "runs" / name
        best = train(load_config(RECIPE, base + extra), runs[name])
        console.print(f"{name}: best val mIoU {best['miou']:.4f} (epoch {best['epoch']})")

    console.rule("6. predict val and test (flip TTA), evaluate, CRF, ensemble")
    val = load_split(data / "val.json", data, cfg.data.classes)
    test = load_split(data / "test.json", data, cfg.data.classes)
    masks = mask_cache(val, cfg.data)
    infer = cfg.infer.model_copy(update={"hflip": True})
    scores = {}
    for name, run in runs.items():
        model = load_model(run)
        for split, tag in ((val, "val"), (test, "test")):
            predict_split(model, split, out / "preds" / f"{name}_{tag}", cfg=infer, save_probs=True, workers=0)
        scores[f"{name} + flip TTA"] = evaluate(out / "preds" / f"{name}_val", val, masks).miou
    first = next(iter(runs))
    if _has_extra(require_crf, console):
        crf_folder(out / "preds" / f"{first}_val", val, out / "preds" / f"{first}_val_crf", cfg=cfg.crf)
        scores[f"{first} + flip TTA + CRF"] = evaluate(out / "preds" / f"{first}_val_crf", val, masks).miou
    for tag in ("val", "test"):
        ensemble_folders(
            [out / "preds" / f"{n}_{tag}" for n in runs], out / "preds" / f"ensemble_{tag}", "soft", save_probs=True
        )
    scores["soft ensemble of both"] = evaluate(out / "preds" / "ensemble_val", val, masks).miou
    table = Table(title="val mIoU (competition metric, 256×256)")
    table.add_column("predictions")
    table.add_column("mIoU", justify="right")
    for name, value in scores.items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)
    console.print(
        "overlays:", write_overlays(out / "preds" / "ensemble_val", val, out / "overlays", data=cfg.data, limit=8)
    )

    console.rule("7. submission, pseudo-labels, ONNX")
    csv = out / "submission.csv"
    submit(out / "preds" / "ensemble_test", test, csv)
    problems = check_submission(csv, test)
    console.print(f"{csv}: {len(test.images)} rows, submission check: {'OK' if not problems else problems}")
    console.print("pseudo-labels:", write_pseudo(out / "preds" / "ensemble_test", out / "pseudo", 0.9))
    if _has_extra(_has_onnx, console):
        console.print("ONNX:", export_run(runs[first]))

    console.rule("8. reports")
    write_eda(train_split, out / "reports" / "eda", mask_cache(train_split, cfg.data))
    write_report(
        [out / "preds" / f"{n}_val" for n in runs] + [out / "preds" / "ensemble_val"],
        val,
        out / "reports" / "eval",
        masks,
    )
    console.rule(f"done in {time.perf_counter() - start:.0f} s — everything is under {out}")
    console.print(f"Overlays: {out / 'overlays'}. Web demo of the best model: trashseg serve {best_run(out / 'runs')}")
    console.print(
        f"Reports (open in a browser): EDA {out / 'reports' / 'eda' / 'index.html'}, evaluation "
        f"{out / 'reports' / 'eval' / 'index.html'}",
        soft_wrap=True,
    )
