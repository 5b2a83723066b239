# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

## demo: a real broadcast on the embedded default, written to demo/outbox
demo: $(VENV)/.installed
	mkdir -p demo
	cd demo && ../$(BIN)/tocsin demo

## test: the whole suite, Redis and PostgreSQL integration tests included
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest --durations=15

## lint: ruff, mypy --strict and the layer contracts (import-linter, [tool.importlinter] in pyproject.toml)
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy dispatcher channels workers
	$(BIN)/lint-imports

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/fanout.py

clean:
	rm -rf demo .pytest_cache .mypy_cache .ruff_cache
