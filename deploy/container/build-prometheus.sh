#!/usr/bin/env bash
# Build a Prometheus image from Debian's package, for machines that cannot pull prom/prometheus.
#
#   deploy/container/build-prometheus.sh [TAG]    # default: localhost/tongyeok-prometheus:debian
#   PROMETHEUS_IMAGE=localhost/tongyeok-prometheus:debian docker compose -f deploy/compose.yaml up
#
# FROM the same debootstrapped base as the Tongyeok image (base-image.sh, made if missing); the
# build's apt-get reaches only the Debian mirror.
set -euo pipefail
TAG="${1:-localhost/tongyeok-prometheus:debian}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BASE="docker.io/library/python:3.11-slim-bookworm"

"$ROOT/deploy/container/base-image.sh" "$BASE"
buildah bud --isolation chroot --pull=never --format docker --build-arg BASE_IMAGE="$BASE" \
    --file "$ROOT/deploy/prometheus/Containerfile" --tag "$TAG" "$ROOT/deploy/prometheus"
