"""Inference speed on CPU of the shipped TrashCan recipe's model, per engine: the network alone against
``trashseg predict --images`` end to end (decode, resize, network, masks back to full size, PNG writes), with and
without hflip TTA; dense CRF s/image; the peak RSS of a 5-model soft ensemble. Writes docs/benchmarks.md.

    python bench/infer_speed.py [--data ../shared/datasets/trashcan] [--n 200] [--quick]

The model is ``configs/small_cpu_trashcan.yaml``'s network (FPN, EfficientNet-Lite0, 256², 17 classes) at random
init: cost does not depend on the weights. ONNX Runtime runs its export; PyTorch bf16 autocast only where the CPU
has AVX512-BF16 or AMX (elsewhere it is slower than fp32). The frames are TrashCan's val images, used in place
through a temporary folder of symlinks (never copied). Timings are ratios taken side by side in one run: rerun on
a quiet machine before trusting the img/s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import cpu_model, update_section  # noqa: E402

from trashseg.config import Config, CRFConfig, load_config  # noqa: E402
from trashseg.data.coco import CocoSplit, load_split  # noqa: E402
from trashseg.data.images import read_image  # noqa: E402
from trashseg.data.masks import MaskCache  # noqa: E402
from trashseg.infer.folder import PredictionFolder  # noqa: E402
from trashseg.infer.image_folder import predict_images  # noqa: E402
from trashseg.infer.predictor import Predictor  # noqa: E402
from trashseg.metrics import COMPETITION_SIZE, ConfusionMeter, resize_nearest  # noqa: E402
from trashseg.models.engines import native_bf16  # noqa: E402
from trashseg.models.onnx import OnnxSegmenter, export_onnx  # noqa: E402
from trashseg.models.segmenter import InferenceModel, Segmenter  # noqa: E402
from trashseg.postprocess.crf import dense_crf  # noqa: E402

RECIPE = "configs/small_cpu_trashcan.yaml"
SIZE = 256  # the recipe's augment.image_size


def has_bf16() -> bool:
    return native_bf16("cpu")  # the rule infer.engine=auto applies


def network_rate(model: InferenceModel, images: list[np.ndarray], batch: int, hflip: bool, bf16: bool) -> float:
    """img/s of the network alone on images already at its input size: one pass per batch, two with hflip."""
    resized = torch.from_numpy(np.stack([cv2.resize(im, (SIZE, SIZE)) for im in images]))
    chunks = resized.split(batch)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    with torch.inference_mode(), autocast:
        model(chunks[0])  # warm-up
        start = time.perf_counter()
        for chunk in chunks:
            model(chunk)
            if hflip:
                model(chunk.flip(2))
    return len(images) / (time.perf_counter() - start)


def end_to_end(model: InferenceModel, photos: Path, out: Path, cfg: Config) -> float:
    """img/s of what ``trashseg predict MODEL --images DIR`` runs (the CLI's function and defaults), listing
    included, into a fresh prediction folder."""
    start = time.perf_counter()
    stats = predict_images(model, photos, out, cfg=cfg)
    seconds = time.perf_counter() - start
    assert stats["predicted"] > 0 and not stats["unreadable"], stats
    return stats["predicted"] / seconds


def disagreement(a: Path, b: Path) -> float:
    """Share of pixels whose class differs between two prediction folders of the same images."""
    fa, fb = PredictionFolder(a), PredictionFolder(b)
    differ = total = 0
    for name in fa.names():
        ma, mb = fa.mask(name), fb.mask(name)
        differ += int((ma != mb).sum())
        total += ma.size
    return differ / total


def resize_miou(split: CocoSplit, cache_dir: Path) -> dict[str, dict[str, float]]:
    """mIoU of either mask_resize for a perfect 256² model (each class's share of every network pixel: the
    ground truth area-averaged to 256²) on every image of `split`: what the resize alone costs, free of a trained
    model's errors. Scored at the image's size and at the competition's 256² (``evaluate``'s default)."""
    cache = MaskCache(split, cache_dir)
    n = len(split.classes)
    meters = {(resize, size): ConfusionMeter(n) for resize in ("probs", "labels") for size in (0, COMPETITION_SIZE)}
    for image in split.images:
        truth = cache.get(image)
        onehot = torch.from_numpy(np.eye(n, dtype=np.float32)[truth]).permute(2, 0, 1)[None]
        probs = F.interpolate(onehot, size=(SIZE, SIZE), mode="area")
        masks = {
            "probs": F.interpolate(probs, size=truth.shape, mode="bilinear", align_corners=False)[0].argmax(0).numpy(),
            "labels": cv2.resize(
                probs[0].argmax(0).numpy().astype(np.uint8),
                (truth.shape[1], truth.shape[0]),
                interpolation=cv2.INTER_NEAREST_EXACT,
            ),
        }
        for (resize, size), meter in meters.items():
            mask = masks[resize]
            meter.update(*((resize_nearest(mask, size), resize_nearest(truth, size)) if size else (mask, truth)))
    return {
        resize: {
            "full size" if size == 0 else f"{size}²": meter.compute().miou
            for (r, size), meter in meters.items()
            if r == resize
        }
        for resize in ("probs", "labels")
    }


def engines(module: Segmenter, tmp: Path) -> dict[str, tuple[InferenceModel, bool]]:
    """Engine name → (model, bf16 autocast)."""
    onnx_path = tmp / "model.onnx"
    meta = {"classes": module.classes, "image_size": module.image_size, "infer": module.infer.model_dump()}
    export_onnx(module, onnx_path, image_size=SIZE, meta=meta)
    found: dict[str, tuple[InferenceModel, bool]] = {"PyTorch fp32": (module, False)}
    if has_bf16():
        found["PyTorch bf16 autocast"] = (module, True)
    found["ONNX Runtime fp32"] = (OnnxSegmenter(onnx_path), False)
    return found


def speed_rows(module: Segmenter, images: list[np.ndarray], photos: Path, tmp: Path, log: Callable) -> list[str]:
    rows = []
    for engine, (model, bf16) in engines(module, tmp).items():
        for hflip in (False, True):
            net = network_rate(model, images, 8, hflip, bf16)
            rates = {}
            for resize in ("probs", "labels"):
                cfg = load_config(
                    RECIPE,
                    [
                        f"infer.hflip={str(hflip).lower()}",
                        f"infer.mask_resize={resize}",
                        "data.allow_external_links=true",  # the symlinks point into the dataset
                        *(["infer.precision=bf16"] if bf16 else []),
                    ],
                )
                rates[resize] = end_to_end(model, photos, tmp / f"{engine}-{hflip}-{resize}", cfg)
            differ = disagreement(tmp / f"{engine}-{hflip}-probs", tmp / f"{engine}-{hflip}-labels")
            row = (
                f"| {engine} | {'hflip' if hflip else 'none'} | {net:.1f} | {rates['probs']:.1f} "
                f"({rates['probs'] / net:.0%}) | {rates['labels']:.1f} ({rates['labels'] / net:.0%}) | {differ:.2%} |"
            )
            log(row)
            rows.append(row)
    return rows


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


def make_members(root: Path, n_models: int, n_images: int, classes: int, size: int = 512) -> list[Path]:
    """Members whose probs files are hard links to a pool of 16 distinct smooth maps: disk stays small while
    the ensemble still opens and decodes one full 11×512² float16 map per image and member."""
    rng = np.random.default_rng(0)
    pool = root / "pool"
    pool.mkdir(parents=True)
    sources = []
    for k in range(16):
        low = rng.random((classes, 16, 16)).astype(np.float32)
        probs = torch.nn.functional.interpolate(torch.from_numpy(low)[None], size=(size, size), mode="bilinear")[0]
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


def linked_frames(data: Path, names: list[str], to: Path) -> Path:
    """A folder of symlinks to the dataset's frames (``<video>/<frame>.jpg``), used in place."""
    for name in names:
        link = to / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to((data / name).resolve())
    return to


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/trashcan"))
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="40 frames, no CRF or ensemble; prints, writes nothing")
    args = parser.parse_args()
    n = 40 if args.quick else args.n
    torch.set_num_threads(os.cpu_count() or 1)
    cfg = load_config(RECIPE)
    split = load_split(args.data / "val.json", args.data, cfg.data.classes)
    chosen = split.images[:n]
    images = [read_image(split.image_path(img)) for img in chosen]
    module = Segmenter.from_config(cfg).eval()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        photos = linked_frames(args.data, [img["file_name"] for img in chosen], tmp / "frames")
        rows = speed_rows(module, images, photos, tmp, print)
        if args.quick:
            return
        probs = Predictor(module, SIZE, cfg.infer).predict([cv2.resize(images[0], (SIZE, SIZE))])[0]
        crf = crf_rows(cv2.resize(images[0], (SIZE, SIZE)), probs)
        seconds, gib = ensemble_memory(tmp)
        ideal = resize_miou(split, tmp / "masks")
    sizes = sorted({f"{img['width']}×{img['height']}" for img in chosen})
    text = "\n".join(
        [
            f"Machine: {cpu_model()}, {time.strftime('%Y-%m-%d')}. Model: the `small_cpu_trashcan` recipe's network "
            f"(FPN, EfficientNet-Lite0, {SIZE}², 17 classes, random init), batch 8. End to end: `trashseg predict "
            f"--images` (`predict_images`, the CLI's defaults: 2 decode workers, masks written in 4 threads) on "
            f"{n} TrashCan val frames ({', '.join(sizes)} JPEG), listing, decoding and PNG writes included; in "
            "brackets its share of the network-only rate (the same engine and TTA; with hflip both count two "
            "network passes per image). `infer.mask_resize`: `probs` (default) brings the 17 class probabilities "
            "back to the frame's size (bilinear) and takes the argmax there; `labels` takes the argmax at 256² "
            "and resizes the class ids (nearest). The last column is the share of pixels whose class differs "
            "between the two; random weights make far more class borders than a trained model, so it overstates "
            "a trained model's difference.",
            "",
            "| engine | TTA | network only img/s | end to end, mask_resize=probs | mask_resize=labels "
            "| pixels differing |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            f"What `mask_resize` costs in mIoU, free of a model's errors: a perfect {SIZE}² model (the ground truth "
            f"area-averaged to {SIZE}², as class probabilities) on all {len(split.images)} TrashCan val images "
            "scores "
            + "; ".join(
                f"{where}: probs {ideal['probs'][where]:.4f}, labels {ideal['labels'][where]:.4f}"
                for where in ideal["probs"]
            )
            + ".",
            "",
            f"Dense CRF (pydensecrf2) on one {SIZE}² image of 17-class probabilities from this model:",
            "",
            "| iterations | s/image |",
            "| ---: | ---: |",
            *crf,
            "",
            "5-model soft ensemble, 819 images × 11×512² float16 probabilities per member: peak RSS "
            f"**{gib:.2f} GiB** (target < 2 GiB), {seconds:.0f} s ({819 / seconds:.1f} img/s).",
        ]
    )
    print(text)
    update_section(Path("docs/benchmarks.md"), "Inference cost on CPU (bench/infer_speed.py)", text)


if __name__ == "__main__":
    main()
