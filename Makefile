# fashion-cnn: `make run` (install + start the web app), `make test` (install + pytest).
# Every install path puts torch==2.13.0 (CPU build) in first, so nothing pulls a CUDA build.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
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

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH) -e '.[app]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH) -e '.[dev]'
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
