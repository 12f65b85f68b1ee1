#!/usr/bin/env bash
# Make the Dockerfile's base image locally, for machines that cannot pull from a registry.
#
#   deploy/container/base-image.sh [IMAGE]     (default: docker.io/library/python:3.11-slim-bookworm)
#
# debootstrap builds a minimal Debian bookworm with its python3 (3.11) and pip from Debian's mirror,
# shaped like the official python image where the Dockerfile relies on it (`python` on PATH, pip
# allowed to install system-wide), and imports it into the local containers storage under IMAGE,
# so `buildah bud --pull=never` resolves the Dockerfile's FROM to it. Does nothing if IMAGE exists.
set -euo pipefail
IMAGE="${1:-docker.io/library/python:3.11-slim-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if podman image exists "$IMAGE"; then
    echo "base image $IMAGE already present"
    exit 0
fi
ROOTFS="$(mktemp -d)"
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates \
    bookworm "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 || { tail -20 "$ROOTFS.log"; exit 1; }
rm -f "$ROOTFS.log"
ln -s /usr/bin/python3 "$ROOTFS/usr/local/bin/python"
rm -f "$ROOTFS"/usr/lib/python3.*/EXTERNALLY-MANAGED
rm -rf "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* \
    "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/*
tar -C "$ROOTFS" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - "$IMAGE" >/dev/null
echo "base image $IMAGE imported"
