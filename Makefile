# rnnflow: `make demo` runs the main job, `make test` passes the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,torch

# Prefect's embedded API: allow a slow first start, and no analytics (no network here).
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: install test test-fast lint demo clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Everything CI runs: the lint, every test and the docstring examples of rnncore.
test: lint
	$(PY) -m pytest

# The inner loop while developing: the tests not marked slow (no lint), stopping at the
# first failure. The slow ones (end-to-end flows, CLI and deployments, NVRTC builds,
# clusters, backtests) still run in `make test`.
test-fast: install
	$(PY) -m pytest -m "not slow" -x -q

# The main job on the embedded defaults: the sample data (generated if missing), then the
# nightly forecast flow on an embedded Prefect API and LocalCluster. It ends by printing where
# the forecasts, the plot, the run report and the Dask performance report are.
demo: install
	test -d data/sample.zarr || $(PY) data/generate.py
	$(VENV)/bin/rnnflow forecast

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
