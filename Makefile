# Kling Studio. `make run` and `make test` do all the set-up themselves.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.12 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# axe-core, which the browser tests inject into every page (the product never serves it):
# package-lock.json pins it; npm ci reuses npm's cache, so a second machine set-up needs no network.
AXE := node_modules/axe-core/axe.min.js

.PHONY: install run demo test test-fast bench lint format migrations-check superuser clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "Kling Studio needs Python 3.12+ (found " + sys.version.split()[0] + ")")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

$(AXE): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing (apt-get install npm): the browser tests need axe-core"; exit 1; }
	npm ci --prefer-offline --no-audit --no-fund --loglevel=error
	touch $(AXE)

## Start the web server on http://127.0.0.1:8000 and the task cluster (Ctrl-C stops both).
run: install
	$(PY) manage.py run_studio

## The same against the bundled CometAPI simulator, in its own database (var/demo).
## `make demo PORT=8080` serves on another port; `make demo REALISTIC=1` makes clips take
## as long as Kling's (1-2 minutes for 5 s, a few past 10 minutes).
demo: install
	KLING_VAR_DIR=$(CURDIR)/var/demo $(PY) manage.py run_studio --demo \
	  $(if $(PORT),--port $(PORT)) $(if $(REALISTIC),--realistic)

## The whole suite, in two lanes that run side by side: the machine mostly waits (on
## clusters, browsers and the simulator's clock), so two lanes take little longer than one.
##   lane 1: unit, end-to-end (simulator + real qcluster) and browser tests on SQLite, then
##           the broker-sensitive tests with the Redis broker;
##   lane 2: the whole suite again on PostgreSQL but the browser tests, which test pages and
##           scripts, not the database, and run in lane 1 (the fleet test, two clusters with
##           one killed, with the ORM broker), then the fleet with the Redis broker.
## Lane 1 prints as it goes, lane 2 when it is done. The PostgreSQL and Redis passes run
## whenever the servers answer, and always under CI (where a missing server fails the run
## instead of skipping). The two Redis passes use databases of their own: they overlap.
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/kling
REDIS_TEST_URL ?= redis://127.0.0.1:6379/15
FLEET_REDIS_TEST_URL ?= redis://127.0.0.1:6379/14
FLEET_TESTS ?= tests/test_fleet.py
BROKER_TESTS ?= tests/test_lifecycle.py tests/test_end_to_end.py tests/test_faults.py tests/test_callback.py tests/test_sessions.py
up = $(PY) -c 'import socket, sys; socket.create_connection(("127.0.0.1", $(1)), 1)' 2>/dev/null

test: install $(AXE)
	@lane2=$$(mktemp); \
	( if [ -n "$$CI" ] || $(call up,5432); then \
	    echo "== PostgreSQL pass"; \
	    KLING_TEST_DATABASE_URL=$(PG_TEST_URL) $(PY) -m pytest -m "not browser" || exit 1; \
	  else echo "PostgreSQL is not running on 127.0.0.1:5432: its pass is skipped (CI runs it)"; fi; \
	  if [ -n "$$CI" ] || ( $(call up,6379) && $(call up,5432) ); then \
	    echo "== Redis broker pass on PostgreSQL: the fleet"; \
	    KLING_TEST_DATABASE_URL=$(PG_TEST_URL) KLING_TEST_REDIS_URL=$(FLEET_REDIS_TEST_URL) \
	      $(PY) -m pytest -m "not browser" $(FLEET_TESTS) || exit 1; \
	  else echo "Redis or PostgreSQL is not running: the fleet's Redis pass is skipped (CI runs it)"; fi \
	) > $$lane2 2>&1 & lane2_pid=$$!; \
	status=0; \
	echo "== SQLite pass"; \
	$(PY) -m pytest || status=1; \
	if [ -n "$$CI" ] || $(call up,6379); then \
	  echo "== Redis broker pass"; \
	  KLING_TEST_REDIS_URL=$(REDIS_TEST_URL) $(PY) -m pytest -m "not browser" $(BROKER_TESTS) || status=1; \
	else echo "Redis is not running on 127.0.0.1:6379: its pass is skipped (CI runs it)"; fi; \
	wait $$lane2_pid || status=1; \
	cat $$lane2; rm -f $$lane2; \
	exit $$status

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
	rm -rf $(VENV) var/staticfiles node_modules
