#!/usr/bin/env bash
# One device call for both GPU benchmarks (issue 3: training throughput, issue 4: inference throughput).
# Here first: python bench/gpu_train.py --prepare && bash bench/gpu_wheels.sh
# Then: device run, carry [bench_data, .whl], command: bash bench/gpu_run.sh   (figures land in $OUT/benchmarks_gpu.md;
# copy them into docs/benchmarks.md). Uses the image's own python3 (it holds torch).
set -uo pipefail
out=${OUT:-runs/bench_gpu}   # only logs and the figures come back; run folders and caches stay in /tmp
work=/tmp/bench_gpu
mkdir -p "$out" "$work"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total --format=csv
  python3 -c "import torch, timm, lightning, segmentation_models_pytorch as smp; print(torch.__version__, timm.__version__, lightning.__version__, smp.__version__)"
} 2>&1 | tee "$out/gpu.txt"
# Budget: one call of under 10 minutes (the session's device time is 15). Each script rewrites its table after
# every figure, so a timeout keeps what was measured; the logs hold every figure too.
timeout 130 python3 bench/gpu_infer.py --out "$work" 2>&1 | tee "$out/gpu_infer.log"
timeout 420 python3 bench/gpu_train.py --out "$work" 2>&1 | tee "$out/gpu_train.log"
cp "$work/benchmarks_gpu.md" "$out/"
