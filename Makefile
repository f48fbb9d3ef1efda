# Kling Studio. `make run` and `make test` do all the set-up themselves.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.12 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run demo test test-fast bench lint format migrations-check superuser clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "Kling Studio needs Python 3.12+ (found " + sys.version.split()[0] + ")")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

## Start the web server on http://127.0.0.1:8000 and the task cluster (Ctrl-C stops both).
run: install
	$(PY) manage.py run_studio

## The same against the bundled CometAPI simulator, in its own database (var/demo).
demo: install
	KLING_VAR_DIR=$(CURDIR)/var/demo $(PY) manage.py run_studio --demo

## The whole suite: unit, end-to-end (simulator + real qcluster) and browser tests.
test: install
	$(PY) -m pytest

## Everything but the browser and end-to-end tests.
test-fast: install
	$(PY) -m pytest -m "not browser and not e2e"

bench: install
	$(PY) -m bench

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrations-check: install
	$(PY) manage.py makemigrations --check --dry-run

superuser: install
	$(PY) manage.py migrate --verbosity 0
	$(PY) manage.py createsuperuser

clean:
	rm -rf $(VENV) var/staticfiles
