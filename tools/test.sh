#!/usr/bin/env bash
# README command 2: bootstrap what is missing, build everything, run the whole test suite.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
attnlab_setup
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 1500 "$@"
