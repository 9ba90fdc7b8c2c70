"""Keeping up with a camera: `trashseg stream` on a generated 30 fps source replayed in real time (a video file
played at its own frame rate, as a camera delivers it: stale frames dropped), per engine (PyTorch fp32, ONNX
Runtime fp32): sustained fps, latency from frame capture to objects out (p50 / p95), frames dropped and the peak
RSS, beside the same engine's network-only rate measured in the same process. Writes docs/benchmarks.md.

    python bench/stream.py [--seconds 20] [--size 640x480] [--tta recipe|none]

The network is the shipped lite0 recipe's (configs/small_cpu_trashcan.yaml: FPN-EfficientNet-Lite0 at 256²) at
random init: speed does not depend on the weights. Each engine runs in a process of its own, so that the peak RSS
(VmHWM) is that engine's alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import cpu_model, update_section  # noqa: E402

from trashseg.config import InferConfig, load_config  # noqa: E402
from trashseg.errors import MissingExtra  # noqa: E402
from trashseg.infer.predictor import Predictor  # noqa: E402
from trashseg.infer.stream import CaptureSource, Stream  # noqa: E402
from trashseg.models.onnx import OnnxSegmenter, export_onnx  # noqa: E402
from trashseg.models.segmenter import Segmenter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "small_cpu_trashcan.yaml"
FPS = 30
TITLE = "Keeping up with a camera (bench/stream.py)"


def write_source(path: Path, seconds: float, width: int, height: int) -> Path:
    """A 30 fps MJPEG AVI of moving discs on a textured floor: frames that differ, as a camera's do."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (width, height))
    rng = np.random.default_rng(0)
    floor = rng.integers(60, 120, (height, width, 3), dtype=np.uint8)
    discs = [(*rng.integers(0, (width, height)).tolist(), int(rng.integers(10, 60))) for _ in range(6)]
    colours = rng.integers(0, 255, (6, 3)).tolist()
    for i in range(int(seconds * FPS) + FPS):
        frame = floor.copy()
        for k, (x, y, r) in enumerate(discs):
            cv2.circle(frame, ((x + 3 * i * (k + 1)) % width, y), r, colours[k], -1)
        writer.write(frame)
    writer.release()
    return path


def build(engine: str, tmp: Path) -> tuple[object, InferConfig]:
    """The recipe's network on `engine`, and the recipe's own test-time settings."""
    cfg = load_config(RECIPE, ["model.weights=null"])
    module = Segmenter.from_config(cfg).eval()
    if engine == "torch":
        return module, cfg.infer
    path = tmp / "model.onnx"
    size = cfg.augment.image_size
    export_onnx(module, path, image_size=size, meta={"classes": cfg.data.classes, "image_size": size})
    return OnnxSegmenter(path), cfg.infer


def network_ms(model, size: int, calls: int = 20) -> float:
    """One forward pass at the network's input size, ms (the floor under any per-frame figure)."""
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8))
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        start = time.perf_counter()
        for _ in range(calls):
            model(x)
    return (time.perf_counter() - start) / calls * 1000


def peak_rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def one_engine(engine: str, video: Path, seconds: float, tta: str) -> dict:
    """The child process's measurement: network alone, then the stream for `seconds`."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            model, infer = build(engine, Path(tmp))
        except MissingExtra as exc:
            return {"engine": engine, "skipped": str(exc)}
        if tta == "none":
            infer = InferConfig()
        views = (1 + infer.hflip) * (1 + infer.vflip) * len(infer.scales)
        size = model.image_size if isinstance(model.image_size, int) else model.image_size[0]
        net = network_ms(model, size) * views
        first = cv2.cvtColor(cv2.VideoCapture(str(video)).read()[1], cv2.COLOR_BGR2RGB)
        Predictor(model, model.image_size, infer).predict([first])  # warm-up, as a service would before frames
        stream = Stream(model, CaptureSource(str(video), 10**8, pace=True), infer=infer)
        threading.Timer(seconds, stream.stop).start()
        for _ in stream:
            pass
        summary = stream.summary()
    return {
        "engine": engine,
        "views": views,
        "network_ms": net,
        **summary.to_dict(),
        "peak_rss_mib": peak_rss_mib(),
    }


NAMES = {"torch": "PyTorch fp32", "onnx": "ONNX Runtime fp32"}


def row(r: dict) -> str:
    if "skipped" in r:
        return f"| {NAMES[r['engine']]} | not run: {r['skipped']} |||||||"
    return (
        f"| {NAMES[r['engine']]} | {r['network_ms']:.0f} ({1000 / r['network_ms']:.1f} fps) | {r['fps'] or 0:.1f} | "
        f"{r['latency_p50_ms'] or 0:.0f} | {r['latency_p95_ms'] or 0:.0f} | {r['read']} | {r['dropped']} | "
        f"{r['peak_rss_mib']:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--size", default="640x480", help="frame width x height")
    parser.add_argument("--tta", choices=["recipe", "none"], default="recipe")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child: one engine, JSON out
    parser.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_engine(args.one, args.video, args.seconds, args.tta)))
        return
    width, height = (int(v) for v in args.size.split("x"))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        video = write_source(Path(tmp) / "source.avi", args.seconds, width, height)
        for engine in NAMES:
            child = [sys.executable, __file__, "--one", engine, "--video", str(video), "--seconds", str(args.seconds)]
            out = subprocess.run([*child, "--tta", args.tta], check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
            print(row(results[-1]), flush=True)
    tta = "the recipe's horizontal flip (2 network passes a frame)" if args.tta == "recipe" else "no TTA"
    text = "\n".join(
        [
            f"`trashseg stream` on a generated {FPS} fps {width}×{height} source replayed in real time for "
            f"{args.seconds:g} s (a video file played at its frame rate: the model gets the latest frame, stale "
            f"ones are dropped), the shipped lite0 recipe's network (FPN-EfficientNet-Lite0 at 256², random init), "
            f"{tta}. Latency: from the frame's capture to its objects out (probabilities at the frame's size, "
            "connected regions). Network only: the forward passes of one frame at the input size, the same engine "
            f"in the same process. Machine: {cpu_model()}, {date.today().isoformat()}.",
            "",
            "| engine | network only ms (fps) | stream fps | p50 ms | p95 ms | frames read | dropped | peak RSS MiB |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *map(row, results),
            "",
            "Between the network's rate and the stream's: the resize, softmax and upsampling of the probabilities "
            "to the frame's size, the objects, the decoding and colour conversion of each frame, on the same cores.",
        ]
    )
    print(text)
    update_section(ROOT / "docs" / "benchmarks.md", TITLE, text)


if __name__ == "__main__":
    main()
