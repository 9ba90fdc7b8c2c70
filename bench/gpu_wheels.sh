#!/usr/bin/env bash
# Wheels for the lent GPU machine (Python 3.12, its own torch/torchvision/timm/lightning/opencv; no network there).
# Run here once per session, then carry .whl (git-ignored); bench/gpu_run.sh installs them there.
# What that image lacks, plus timm (the image has 1.0.29, whose Swin ignores dynamic_img_size when features_only);
# versions as in requirements.lock. About 13 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
pins=$(grep -iE '^(segmentation_models_pytorch|timm|albumentations|albucore|simsimd|stringzilla|pydantic|pydantic_core|annotated-types|typing-inspection|pycocotools|iterative-stratification)==' requirements.lock)
rm -rf .whl && mkdir .whl
# shellcheck disable=SC2086
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux1_x86_64 -d .whl $pins
ls -la .whl && du -sh .whl
