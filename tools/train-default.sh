#!/usr/bin/env bash
# README command 1: bootstrap what is missing, then train the default recipe on the embedded
# corpus (CPU when there is no GPU). Extra arguments go to `attnlab train`, e.g. --set train.steps=50.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
attnlab_setup attnlab
cd "$ATTNLAB_ROOT"
exec "$BUILD_DIR/attnlab" train recipes/default.yaml "$@"
