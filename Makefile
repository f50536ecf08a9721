# Two commands for a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test lint typecheck unit bench clean

serve: $(VENV)/.server  ## install the server and run it on its embedded defaults
	$(BIN)/layerserve serve

test: $(VENV)/.dev lint typecheck unit  ## install everything, then lint, type-check and run the tests

lint: $(VENV)/.dev
	$(BIN)/ruff check service client tests benchmarks

typecheck: $(VENV)/.dev
	$(BIN)/mypy client service

unit: $(VENV)/.dev
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(VENV)/.dev
	$(BIN)/python -m benchmarks.run

$(VENV)/.server: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[server]'
	touch $@

$(VENV)/.dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.server

clean:
	rm -rf $(VENV) layerserve-state .pytest_cache .mypy_cache .ruff_cache
