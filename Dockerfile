# syntax=docker/dockerfile:1
# Tongyeok's serving image: ONNX Runtime, the service and the model repository; no torch.
#
#   tongyeok export --out models/en-de                      # on the host: the model package
#   docker build -t tongyeok:gpu .                          # onnxruntime-gpu + CUDA/cuDNN libs
#   docker build --build-arg RUNTIME=cpu -t tongyeok:cpu .  # onnxruntime, no CUDA libraries
#   docker run -p 8000:8000 tongyeok:cpu
#
# Model packages are exported on the host first (tongyeok export), so no stage needs torch. The
# model repository is /models; mount a volume there to serve other packages.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- stage 1: wheels for everything the service runs on ------------------------------------------
FROM ${PYTHON_IMAGE} AS wheels
ARG RUNTIME=gpu
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY tongyeok ./tongyeok
COPY model ./model
COPY export ./export
COPY service ./service
# The project itself without its onnxruntime-gpu requirement, then the runtime for this target:
# CUDA and cuDNN come from their Python packages; only the driver comes from the host.
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip wheel -c constraints.txt --wheel-dir /wheels fastapi uvicorn pydantic pydantic-settings \
        python-multipart prometheus-client sentencepiece numpy \
 && if [ "$RUNTIME" = cpu ]; then pip wheel --wheel-dir /wheels onnxruntime==1.31.1; \
    else pip wheel -c constraints.txt --wheel-dir /wheels "onnxruntime-gpu[cuda,cudnn]"; fi

# --- stage 2: the runtime (the wheel set is closed, so --no-deps installs exactly it) ---------------
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TONGYEOK_HOST=0.0.0.0 \
    TONGYEOK_PORT=8000 \
    TONGYEOK_MODEL_REPOSITORY=/models \
    TONGYEOK_DRAIN_SECONDS=20
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --no-deps /wheels/*.whl \
 && useradd --system --uid 10001 --create-home --home-dir /home/tongyeok tongyeok
COPY --chown=10001:10001 models /models
USER 10001
EXPOSE 8000
# SIGTERM starts the drain: readiness turns false, in-flight requests finish within
# TONGYEOK_DRAIN_SECONDS, then the process exits 0 (give the runtime a longer stop timeout).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["tongyeok", "serve"]
