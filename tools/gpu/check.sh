#!/usr/bin/env bash
# One command for the lent GPU machine (device tool): build kernels/ with only LibTorch + nvcc,
# check every linear-attention implementation on the GPU against the CPU float64 kernel and the
# softmax-family attention kernel against its float64 reference, and time both next to SDPA;
# then the Titans memory's fused kernel against its CPU float64 engine, timed next to the torch
# dual form. Results go to $OUT (or ./gpu-results) as markdown. Every check runs even if an
# earlier one fails.
#   run: bash tools/gpu/check.sh          (on the GPU machine, from the repository root)
set -euo pipefail
PY=${ATTNLAB_PYTHON:-/opt/torch/.venv/bin/python}
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
start=$(date +%s)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNLAB_KERNELS_ONLY=ON \
  -DATTNLAB_CUDA=on -DATTNLAB_PYTHON="$PY" -DCUDAToolkit_ROOT=/usr/local/cuda >"$OUT/configure.log" 2>&1 \
  || { tail -40 "$OUT/configure.log"; exit 1; }
cmake --build build-gpu --target linear_check attention_check titans_check -j 16 >"$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
status=0
./build-gpu/tools/gpu/linear_check "$@" | tee "$OUT/linear_check.md" || status=1
./build-gpu/tools/gpu/attention_check "$@" | tee "$OUT/attention_check.md" || status=1
./build-gpu/tools/gpu/titans_check "$@" | tee "$OUT/titans_check.md" || status=1
exit $status
