#!/usr/bin/env bash
# Build a Redis image from Debian's package, for machines that cannot pull the official redis.
#
#   deploy/container/build-redis.sh [TAG]    # default: localhost/tongyeok-redis:debian
#   REDIS_IMAGE=localhost/tongyeok-redis:debian docker compose \
#       -f deploy/compose.yaml -f deploy/compose.redis.yaml up
#
# FROM the same debootstrapped base as the Tongyeok image (base-image.sh, made if missing); the
# build's apt-get reaches only the Debian mirror.
set -euo pipefail
TAG="${1:-localhost/tongyeok-redis:debian}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BASE="docker.io/library/python:3.11-slim-bookworm"

"$ROOT/deploy/container/base-image.sh" "$BASE"
buildah bud --isolation chroot --pull=never --format docker --build-arg BASE_IMAGE="$BASE" \
    --file "$ROOT/deploy/redis/Containerfile" --tag "$TAG" "$ROOT/deploy/redis"
