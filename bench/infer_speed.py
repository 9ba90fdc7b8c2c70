"""Inference cost on CPU: img/s per TTA setting, ONNX Runtime vs PyTorch, dense CRF s/image, and the peak RSS of
a 5-model soft ensemble over 819 images at 512² with 11 classes (target < 2 GiB). Writes docs/benchmarks.md.

    python bench/infer_speed.py [--data ../shared/datasets/trashcan] [--n 40]

Speed uses the small recipe's architecture (Unet-ResNet18) at random init: cost does not depend on the weights.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import update_section  # noqa: E402

from trashseg.config import CRFConfig, InferConfig, load_config  # noqa: E402
from trashseg.data.coco import load_split  # noqa: E402
from trashseg.data.images import read_image  # noqa: E402
from trashseg.infer.folder import PredictionFolder  # noqa: E402
from trashseg.infer.predictor import Predictor  # noqa: E402
from trashseg.models.onnx import OnnxSegmenter, export_onnx  # noqa: E402
from trashseg.models.segmenter import Segmenter  # noqa: E402
from trashseg.postprocess.crf import dense_crf  # noqa: E402

SIZE = 512
TTA = {
    "none": InferConfig(),
    "hflip": InferConfig(hflip=True),
    "hflip+vflip": InferConfig(hflip=True, vflip=True),
    "scales 0.75,1,1.25,1.5": InferConfig(scales=[0.75, 1.0, 1.25, 1.5]),
    "hflip × 4 scales": InferConfig(hflip=True, scales=[0.75, 1.0, 1.25, 1.5]),
}


def throughput(predictor: Predictor, images: list[np.ndarray], batch: int = 4, masks_only: bool = False) -> float:
    """img/s of predictor.predict (probabilities) or, with masks_only, of predict_masks (what `predict` runs
    without --save-probs or --crf)."""
    run = predictor.predict_masks if masks_only else predictor.predict
    run(images[:batch])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(images), batch):
        run(images[i : i + batch])
    return len(images) / (time.perf_counter() - start)


def speed_rows(images: list[np.ndarray], tmp: Path) -> tuple[list[str], np.ndarray]:
    cfg = load_config("configs/small_cpu.yaml", [f"augment.image_size={SIZE}"])
    module = Segmenter.from_config(cfg).eval()
    onnx_path = tmp / "model.onnx"
    export_onnx(module, onnx_path, image_size=SIZE, meta={"classes": cfg.data.classes, "image_size": SIZE})
    onnx = OnnxSegmenter(onnx_path)
    rows = []
    for name, infer in TTA.items():
        rate = throughput(Predictor(module, SIZE, infer), images)
        rows.append(f"| PyTorch | {name} | {rate:.2f} |")
    for name in ("none", "hflip"):
        bf16 = Predictor(module, SIZE, TTA[name].model_copy(update={"precision": "bf16"}))
        rows.append(f"| PyTorch, infer.precision=bf16 | {name} | {throughput(bf16, images):.2f} |")
    for name in ("none", "hflip"):
        rows.append(f"| ONNX Runtime | {name} | {throughput(Predictor(onnx, SIZE, TTA[name]), images):.2f} |")
    probs = Predictor(module, SIZE, InferConfig()).predict(images[:1])[0]
    return rows, probs


def crf_rows(image: np.ndarray, probs: np.ndarray) -> list[str]:
    rows = []
    for iterations in (2, 5):
        cfg = CRFConfig(iterations=iterations)
        dense_crf(image, probs, cfg)
        start = time.perf_counter()
        for _ in range(3):
            dense_crf(image, probs, cfg)
        rows.append(f"| {iterations} | {(time.perf_counter() - start) / 3:.2f} |")
    return rows


def make_members(root: Path, n_models: int, n_images: int, classes: int) -> list[Path]:
    """Members whose probs files are hard links to a pool of 16 distinct smooth maps: disk stays small while
    the ensemble still opens and decodes one full 11×512² float16 map per image and member."""
    rng = np.random.default_rng(0)
    pool = root / "pool"
    pool.mkdir(parents=True)
    sources = []
    for k in range(16):
        low = rng.random((classes, 16, 16)).astype(np.float32)
        probs = torch.nn.functional.interpolate(torch.from_numpy(low)[None], size=(SIZE, SIZE), mode="bilinear")[0]
        probs = probs.softmax(0).numpy()
        f = PredictionFolder(pool / str(k))
        f.write("x.jpg", probs.argmax(0), probs)
        sources.append((f.probs_path("x.jpg"), f.mask_path("x.jpg")))
    members = []
    for m in range(n_models):
        member = PredictionFolder(root / f"m{m}")
        member.init({"classes": [f"c{c}" for c in range(classes)], "has_probs": True, "val_miou": 0.5 + m / 100})
        for i in range(n_images):
            probs_src, mask_src = sources[(i + m) % len(sources)]
            for src, dst in (
                (probs_src, member.probs_path(f"img{i:04d}.jpg")),
                (mask_src, member.mask_path(f"img{i:04d}.jpg")),
            ):
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.link(src, dst)
        members.append(member.root)
    return members


def ensemble_memory(tmp: Path) -> tuple[float, float]:
    members = make_members(tmp / "members", 5, 819, 11)
    # VmHWM, not ru_maxrss: Linux carries the forking parent's peak into ru_maxrss across exec, which would
    # charge this benchmark process's own memory (models, images) to the ensemble.
    code = (
        "import sys, time; from pathlib import Path; from trashseg.ensemble.voting import "
        "ensemble_folders; t = time.perf_counter(); ensemble_folders([Path(p) for p in sys.argv[2:]], "
        "Path(sys.argv[1]), 'soft'); print(time.perf_counter() - t, "
        "open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp / "ens"), *map(str, members)], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[-2]), int(out[-1]) / 1024 / 1024  # seconds, GiB (VmHWM is in kB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/trashcan"))
    parser.add_argument("--n", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    classes = load_config("configs/data/trashcan.yaml").data.classes
    split = load_split(args.data / "val.json", args.data, classes)
    images = [read_image(split.image_path(img)) for img in split.images[: args.n]]
    with tempfile.TemporaryDirectory() as tmp:
        rows, probs = speed_rows(images, Path(tmp))
        image512 = cv2.resize(images[0], (SIZE, SIZE))
        crf = crf_rows(image512, probs_at(probs, SIZE))
        seconds, gib = ensemble_memory(Path(tmp))
    machine = f"{platform.machine()} CPU, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}"
    text = "\n".join(
        [
            f"Machine: {machine}. Model: Unet-ResNet18 (the small recipe) at {SIZE}² input, batch 4, "
            f"{args.n} TrashCan val images (480×270, resized to {SIZE}² and probabilities brought back to 480×270).",
            "",
            "| runtime | TTA | img/s |",
            "| --- | --- | ---: |",
            *rows,
            "",
            f"Dense CRF (pydensecrf2) on one {SIZE}² image of 11-class probabilities from this model:",
            "",
            "| iterations | s/image |",
            "| ---: | ---: |",
            *crf,
            "",
            f"5-model soft ensemble, 819 images × 11×{SIZE}² float16 probabilities per member: peak RSS "
            f"**{gib:.2f} GiB** (target < 2 GiB), {seconds:.0f} s ({819 / seconds:.1f} img/s).",
        ]
    )
    print(text)
    update_section(Path("docs/benchmarks.md"), "Inference cost on CPU (bench/infer_speed.py)", text)


def probs_at(probs: np.ndarray, size: int) -> np.ndarray:
    t = torch.from_numpy(probs)[None]
    return torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear")[0].numpy()


if __name__ == "__main__":
    main()
