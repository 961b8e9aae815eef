# Fresh machine: `make demo` runs Bastion's main job; `make test` runs lint, types and tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint typecheck unit bench-model-scan clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

demo: $(BIN)/python
	$(PIP) install -e '.[demo]'
	$(BIN)/bastion demo

test: $(BIN)/python
	$(PIP) install -e '.[dev]' 'torch==2.13.0'
	$(MAKE) lint typecheck unit

LINT_PATHS := $(wildcard src tests benchmarks scripts)

lint:
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

typecheck:
	$(BIN)/mypy src

unit:
	$(BIN)/pytest tests

bench-model-scan:
	bash benchmarks/model_scan/run.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist src/*.egg-info
