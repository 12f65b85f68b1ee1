#!/usr/bin/env bash
# Download every wheel the image build needs into DIR, for builds that cannot reach an index.
#
#   deploy/container/wheelhouse.sh DIR [cpu|gpu]
#
# Then build with the folder mounted and WHEELHOUSE pointing at it (see deploy/container/build.sh).
# Versions come from constraints.txt; onnxruntime (CPU) is pinned to onnxruntime-gpu's version.
set -euo pipefail
DIR="$1"
RUNTIME="${2:-cpu}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ORT_VERSION="$(sed -n 's/^onnxruntime-gpu==//p' "$ROOT/constraints.txt")"
if [ "$RUNTIME" = cpu ]; then ORT="onnxruntime==$ORT_VERSION"; else ORT="onnxruntime-gpu[cuda,cudnn]"; fi
mkdir -p "$DIR"
# The image's Python is Debian bookworm's 3.11 on x86-64 glibc 2.36: ask for exactly those wheels
# (each manylinux tag named, since older pips do not widen one tag to the older ones it includes).
PLATFORMS=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
    PLATFORMS+=(--platform "${tag}_x86_64")
done
python3 -m pip download --quiet --dest "$DIR" --constraint "$ROOT/constraints.txt" \
    --only-binary=:all: "${PLATFORMS[@]}" --python-version 3.11 --implementation cp \
    fastapi uvicorn pydantic pydantic-settings python-multipart prometheus-client sentencepiece \
    numpy py3langid fastapi-offline python-docx python-pptx pysubs2 polib markdown-it-py defusedxml \
    limits redis pyzmq msgpack "$ORT" "setuptools>=68"
# redis needs async-timeout on Python < 3.11.3 (bookworm's is 3.11.2); pip, told only "3.11",
# does not see it, so it is asked for by name.
python3 -m pip download --quiet --dest "$DIR" --constraint "$ROOT/constraints.txt" \
    --only-binary=:all: --python-version 3.11 --implementation cp async-timeout
