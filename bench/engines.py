"""Inference engines on CPU, side by side on one trained run: network-only img/s at batch 8 of PyTorch fp32 and bf16
autocast, ONNX Runtime fp32 and int8 (QDQ, the shipped format, and QOperator for comparison), and the val mIoU
int8 gives up against fp32. Writes its section of docs/benchmarks.md.

    python bench/engines.py RUN [--calib 64] [--rounds 5] [--reuse]

RUN: a run folder whose config's dataset is there (TrashCan: configs/small_cpu_trashcan.yaml). Runs
``trashseg export RUN --int8`` (RUN/model.onnx, RUN/model.int8.onnx, both val mIoUs), then times every engine in
turn, round-robin, in this one process: on a shared machine the ratios hold, the absolute img/s do not.
``--reuse`` times the models (and reports the scores) that an earlier ``trashseg export RUN --int8`` left in RUN.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import cpu_model, update_section  # noqa: E402

from trashseg.config import InferConfig  # noqa: E402
from trashseg.data.coco import load_named_split  # noqa: E402
from trashseg.infer.export import export_run  # noqa: E402
from trashseg.infer.quantize import calibration_batches, quantize_onnx, sample_images  # noqa: E402
from trashseg.machine import cpu_flags as machine_flags  # noqa: E402
from trashseg.models.engines import Bf16Segmenter, int8_path, native_bf16  # noqa: E402
from trashseg.models.onnx import OnnxSegmenter  # noqa: E402
from trashseg.models.segmenter import Segmenter  # noqa: E402

BATCH = 8


def cpu_flags() -> str:
    """The instruction sets that decide which engine wins: bf16 and int8 dot products, or neither."""
    flags = machine_flags()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    return ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in wanted)


def rates(engines: dict[str, Callable[[torch.Tensor], torch.Tensor]], batch: torch.Tensor, rounds: int) -> dict:
    """Median img/s of each engine over `rounds` rounds, the engines taking turns within each round."""
    timings: dict[str, list[float]] = {name: [] for name in engines}
    with torch.inference_mode():
        for run in engines.values():
            run(batch)  # warm-up: first-call allocations, oneDNN and ONNX Runtime kernel selection
        for _ in range(rounds):
            for name, run in engines.items():
                start = time.perf_counter()
                run(batch)
                timings[name].append(len(batch) / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--calib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--reuse", action="store_true", help="Time RUN's existing int8 export (and its scores).")
    args = parser.parse_args()

    fp32 = args.run / "model.onnx"
    if args.reuse:  # what an earlier `trashseg export RUN --int8` wrote and scored
        exported = json.loads(Path(f"{int8_path(fp32)}.json").read_text())["quantization"]
    else:
        exported = export_run(args.run, int8=True, calib=args.calib)
    print(exported, flush=True)
    calib, reuse = exported["calibration_images"], " --reuse" if args.reuse else ""
    model = Segmenter.load(args.run)
    val = load_named_split(model.config.data, "val")
    batch = torch.from_numpy(calibration_batches(model, sample_images(val, BATCH), InferConfig(batch_size=BATCH))[0])
    with tempfile.TemporaryDirectory() as tmp:
        qoperator = Path(tmp) / "qoperator.onnx"
        train = load_named_split(model.config.data, "train")
        calibration = calibration_batches(model, sample_images(train, BATCH), model.infer)  # QOperator: speed only
        engines = {
            "torch (fp32)": model,
            "torch-bf16 (autocast)": Bf16Segmenter(model, "cpu"),
            "onnx (fp32)": OnnxSegmenter(fp32),
            "onnx-int8 (QDQ, shipped)": OnnxSegmenter(int8_path(fp32)),
        }
        try:
            quantize_onnx(fp32, qoperator, calibration, quant_format="QOperator")  # timed, not scored
            shutil.copy(f"{int8_path(fp32)}.json", f"{qoperator}.json")
            engines["int8 QOperator (not shipped)"] = OnnxSegmenter(qoperator)
            qoperator_note = ""
        except AssertionError as exc:  # ONNX Runtime's quantiser's own checks
            qoperator_note = (
                f"\nQOperator (fused QLinearConv) could not be made: ONNX Runtime's quantiser failed ({exc}).\n"
            )
        measured = rates(engines, batch, args.rounds)
        masks = {name: engines[name](batch).argmax(1) for name in ("onnx (fp32)", "onnx-int8 (QDQ, shipped)")}
        agreement = float((masks["onnx (fp32)"] == masks["onnx-int8 (QDQ, shipped)"]).float().mean())
    onnx_rate = measured["onnx (fp32)"]
    rows = [f"| {name} | {rate:.2f} | {rate / onnx_rate:.2f}× |" for name, rate in measured.items()]
    print("\n".join(rows))
    size = "×".join(str(s) for s in batch.shape[1:3])
    body = f"""Machine: {cpu_model()} ({cpu_flags()}); native bf16 here: {"yes" if native_bf16("cpu") else "no"}.
{datetime.date.today()}, `python bench/engines.py {args.run.name} --calib {calib} --rounds {args.rounds}{reuse}`, run
{args.run.name} ({model.config.model.arch}-{model.config.model.encoder}, {model.config.name}). Network only (uint8
in, logits out), batch {BATCH} of TrashCan val images at {size}, median of {args.rounds} round-robin rounds in one
process. The machine was shared with other jobs: compare the ratios, not the img/s.

| engine | img/s | vs onnx fp32 |
| --- | ---: | ---: |
{chr(10).join(rows)}

Val mIoU (`trashseg export --int8`: the run's own test-time settings, {calib} calibration
images from train, scored as `trashseg evaluate` does): fp32 **{exported["val_miou_fp32"]:.4f}**, int8
**{exported["val_miou_int8"]:.4f}** (Δ {exported["val_miou_int8"] - exported["val_miou_fp32"]:+.4f}); on the timed batch
int8's masks agree with fp32's on {agreement:.1%} of the pixels.
{qoperator_note}"""
    update_section(args.out, "Inference engines on CPU (bench/engines.py)", body)


if __name__ == "__main__":
    main()
