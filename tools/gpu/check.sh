#!/usr/bin/env bash
# One command for the lent GPU machine (device tool), in two stages that each fit one call:
#   kernels: build kernels/ with only LibTorch + nvcc; check every linear-attention
#            implementation on the GPU against the CPU float64 kernel, the softmax-family
#            attention kernel against its float64 reference and the Titans memory's fused kernel
#            against its CPU float64 engine; time each next to its baseline (SDPA, the torch dual
#            form).
#   project: the whole project (the Debian packages the GPU machine lacks come from .gpu-debs/,
#            fetched here by tools/gpu/fetch-debs.sh and unpacked there into a private prefix);
#            attnlab trains recipes/default.yaml and recipes/gla-tiny.yaml on CUDA in bf16
#            autocast and the step logs (loss, tokens/s, MFU) are kept.
# Results go to $OUT (or ./gpu-results) as markdown and logs. Every check runs even if an
# earlier one fails; the exit code says whether all passed.
#   run: bash tools/gpu/check.sh [kernels|project|all] [--quick]   (from the repository root;
#        device tool: carry [".gpu-debs"] for project or all)
set -euo pipefail
STAGE=${1:-kernels}
[ $# -gt 0 ] && shift
PY=${ATTNLAB_PYTHON:-/opt/torch/.venv/bin/python}
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH
status=0
elapsed() { echo "$(( $(date +%s) - $1 )) s"; }

kernels() {
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt" || true
  local start; start=$(date +%s)
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNLAB_KERNELS_ONLY=ON \
    -DATTNLAB_CUDA=on -DATTNLAB_PYTHON="$PY" -DCUDAToolkit_ROOT=/usr/local/cuda >"$OUT/configure.log" 2>&1 \
    || { tail -40 "$OUT/configure.log"; return 1; }
  cmake --build build-gpu --target linear_check attention_check titans_check -j 16 >"$OUT/build.log" 2>&1 \
    || { tail -60 "$OUT/build.log"; return 1; }
  echo "kernels build: $(elapsed "$start")"
  ./build-gpu/tools/gpu/linear_check "$@" | tee "$OUT/linear_check.md" || status=1
  ./build-gpu/tools/gpu/attention_check "$@" | tee "$OUT/attention_check.md" || status=1
  ./build-gpu/tools/gpu/titans_check "$@" | tee "$OUT/titans_check.md" || status=1
}

# The carried packages in a private prefix (never over /: they could shadow the image's own).
unpack_debs() {
  PREFIX=/tmp/attnlab-debs
  ls .gpu-debs/*.deb >/dev/null 2>&1 || { echo "no .gpu-debs/*.deb: run tools/gpu/fetch-debs.sh here and carry .gpu-debs"; return 1; }
  rm -rf "$PREFIX" && mkdir -p "$PREFIX"
  for f in .gpu-debs/*.deb; do dpkg -x "$f" "$PREFIX"; done
  local lib="$PREFIX/usr/lib/x86_64-linux-gnu"
  export PATH="$PREFIX/usr/bin:$PATH" LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # The .pc files say prefix=/usr: the sysroot puts the prefix in front of their -I and -L.
  export PKG_CONFIG_PATH="$lib/pkgconfig:$PREFIX/usr/share/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$PREFIX"
  # gloo's headers are found by path (docs/build.md), not by a CMake package.
  export CXXFLAGS="${CXXFLAGS:-} -isystem $PREFIX/usr/include"
  # Debian's pkgconf names its program pkgconf; CMake looks for pkg-config first.
  [ -x "$PREFIX/usr/bin/pkg-config" ] || ln -sf pkgconf "$PREFIX/usr/bin/pkg-config"
}

project() {
  local start; start=$(date +%s)
  unpack_debs || return 1
  cmake -S . -B build-gpu-full -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNLAB_CUDA=on -DATTNLAB_PYTHON="$PY" \
    -DCUDAToolkit_ROOT=/usr/local/cuda -DCMAKE_PREFIX_PATH="$PREFIX/usr" -DPKG_CONFIG_EXECUTABLE="$PREFIX/usr/bin/pkgconf" \
    >"$OUT/project-configure.log" 2>&1 || { tail -40 "$OUT/project-configure.log"; return 1; }
  cmake --build build-gpu-full --target attnlab -j 16 >"$OUT/project-build.log" 2>&1 \
    || { grep -m 20 -B2 -A8 "error" "$OUT/project-build.log" | head -80; return 1; }
  echo "project build: $(elapsed "$start")"
  local corpus="$PREFIX/usr/share/games/fortunes"
  echo "## attnlab train on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1) ($(date -u +%F))" \
    >"$OUT/train.md"
  for recipe in default gla-tiny; do
    local rc=0
    ./build-gpu-full/attnlab train "recipes/$recipe.yaml" --set train.device=cuda --set train.dtype=bf16 \
      --set data.prepare_from="$corpus" --set data.dir="/tmp/attnlab-data/$recipe" --set run.dir=/tmp/attnlab-runs \
      --set run.name="gpu-$recipe" >"$OUT/train-$recipe.log" 2>&1 || rc=$?
    [ $rc -eq 0 ] || status=1
    { echo; echo "### recipes/$recipe.yaml, train.device cuda, bf16 autocast (exit $rc)"; echo '```'
      grep -E "step|val|tokens/s|MFU|rror|note" "$OUT/train-$recipe.log" | tail -25; echo '```'; } >>"$OUT/train.md"
  done
  cat "$OUT/train.md"
}

case "$STAGE" in
  kernels) kernels "$@" || status=1 ;;
  project) project || status=1 ;;
  all) kernels "$@" || status=1; project || status=1 ;;
  *) echo "usage: tools/gpu/check.sh [kernels|project|all] [--quick]"; exit 2 ;;
esac
exit $status
