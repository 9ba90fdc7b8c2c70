"""GPU inference throughput: img/s per TTA setting for UPerNet Swin-B at 512², bf16, one GPU.

The same Predictor that ``trashseg predict`` uses, on real TrashCan JPEGs decoded in memory (480×270, resized
to 512² and probabilities brought back), batch 16, random init (speed does not depend on the weights), eager and
compiled. Reference (issue, one H200, bf16): UPerNet Swin-B 372 img/s plain, 186 with flip TTA.

    # here: python bench/gpu_train.py --prepare; bash bench/gpu_wheels.sh   (bench_data/ and .whl/ get carried)
    # there (device tool, carry bench_data and .whl): bash bench/gpu_run.sh
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import update_section  # noqa: E402
from gpu_train import SUBSET, _classes  # noqa: E402
from infer_speed import TTA, throughput  # noqa: E402

from trashseg.config import load_config  # noqa: E402
from trashseg.data.coco import load_split  # noqa: E402
from trashseg.data.images import read_image  # noqa: E402
from trashseg.infer.predictor import Predictor  # noqa: E402
from trashseg.train.module import SegmentationModule  # noqa: E402

RECIPE, SIZE, BATCH = "configs/upernet_swin_b.yaml", 512, 16


def rates(module: SegmentationModule, images: list) -> list[float]:
    out = []
    for infer in TTA.values():
        predictor = Predictor(module, SIZE, infer.model_copy(update={"precision": "bf16", "batch_size": BATCH}),
                              device="cuda")
        out.append(throughput(predictor, images, batch=BATCH))
        print(f"{out[-1]:.0f} img/s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_gpu"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no GPU: run this on the GPU machine (see the module docstring)")
    split = load_split(SUBSET / "val.json", SUBSET, _classes())
    images = [read_image(split.image_path(img)) for img in split.images] * 4  # 256 images
    cfg = load_config(RECIPE, ["model.weights=null", "data.classes=" + json.dumps(_classes()), f"augment.image_size={SIZE}"])
    module = SegmentationModule(cfg).cuda().eval().to(memory_format=torch.channels_last)
    eager = rates(module, images)
    module.model.compile()
    compiled = rates(module, images)
    rows = [f"| {name} | {e:.0f} | {c:.0f} |" for name, e, c in zip(TTA, eager, compiled)]
    text = "\n".join([f"{torch.cuda.get_device_name()}, torch {torch.__version__}, UPerNet Swin-B, bf16, channels_last, "
                      f"batch {BATCH}, {len(images)} TrashCan val images, {SIZE}² ({time.strftime('%Y-%m-%d')}).", "",
                      "| TTA | eager img/s | compiled img/s |", "| --- | ---: | ---: |", *rows])
    print(text)
    update_section(args.out / "benchmarks_gpu.md", "GPU inference throughput (bench/gpu_infer.py)", text)


if __name__ == "__main__":
    main()
