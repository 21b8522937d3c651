#!/usr/bin/env bash
# README command 2: bootstrap what is missing, build everything, run the whole test suite.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
attnlab_setup
# The conversion tests' oracle (docs/conversion.md): Hugging Face transformers in a test-only venv
# that sees the torch venv's packages, cached per version pair like the torch venv.
export ATTNLAB_HF_PYTHON="$(install_hf_venv)/bin/python"
install_test_browser
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 1500 "$@"
