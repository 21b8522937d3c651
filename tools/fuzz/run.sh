#!/usr/bin/env bash
# Longer fuzzing on demand: tools/fuzz/run.sh [INPUTS per reader, default 1000000] [SEED] [TARGET]
# Uses the ASan+UBSan attnlab_fuzz from the normal build (tools/setup.sh builds it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/tools/setup.sh"
attnlab_setup attnlab_fuzz
exec "$BUILD_DIR/tests/fuzz/attnlab_fuzz" --target "${3:-all}" --inputs "${1:-1000000}" --seed "${2:-$RANDOM}"
