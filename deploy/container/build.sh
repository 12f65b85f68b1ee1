#!/usr/bin/env bash
# Build the image with buildah, no container daemon, registry or index needed.
#
#   tongyeok export --out models/en-de           # the model repository the image carries
#   deploy/container/build.sh [TAG] [cpu|gpu]    # default: tongyeok:cpu cpu
#   podman --runtime runc run --rm -p 8000:8000 tongyeok:cpu
#
# The base image is made by debootstrap if it is not already in local storage (base-image.sh), and
# pip installs from a wheelhouse downloaded on the host (wheelhouse.sh, kept in
# build/wheelhouse-RUNTIME for the next build), so the build itself reaches no network. No --layers:
# buildah 1.28 leaves RUN --mount=from=STAGE content out of its cache key and would reuse stale
# layers.
# CONTEXT (default: the repository root) must hold models/: set it to build from a prepared copy.
set -euo pipefail
TAG="${1:-tongyeok:cpu}"
RUNTIME="${2:-cpu}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CONTEXT="${CONTEXT:-$ROOT}"
WHEELS="${WHEELHOUSE_DIR:-$ROOT/build/wheelhouse-$RUNTIME}"

[ -d "$CONTEXT/models" ] || { echo "no $CONTEXT/models: run 'tongyeok export --out models/en-de' first" >&2; exit 2; }
"$ROOT/deploy/container/base-image.sh"
"$ROOT/deploy/container/wheelhouse.sh" "$WHEELS" "$RUNTIME"
buildah bud --isolation chroot --pull=never --format docker \
    --build-arg RUNTIME="$RUNTIME" --build-arg WHEELHOUSE=/wheelhouse \
    --volume "$WHEELS:/wheelhouse:ro" \
    --file "$ROOT/Dockerfile" --tag "$TAG" "$CONTEXT"
