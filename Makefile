# The two README commands: `make run` and `make test`. Needs only Python 3.11+ (set PYTHON=...).
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
PYTEST_ARGS ?=
SDK := tests/sdk

.DEFAULT_GOAL := help
.PHONY: help install install-dev sdk run manage test lint ci clean distclean

help:
	@echo "make run      web + worker + beat (+ local Cognito emulator) on http://127.0.0.1:$${PORT:-8000}/admin/"
	@echo "make manage   a management command, e.g. make manage ARGS=\"cognito_sync --all\" (local mode: after make run)"
	@echo "make test     the test suite (PYTEST_ARGS='-k foo' to select)"
	@echo "make lint     ruff and the import contracts (lint-imports)"
	@echo "make ci       what CI runs (.ci/run)"
	@echo "make clean    remove caches and test artifacts; distclean also removes var/ (local database, broker queue) and $(VENV)"

$(VPY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required: make PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)

# Stamps: pip runs again only when a requirements file changes.
$(VENV)/.installed-runtime: requirements.txt | $(VPY)
	$(VPY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(VPY)
	$(VPY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $@ $(VENV)/.installed-runtime

install: $(VENV)/.installed-runtime
install-dev: $(VENV)/.installed-dev

# The npm client SDKs the emulator is tested with, exactly as package-lock.json pins them. Without npm
# their tests skip (and fail under CI=true).
$(SDK)/node_modules/.package-lock.json: $(SDK)/package.json $(SDK)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd $(SDK) && npm ci --no-audit --no-fund; \
	else echo "npm not found: the Node client SDK tests will be skipped (CI=true: they fail)"; fi
sdk: $(SDK)/node_modules/.package-lock.json

run: $(VENV)/.installed-runtime
	$(VPY) scripts/run.py

# A management command from a plain shell; after `make run` in local mode, settings read var/local.env
# (the emulator's endpoint and credentials, DEBUG, the secret key).
manage: $(VENV)/.installed-runtime
	$(VPY) manage.py $(ARGS)

test: $(VENV)/.installed-dev sdk
	$(VPY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VPY) -m ruff check .
	$(VENV)/bin/lint-imports --no-logo

ci:
	bash .ci/run

clean:
	rm -rf .pytest_cache .ruff_cache test-artifacts $(SDK)/node_modules
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf var $(VENV)
