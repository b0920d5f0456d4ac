# The two commands that matter: `make lab` (the tutorial) and `make test` (every test).
# Everything else is a step they take. Run `make help` for the list.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 3000

.DEFAULT_GOAL := help
.PHONY: help setup system-packages lab serve test lint format unit lab-test notebooks site-build \
        site site-test bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

setup: system-packages $(VENV)/.installed node_modules/.installed ## install everything (idempotent)

system-packages: ## apt packages: graphviz nginx redis postgresql chromium node
	@bash scripts/system-packages.sh

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (tutorial)" >/dev/null
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

lab: setup ## open the tutorial notebooks in JupyterLab
	$(BIN)/jupyter lab notebooks/

serve: setup ## the browser chat in demo mode, with its live diagram, on http://$(HOST):$(PORT)
	$(BIN)/tutorial serve --demo --live-trace --host $(HOST) --port $(PORT)

lint: setup ## ruff, the import contracts of the layer table, mypy
	$(BIN)/ruff check tutorial tests
	$(BIN)/ruff format --check tutorial tests
	$(BIN)/lint-imports
	$(BIN)/mypy

format: setup ## ruff: fix what can be fixed
	$(BIN)/ruff check --fix tutorial tests
	$(BIN)/ruff format tutorial tests

# Set-up installed every component, so a test that skips for a missing one fails
# (tests/skips.py); run pytest by hand to see skips as skips.
NO_SKIPS := TUTORIAL_NO_SKIPS=1

# pytest-xdist: test files run on TEST_WORKERS processes (a file stays on one worker, so a
# module's cluster starts once). Most tests wait on sockets and child processes, so two
# workers overlap those waits even on two cores.
TEST_WORKERS ?= 2

unit: setup ## the pytest suite (real servers on loopback); any skip fails
	$(NO_SKIPS) $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

lab-test: setup ## every chapter in a real JupyterLab (Chromium): Run All, every control, every exercise
	TUTORIAL_LAB_TESTS=1 $(BIN)/pytest -q -p no:cacheprovider tests/jupyterlab

# The chapters run under nbmake from copies in docs/chapters/, which keep their outputs
# for the site (the notebooks in notebooks/ stay clean).
notebooks: setup ## execute every chapter notebook with nbmake (copies in docs/chapters/)
	rm -rf docs/chapters && mkdir -p docs/chapters && cp notebooks/*.ipynb docs/chapters/
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --nbmake --nbmake-timeout=60 --overwrite docs/chapters/

site-build: notebooks ## build the static site into site/ from freshly executed chapters
	mkdir -p docs/diagrams && cp diagrams/*.svg docs/diagrams/
	$(BIN)/tutorial docs --site-notebooks docs/chapters
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

site: site-build ## build the site, then serve it on http://127.0.0.1:8000
	$(PY) -m http.server --bind 127.0.0.1 --directory site 8000

site-test: ## browser checks of the built site (every page, every chapter's SVG)
	$(NO_SKIPS) TUTORIAL_SITE_TESTS=1 $(BIN)/pytest -q tests/site

test: setup lint unit lab-test site-build site-test ## every test: lint, pytest, JupyterLab, notebooks, site
	@echo "make test: all green"

bench: setup ## the benchmark (not a test): prints the side-by-side table
	$(BIN)/tutorial bench

clean: ## remove generated files (keeps the venv)
	rm -rf site build docs/chapters docs/diagrams test-output .pytest_cache .ruff_cache .data
