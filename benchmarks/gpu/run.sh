#!/usr/bin/env bash
# optiplan's Triton kernels on one GPU (made for an H200): at most 8 minutes, figures printed and written to
# benchmarks/results/gpu_kernels.json and kept as profiles/kernels/<hardware id>.json, where the planner reads
# it. Extra arguments go to bench_kernels.py (--quick, --sections decode,gemm).
set -euo pipefail
cd "$(dirname "$0")/../.."
unset TRITON_INTERPRET  # the benchmark times compiled kernels
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true
exec timeout 480 python benchmarks/gpu/bench_kernels.py --budget-s 400 --profile "$@"
