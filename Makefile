# Everything runs from the project's own virtualenv; `make test` on a fresh
# clone creates it. The stamp file re-runs the install when a pyproject changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := -e '.[test]' \
	-e plugins/unrar_provider \
	-e plugins/libarchive_provider \
	-e plugins/fixture_unpacker \
	-e docs/examples/lanspread-tarball
STAMP := $(VENV)/.installed
PYPROJECTS := pyproject.toml $(wildcard plugins/*/pyproject.toml) docs/examples/lanspread-tarball/pyproject.toml

.PHONY: setup demo test bench lint clean

setup: $(STAMP)

$(STAMP): $(PYPROJECTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(PACKAGES)
	touch $(STAMP)

demo: setup
	$(BIN)/lanspread demo

test: setup
	$(BIN)/pytest

bench: setup
	$(BIN)/python -m benchmarks

# The lint extra (ruff, mypy, import-linter) is installed once per pyproject change.
lint: setup $(VENV)/.lint-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

$(VENV)/.lint-installed: pyproject.toml
	$(BIN)/pip install --quiet -e '.[lint]'
	touch $@

clean:
	rm -rf $(VENV) build dist *.egg-info benchmarks/results
