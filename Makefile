# The two quickstart commands (see README): `make run` and `make test`.
# Both create .venv on first use and reinstall only when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch that our machines carry; set TORCH= to let pip choose (may be a large CUDA build).
TORCH ?= torch==2.13.0

export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: run test lint install

run: $(STAMP)  ## monitoring pass on the embedded defaults, then the dashboard on http://127.0.0.1:8501
	$(BIN)/aimusic start

test: $(STAMP)  ## lint and the whole test suite (no network, no model downloads)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH),$(BIN)/python -m pip install --quiet "$(TORCH)")
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)
