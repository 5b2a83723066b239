# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
PYTEST_ARGS ?=
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

DEMO ?= demo

## demo: a real broadcast on the embedded default, written to demo/outbox (a second run starts afresh)
demo: $(VENV)/.installed
	@if [ -e "$(DEMO)" ]; then \
	  echo "make demo: $(DEMO)/ holds an earlier run; starting afresh (its database, outbox and status page are removed)"; \
	  rm -rf "$(DEMO)"; \
	fi
	mkdir -p "$(DEMO)"
	cd "$(DEMO)" && "$(abspath $(BIN))/tocsin" demo
	@echo
	@echo "Tocsin is installed in $(VENV)/, not on your PATH. Next, from $(DEMO)/:"
	@echo "  cd $(DEMO) && $(abspath $(BIN))/tocsin incident show inc-1 # the incident's timeline"
	@echo "  $(abspath $(BIN))/tocsin status upd-1                      # who got update upd-1, per channel"
	@echo "or activate the virtualenv first: source $(VENV)/bin/activate, then tocsin ..."

## test: the whole suite, Redis and PostgreSQL integration tests included
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest --durations=15 $(PYTEST_ARGS)

## lint: ruff, mypy --strict and the layer contracts (import-linter, [tool.importlinter] in pyproject.toml)
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy dispatcher channels workers
	$(BIN)/lint-imports

## docs: the documentation site (docs/pages) into docs/site, failing on any broken link or page
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -f docs/mkdocs.yml

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/fanout.py

clean:
	rm -rf demo docs/site .pytest_cache .mypy_cache .ruff_cache
