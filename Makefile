# mECR: `make demo` installs and serves the demo; `make test` installs and runs the test suite.
# Both work from a fresh clone: they create .venv and install what they need.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DB ?= $(CURDIR)/var/demo.db

.PHONY: install prereqs demo test test-sqlite fuzz bench bench-quick docs demo-data screenshots vendor-definitions postgres clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 22

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || { echo "make: mECR needs \
	Python 3.11 and '$(PYTHON)' is not it; install python3.11 (apt-get install python3.11, or pyenv install 3.11) \
	or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install mECR with its test dependencies

demo: install  ## load the demo data into SQLite (var/demo.db) and serve on 127.0.0.1:8000
	mkdir -p var
	MECR_DATABASE_URL=$${MECR_DATABASE_URL:-sqlite:///$(DEMO_DB)} \
	MECR_DEFAULT_TIME_ZONE=$${MECR_DEFAULT_TIME_ZONE:-America/New_York} $(BIN)/mecr demo

postgres:  ## start the local PostgreSQL cluster if it is installed and not running
	@bash scripts/ensure-postgres.sh

prereqs: postgres  ## say, one line each, what the tests need and is missing (PostgreSQL, Chromium) and how to get it
	@bash scripts/check-prereqs.sh

# the suite runs on every core (pytest-xdist), a test file per worker so module fixtures load once; TEST_WORKERS=0
# runs it in one process
TEST_WORKERS ?= auto
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

test: install prereqs  ## run the test suite (SQLite and PostgreSQL, browser tests in Chromium) on every core
	$(BIN)/python -m pytest -q $(XDIST)

test-sqlite: install  ## run the test suite on SQLite only
	MECR_TEST_BACKENDS=sqlite $(BIN)/python -m pytest -q $(XDIST)

FUZZ_EXAMPLES ?= 5000
fuzz: install postgres  ## a long API fuzzing campaign, new random cases each run (FUZZ_EXAMPLES per principal and backend; docs/testing.md)
	MECR_FUZZ_RANDOM=1 MECR_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:cacheprovider --timeout=0 tests/fuzz

bench: install postgres  ## run the benchmarks (minutes; prints figures)
	$(BIN)/python -m tests.benchmarks.run

bench-quick: install postgres  ## the benchmarks at a tenth of their size
	$(BIN)/python -m tests.benchmarks.run --scale 0.1

docs: install  ## regenerate the generated docs (docs/configuration.md)
	$(BIN)/python -c "from fhir_ecr.config import settings_markdown; print(settings_markdown(), end='')" > docs/configuration.md

demo-data: install  ## regenerate examples/demo from examples/make_demo_data.py (and its directory)
	$(BIN)/python examples/make_demo_data.py
	$(BIN)/python examples/make_demo_directory.py

screenshots: install  ## regenerate docs/screenshots (headless Chromium, desktop and phone widths)
	$(BIN)/python scripts/screenshots.py

vendor-definitions: install  ## re-vendor the FHIR R4 definitions (search parameters, required bindings) from npm
	$(BIN)/python scripts/vendor_fhir_definitions.py

clean:  ## remove the virtualenv and local databases
	rm -rf $(VENV) var .pytest_cache
