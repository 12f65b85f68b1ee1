# syntax=docker/dockerfile:1
# Tongyeok's serving image: ONNX Runtime, the service and the model repository; no torch.
#
#   tongyeok export --out models/en-de --cache gathered       # on the host: the package, for a GPU
#   docker build -t tongyeok:gpu .                            # onnxruntime-gpu + CUDA/cuDNN wheels
#   tongyeok export --out models/en-de --precision int8       # or for a CPU (cache written in place)
#   docker build --build-arg RUNTIME=cpu -t tongyeok:cpu .    # onnxruntime only, no CUDA libraries
#   docker run --gpus all -p 8000:8000 tongyeok:gpu
#
# Model packages are exported on the host first (tongyeok export), so no stage needs torch and the
# image carries exactly the package that was verified. The model repository is /models; mount a
# volume there to serve other packages. Without a registry or index (air-gapped, or CI here):
# deploy/container/build.sh makes the base image with debootstrap and builds from a wheelhouse.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- stage 1: a closed set of wheels for everything the service runs on ---------------------------
FROM ${PYTHON_IMAGE} AS wheels
# gpu: onnxruntime-gpu with CUDA and cuDNN from their Python packages (only the driver comes from
# the host, through the NVIDIA container toolkit). cpu: onnxruntime alone, a fraction of the size.
ARG RUNTIME=gpu
# A folder of pre-downloaded wheels (deploy/container/wheelhouse.sh) mounted into the build: pip
# then never touches an index.
ARG WHEELHOUSE=
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
# Only what serving runs: the contract, the service and the command. Not model/ or export/ (torch),
# nor bench/ (benchmarks and load generators stay beside the product).
COPY contract ./contract
COPY tongyeok ./tongyeok
COPY service ./service
# The project without its own onnxruntime-gpu requirement (--no-deps), then the runtime's wheels.
# hadolint ignore=SC2086
RUN set -eu; \
    offline="${WHEELHOUSE:+--no-index --find-links $WHEELHOUSE}"; \
    ort_version="$(sed -n 's/^onnxruntime-gpu==//p' constraints.txt)"; \
    if [ "$RUNTIME" = cpu ]; then ort="onnxruntime==$ort_version"; \
    else ort="onnxruntime-gpu[cuda,cudnn] onnx"; fi; \
    pip wheel --no-cache-dir $offline --no-deps --wheel-dir /wheels . \
 && pip wheel --no-cache-dir $offline -c constraints.txt --wheel-dir /wheels \
        fastapi uvicorn pydantic pydantic-settings python-multipart prometheus-client \
        sentencepiece numpy py3langid fastapi-offline python-docx python-pptx \
        pysubs2 polib markdown-it-py defusedxml limits redis pyzmq msgpack $ort

# --- stage 2: the runtime (the wheel set is closed, so --no-deps installs exactly it) ---------------
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TONGYEOK_HOST=0.0.0.0 \
    TONGYEOK_PORT=8000 \
    TONGYEOK_MODEL_REPOSITORY=/models \
    TONGYEOK_DRAIN_SECONDS=20 \
    TONGYEOK_DATA_DIR=/var/lib/tongyeok
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --no-deps /wheels/*.whl \
 && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent tongyeok \
 && install -d -o tongyeok -g tongyeok -m 0700 /var/lib/tongyeok
COPY --chown=root:root models /models
# Non-root, and nothing to write but the state (API keys and usage, glossaries, document jobs:
# SQLite files) in /var/lib/tongyeok: mount a volume there (compose.yaml does) and the root
# filesystem can be read-only; with TONGYEOK_STATE_URL=redis://... nothing is written at all.
USER 10001
EXPOSE 8000
# SIGTERM starts the drain: readiness turns false, in-flight requests finish within
# TONGYEOK_DRAIN_SECONDS (20 s), then the process exits 0. Give the runtime a longer stop timeout:
# docker stop -t 30, podman stop -t 30, Kubernetes terminationGracePeriodSeconds: 30.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"TONGYEOK_PORT\"]}/healthz', timeout=2)"]
CMD ["tongyeok", "serve"]
