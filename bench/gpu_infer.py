"""GPU inference throughput: img/s per TTA setting for UPerNet Swin-B at 512², bf16, one GPU.

The same Predictor that ``trashseg predict`` uses, on real TrashCan JPEGs decoded in memory (480×270, resized
to 512² and probabilities brought back), batch 16, random init (speed does not depend on the weights), eager for
every TTA setting and compiled for those whose input shape stays 512² (a new scale would recompile the graph);
"masks only" is the path `trashseg predict` takes without --save-probs or --crf (argmax on the GPU).
Reference (issue, one H200, bf16): UPerNet Swin-B 372 img/s plain, 186 with flip TTA.

    # here: python bench/gpu_train.py --prepare; bash bench/gpu_wheels.sh   (bench_data/ and .whl/ get carried)
    # there (device tool, carry bench_data and .whl): bash bench/gpu_run.sh infer
    # here, before spending device time: the same code paths on CPU at toy counts
    python bench/gpu_infer.py --smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_train  # noqa: E402
from _report import update_section  # noqa: E402
from infer_speed import TTA, throughput  # noqa: E402

from trashseg.config import load_config  # noqa: E402
from trashseg.data.coco import load_split  # noqa: E402
from trashseg.data.images import read_image  # noqa: E402
from trashseg.infer.predictor import Predictor  # noqa: E402
from trashseg.models.segmenter import Segmenter  # noqa: E402

RECIPE, SIZE = "configs/upernet_swin_b.yaml", 512
FIXED_SHAPE = ("none", "hflip", "hflip+vflip")  # the settings that compile once


def rate(module: Segmenter, images: list, tta: str, masks_only: bool = False) -> float:
    infer = TTA[tta].model_copy(update={"precision": "bf16", "batch_size": gpu_train.BATCH})
    return throughput(
        Predictor(module, SIZE, infer, device=gpu_train.DEVICE), images, batch=gpu_train.BATCH, masks_only=masks_only
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="default runs/bench_gpu, or /tmp/trashseg_gpu_smoke/out with --smoke")
    parser.add_argument("--smoke", action="store_true", help="toy counts on CPU, to check the script without a GPU")
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/trashcan"))
    args = parser.parse_args()
    args.out = gpu_train.start(args.smoke, args.data, args.out)
    classes = gpu_train._classes()
    split = load_split(gpu_train.SUBSET / "val.json", gpu_train.SUBSET, classes)
    images = [read_image(split.image_path(img)) for img in split.images] * 4  # 256 images (8 in --smoke)
    cfg = load_config(
        RECIPE, ["model.weights=null", "data.classes=" + json.dumps(classes), f"augment.image_size={SIZE}"]
    )
    module = Segmenter.from_config(cfg).to(gpu_train.DEVICE, memory_format=torch.channels_last).eval()
    eager = {tta: gpu_train.measured(f"{tta} eager", rate, module, images, tta) for tta in TTA}
    masks = {
        tta: gpu_train.measured(f"{tta} masks only, eager", rate, module, images, tta, True)
        for tta in ("none", "hflip")
    }
    if gpu_train.DEVICE == "cuda":
        module.net.compile()
    compiled = {tta: gpu_train.measured(f"{tta} compiled", rate, module, images, tta) for tta in FIXED_SHAPE}
    device = torch.cuda.get_device_name() if gpu_train.DEVICE == "cuda" else "CPU smoke run"
    rows = [
        f"| {tta} | {gpu_train.cell(eager[tta])} | {gpu_train.cell(masks[tta]) if tta in masks else '–'} | "
        f"{gpu_train.cell(compiled[tta]) if tta in compiled else '–'} |"
        for tta in TTA
    ]
    text = "\n".join(
        [
            f"{device}, torch {torch.__version__}, UPerNet Swin-B, bf16, channels_last, batch "
            f"{gpu_train.BATCH}, {len(images)} TrashCan val images, {SIZE}² ({time.strftime('%Y-%m-%d')}).",
            "",
            "| TTA | eager img/s | eager, masks only | compiled img/s |",
            "| --- | ---: | ---: | ---: |",
            *rows,
        ]
    )
    print(text)
    update_section(args.out / "benchmarks_gpu.md", "GPU inference throughput (bench/gpu_infer.py)", text)


if __name__ == "__main__":
    main()
