"""``trashseg demo``: every stage that exists, on generated data, in a few minutes on a 2-core CPU."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from trashseg.config import load_config
from trashseg.data.check import check_dataset, summarize
from trashseg.data.sample import write_sample_dataset
from trashseg.fileio import atomic_write_json

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "small_cpu.yaml"


def run_demo(out: Path, console: Console) -> None:
    start = time.perf_counter()
    data = out / "data"
    console.rule("1. generated dataset")
    console.print(write_sample_dataset(data), f"→ {data}")
    console.rule("2. data check")
    cfg = load_config(RECIPE, [f"data.root={data}", f"data.cache_dir={out / 'cache'}"])
    summary = summarize(check_dataset(data, cfg.data.classes))
    atomic_write_json(out / "data_check.json", summary)
    console.print({s["file"].split("/")[-1]: {"errors": s["errors"], "warnings": s["warnings"]}
                   for s in summary["splits"]})
    console.rule("3. train the small recipe")
    from trashseg.train.run import train

    best = train(cfg, out / "runs" / "small_cpu", console=console)
    console.print(f"best val mIoU {best['miou']:.4f} at epoch {best['epoch']} → {out / 'runs' / 'small_cpu'}")
    console.rule(f"done in {time.perf_counter() - start:.0f} s")
