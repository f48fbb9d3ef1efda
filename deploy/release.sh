#!/usr/bin/env bash
# The release step, on the web machine, as the kling user, after the new code is in place and
# before the services restart: install what pyproject.toml pins, migrate, collect static files.
# Usage: deploy/release.sh [/etc/kling/kling.env]
set -euo pipefail
cd "$(dirname "$0")/.."
set -a
# shellcheck disable=SC1090
. "${1:-/etc/kling/kling.env}"
set +a
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py collectstatic --noinput --verbosity 0
.venv/bin/python manage.py check --deploy --fail-level WARNING
