# fashion-cnn: `make run` (install + start the web app), `make test` (install + pytest).
# Every install path puts torch==2.13.0 in first (from TORCH_INDEX if set), so that no other
# requirement lets pip choose a torch, and with it a CUDA build.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
# Where torch comes from: pip's own indexes by default; on Linux outside this project's machines
# PyPI's wheel is the multi-GB CUDA build, so `make run TORCH_INDEX=https://download.pytorch.org/whl/cpu`
TORCH_INDEX ?=
PIP_TORCH := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH)
PORT   ?= 8501

# The official files next to this checkout, if present; otherwise the package's own lookup
# (~/.cache/fashion-cnn, /usr/share/datasets/fashion-mnist, then the official mirror).
ifeq ($(origin FASHION_MNIST_DIR),undefined)
ifneq ($(wildcard ../shared/datasets/fashion-mnist/*.gz),)
export FASHION_MNIST_DIR := $(abspath ../shared/datasets/fashion-mnist)
endif
endif

.PHONY: run evaluate test test-fast lint clean

run: $(VENV)/.installed
	$(BIN)/fashion-cnn app --port $(PORT)

evaluate: $(VENV)/.installed
	$(BIN)/fashion-cnn evaluate

test: $(VENV)/.installed-dev
	$(BIN)/pytest

test-fast: $(VENV)/.installed-dev
	$(BIN)/pytest -m "not slow"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests scripts benchmarks

# The venv and torch, marked done only once torch is in: a first `make run` stopped during
# PyPI's CUDA download, then run again with TORCH_INDEX, must still take torch from there
$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(PIP_TORCH)
	touch $@

# everything a user runs: the app, the HTTP API and the onnxruntime backend `auto` picks
$(VENV)/.installed: pyproject.toml | $(VENV)/.torch
	$(BIN)/pip install --quiet $(TORCH) -e '.[app,api,onnx]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/.torch
	$(BIN)/pip install --quiet $(TORCH) -e '.[dev]'
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
