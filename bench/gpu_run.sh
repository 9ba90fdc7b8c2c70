#!/usr/bin/env bash
# The GPU benchmarks in device calls of under 10 minutes (issue 3: training throughput, issue 4: inference).
# Here first: python bench/gpu_train.py --prepare && bash bench/gpu_wheels.sh   (optionally --smoke each script)
# Then: device run, carry [bench_data, .whl], command: bash bench/gpu_run.sh PART   (PART: infer | train | all)
# Figures land in $OUT/benchmarks_gpu.md and the logs; copy them into docs/benchmarks.md. Uses the image's python3.
# On an H200 (2026-11-27): train took ≈ 280 s per model; infer did not finish compiling in 120 s (estimate
# ≈ 200 s), so "all" does not fit one call: run train, then infer on the same warm machine (≈ 13 of the 15 device minutes).
set -uo pipefail
part=${1:-all}
out=${OUT:-runs/bench_gpu}   # only logs and the figures come back; run folders and caches stay in /tmp
work=/tmp/bench_gpu
mkdir -p "$out" "$work"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total --format=csv
  python3 -c "import torch, timm, lightning, segmentation_models_pytorch as smp; print(torch.__version__, timm.__version__, lightning.__version__, smp.__version__)"
} 2>&1 | tee "$out/gpu.txt"
# Each script rewrites its table after every figure, so a timeout keeps what was measured; the logs hold them too.
if [[ $part == infer || $part == all ]]; then
  timeout 300 python3 bench/gpu_infer.py --out "$work" 2>&1 | tee "$out/gpu_infer.log"
fi
if [[ $part == train || $part == all ]]; then
  timeout 570 python3 bench/gpu_train.py --out "$work" 2>&1 | tee "$out/gpu_train.log"
fi
cp "$work/benchmarks_gpu.md" "$out/" 2>/dev/null || echo "no figures written: see the logs"
