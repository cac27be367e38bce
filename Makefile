# Everything runs from the project's own virtualenv, .venv; the first `make demo`,
# `make test` or `make lint` on a fresh clone creates it. Each stamp file re-runs
# its install when a pyproject changes. `make demo` installs what running
# lanspread needs; the test and lint tools come with `make test` and `make lint`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# pip prints nothing unless something fails: a local build re-raises the build
# backend's warnings, and setuptools warns about every flat-layout editable install
PIP := PYTHONWARNINGS=ignore $(BIN)/pip --quiet --disable-pip-version-check
PACKAGES := -e . \
	-e plugins/unrar_provider \
	-e plugins/libarchive_provider \
	-e plugins/fixture_unpacker \
	-e plugins/web_ui
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.test-installed
# extra pytest options, e.g. `make test PYTEST_ARGS="-m unit"`
PYTEST_ARGS ?=
PYPROJECTS := pyproject.toml $(wildcard plugins/*/pyproject.toml) docs/examples/lanspread-tarball/pyproject.toml

.PHONY: setup demo test test-lab bench lint clean

setup: $(STAMP)

$(STAMP): $(PYPROJECTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install $(PACKAGES)
	touch $@

# The test extra, and the plugin guide's example, which the tests load as a plugin.
$(TEST_STAMP): $(STAMP)
	$(PIP) install -e '.[test]' -e docs/examples/lanspread-tarball
	touch $@

demo: setup
	$(BIN)/lanspread demo

# Tests the machine cannot run (no root for tests/lab, a missing system tool) are
# skipped with a line that says how to run them; under CI=true a skip fails the run.
test: $(TEST_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# tests/lab alone: network namespaces and tmpfs mounts need root. A normal user
# gets it in a user namespace of their own (root inside, themselves outside, a
# private /run for ip's namespace files) where the kernel allows that; else
# `sudo make test-lab`. No cache or bytecode files: root leaves nothing behind.
LAB := env PYTHONDONTWRITEBYTECODE=1 $(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS) tests/lab
USERNS := unshare --user --map-root-user --net --mount -- \
	sh -c 'mount -t tmpfs tmpfs /run && PATH="$$PATH:/usr/sbin:/sbin" exec "$$@"' lab

test-lab: $(TEST_STAMP)
ifeq ($(shell id -u),0)
	$(LAB)
else
	@$(USERNS) true 2>/dev/null || { echo "make test-lab: this system lets no normal user" \
		"create namespaces; run \`sudo make test-lab\`" >&2; exit 2; }
	$(USERNS) $(LAB)
endif

bench: setup
	$(BIN)/python -m benchmarks

# The lint extra (ruff, mypy, import-linter) is installed once per pyproject change.
lint: setup $(VENV)/.lint-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

$(VENV)/.lint-installed: pyproject.toml
	$(PIP) install -e '.[lint]'
	touch $@

clean:
	rm -rf $(VENV) build dist *.egg-info benchmarks/results
