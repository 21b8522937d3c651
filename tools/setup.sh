#!/usr/bin/env bash
# Idempotent bootstrap: Debian packages, the pinned torch wheel in a cached venv, the CMake build.
# Safe to re-run; fast when nothing is missing. Sourced by tools/train-default.sh and tools/test.sh.
#   tools/setup.sh [build-target...]     (default target: all)
set -euo pipefail

ATTNLAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TORCH_VERSION="2.11.0"
CACHE_ROOT="${ATTNLAB_CACHE:-$HOME/.cache/attnlab}"
VENV="$CACHE_ROOT/venv-torch-$TORCH_VERSION"
BUILD_DIR="${ATTNLAB_BUILD_DIR:-$ATTNLAB_ROOT/build}"
export CCACHE_DIR="${CCACHE_DIR:-$CACHE_ROOT/ccache}"
# Paths under the checkout are hashed relative to it, so every fresh clone hits the same cache.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$ATTNLAB_ROOT}"
export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"

APT_PACKAGES=(cmake ninja-build ccache g++ python3-venv libyaml-cpp-dev libfmt-dev libgtest-dev
              libbenchmark-dev nlohmann-json3-dev libcli11-dev mold fortunes fortune-mod
              pkg-config libsentencepiece-dev sentencepiece libgloo-dev iproute2)

log() { printf '[setup] %s\n' "$*" >&2; }

install_apt_packages() {
  local missing=() packages=("${@:-${APT_PACKAGES[@]}}")
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq ${APT_INSTALL_FLAGS:-} "${missing[@]}" >/dev/null
}

# Test-only: a headless browser for the report test (tests/report), without the desktop
# packages a full chromium pulls in (19 packages instead of 130).
install_test_browser() {
  APT_INSTALL_FLAGS=--no-install-recommends install_apt_packages chromium-headless-shell
  export ATTNLAB_REQUIRE_BROWSER=1
}

find_python() {
  # The venv's own python must support venv+pip; pyenv's or the system's both work.
  command -v python3
}

install_torch_venv() {
  if [ -x "$VENV/bin/python" ] &&
     [ "$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null)" = "$TORCH_VERSION" ]; then
    :
  else
    log "installing torch==$TORCH_VERSION into $VENV (several GB, once per machine)"
    mkdir -p "$CACHE_ROOT"
    rm -rf "$VENV.partial"
    "$(find_python)" -m venv "$VENV.partial"
    "$VENV.partial/bin/pip" install -q --progress-bar off "torch==$TORCH_VERSION"
    rm -rf "$VENV"
    mv "$VENV.partial" "$VENV"
  fi
  # The venv was built at $VENV.partial: its console scripts (torchrun, pip) and activate name
  # that path. Point them at the final one (idempotent; also repairs venvs made before this).
  if grep -lq "$VENV.partial" "$VENV"/bin/* 2>/dev/null; then
    grep -l "$VENV.partial" "$VENV"/bin/* 2>/dev/null | xargs sed -i "s|$VENV.partial|$VENV|g"
  fi
  # The project-local venv is a link into the versioned cache, so fresh clones reuse it.
  if [ "$(readlink "$ATTNLAB_ROOT/.venv" 2>/dev/null)" != "$VENV" ]; then
    rm -rf "$ATTNLAB_ROOT/.venv"
    ln -s "$VENV" "$ATTNLAB_ROOT/.venv"
  fi
}

# Test-only: transformers (the conversion oracle) in its own venv, which reaches torch through a
# .pth file naming the torch venv's site-packages (so torch is not installed twice). Prints the
# venv's path.
HF_TRANSFORMERS_VERSION="5.12.1"
install_hf_venv() {
  local hf="$CACHE_ROOT/venv-hf-$HF_TRANSFORMERS_VERSION-torch-$TORCH_VERSION"
  if [ ! -x "$hf/bin/python" ] ||
     [ "$("$hf/bin/python" -c 'import transformers; print(transformers.__version__)' 2>/dev/null)" != "$HF_TRANSFORMERS_VERSION" ]; then
    log "installing transformers==$HF_TRANSFORMERS_VERSION into $hf (test oracle, once per machine)"
    rm -rf "$hf.partial"
    "$VENV/bin/python" -m venv --without-pip "$hf.partial"
    local torch_site hf_site
    torch_site="$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
    hf_site="$("$hf.partial/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
    echo "$torch_site" > "$hf_site/attnlab-torch.pth"
    "$hf.partial/bin/python" -m pip install -q --progress-bar off "transformers==$HF_TRANSFORMERS_VERSION" >&2
    rm -rf "$hf"
    mv "$hf.partial" "$hf"
    # Console scripts name the build path; nothing here runs them, but keep them true.
    grep -l "$hf.partial" "$hf"/bin/* 2>/dev/null | xargs -r sed -i "s|$hf.partial|$hf|g"
  fi
  echo "$hf"
}

configure_and_build() {
  local werror=OFF
  [ "${CI:-}" = true ] && werror=ON
  # Configure once, and again when the -Werror choice differs from the cached one.
  if [ ! -f "$BUILD_DIR/build.ninja" ] ||
     ! grep -q "^ATTNLAB_WERROR:BOOL=$werror\$" "$BUILD_DIR/CMakeCache.txt" 2>/dev/null; then
    log "configuring $BUILD_DIR"
    cmake -S "$ATTNLAB_ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DATTNLAB_PYTHON="$ATTNLAB_ROOT/.venv/bin/python" \
      -DCUDAToolkit_ROOT=/usr/local/cuda \
      -DATTNLAB_WERROR="$werror" >/dev/null
  fi
  log "building ${*:-all}"
  cmake --build "$BUILD_DIR" --parallel "$(nproc)" ${1:+--target "$@"}
}

attnlab_setup() {
  export PATH="/usr/local/cuda/bin:$PATH"
  install_apt_packages
  install_torch_venv
  configure_and_build "$@"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  attnlab_setup "$@"
fi
