# Two commands for a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test lint typecheck contracts unit bench clean redis-server chromium

serve: $(VENV)/.server  ## install the server and run it on its embedded defaults
	$(BIN)/layerserve serve

test: $(VENV)/.dev redis-server chromium lint typecheck contracts unit  ## install everything, then lint, type-check and run the tests

lint: $(VENV)/.dev
	$(BIN)/ruff check service client tests benchmarks scripts

# mypy sees the import names: .names/ maps layerserve to client/ and layerserve.server to service/.
typecheck: $(VENV)/.dev
	@mkdir -p .names/client .names/service/layerserve
	@ln -sfn ../../client .names/client/layerserve && ln -sfn ../../../service .names/service/layerserve/server
	MYPYPATH=.names/client:.names/service $(BIN)/mypy -p layerserve -p layerserve.server

# import-linter (the walls in pyproject's [tool.importlinter]) finds packages through the import
# system and walks their folders: .names/graph/layerserve is the one tree the installed names
# describe, client/'s entries with service/ as server/, rebuilt each time so moves show up.
contracts: $(VENV)/.dev
	@rm -rf .names/graph && mkdir -p .names/graph/layerserve
	@for entry in client/*; do case "$$entry" in */__pycache__) ;; *) ln -s "../../../$$entry" .names/graph/layerserve/ ;; esac; done
	@ln -s ../../../service .names/graph/layerserve/server
	PYTHONPATH=.names/graph $(BIN)/lint-imports --no-cache

unit: $(VENV)/.dev
	LAYERSERVE_SKIP_REDIS_TESTS=$$(command -v redis-server >/dev/null 2>&1 || [ -n "$$CI" -a "$$CI" != "false" ] || echo 1) \
	  $(BIN)/python -m pytest -q -p no:cacheprovider

# The Redis store tests run a real redis-server: install Debian's when it is missing. Under CI
# (CI set and not "false") a missing one fails the run: the Redis tests are never skipped there.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q redis-server >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q redis-server >/dev/null 2>&1; }; \
	  fi; true; }
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ -n "$$CI" ] && [ "$$CI" != "false" ]; then \
	    echo "make test: redis-server is missing and could not be installed; the Redis store tests cannot run (CI=$$CI)" >&2; exit 1; \
	  fi; \
	  echo "*** WARNING: redis-server is missing and apt-get could not install it: the Redis store tests are SKIPPED (install redis-server to run them) ***"; }

# The dashboard's browser tests drive Debian's headless Chromium: install it when it is missing.
# Without it they are skipped with a warning; under CI=true a missing browser stops the run.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	  fi; }
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$CI" = "true" ]; then echo "*** ERROR: chromium is missing and apt-get could not install it (CI=true: the browser tests may not be skipped) ***"; exit 1; fi; \
	  echo "*** WARNING: chromium is missing and apt-get could not install it: the dashboard's browser tests are SKIPPED (install chromium to run them) ***"; }

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
	rm -rf $(VENV) layerserve-state .pytest_cache .mypy_cache .ruff_cache .names artifacts
