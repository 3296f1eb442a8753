#!/usr/bin/env bash
# Every GPU check of issues 14 and 18 in one call of under 9 minutes on one H200, most important first, each part
# under its own time limit so that one failing part leaves the others their figures:
#   1. optiplan's Triton kernels against SDPA, cuBLAS and torchao (bench_kernels.py; its --check runs first)
#   2. the analytic model against transformers on this GPU, and the transformers engine fitted there
#      (bench_transformers_cuda.py)
#   3. the GPU tests (pytest -m gpu): kernels against references, greedy tokens of our attention against SDPA,
#      measurement on CUDA
# Usage: bash benchmarks/gpu/run_all.sh [OUTDIR]   (JSON and logs in OUTDIR, default benchmarks/results)
# Then, here: keep the kernel figures where the planner reads them with
#   python -c "import json,sys; sys.path.insert(0, 'benchmarks/gpu'); import bench_kernels as b; \
#              b.keep_as_profile(json.load(open('OUTDIR/gpu_kernels.json')))"
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${1:-benchmarks/results}"
mkdir -p "$out"
unset TRITON_INTERPRET  # compiled kernels are timed
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv,noheader || true
python3 -c "import torch, triton, transformers, optiplan; print('torch', torch.__version__, 'triton', triton.__version__,
'transformers', transformers.__version__, 'optiplan', optiplan.__file__)"

timeout 240 python3 benchmarks/gpu/bench_kernels.py --budget-s 170 --sections decode,gemm,prefill,paged \
    --out "$out/gpu_kernels.json" 2>&1 | tee "$out/kernels.log"
echo "kernels: exit ${PIPESTATUS[0]}"

timeout 150 python3 benchmarks/gpu/bench_transformers_cuda.py --budget-s 60 --out "$out/gpu_transformers.json" \
    2>&1 | tee "$out/transformers.log"
echo "transformers: exit ${PIPESTATUS[0]}"

timeout 130 python3 -m pytest -q -m gpu -p no:cacheprovider tests/kernels tests/planner/measure/test_measure.py \
    2>&1 | tee "$out/gpu_tests.log" | tail -15
echo "gpu tests: exit ${PIPESTATUS[0]}"
