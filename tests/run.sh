#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine, then runs them:
#   a virtualenv with the locked development requirements (hash-checked), and PostgreSQL on 127.0.0.1:5432.
# Usage: bash tests/run.sh [pytest arguments]
#   PYTHON=python3.13 VENV=.venv313 bash tests/run.sh   runs the suite on another Python (.ci/run does)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# The lock (scripts/lock.py) pins and hashes every distribution: pip refuses anything else.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.txt

# Node.js and npm check the Railway infrastructure file (.railway/) and the Prisma schema (prisma/)
# with their own packages (npm ci from each folder's package-lock.json).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "installing Node.js and npm (Debian packages)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

# Page tests drive Debian's chromium through Playwright (never a browser download).
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium for the dashboard tests" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# The tests talk to a real PostgreSQL; on this kind of machine it is installed but may be stopped.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null; then
    echo "starting PostgreSQL on 127.0.0.1:5432" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  fi
fi

exec "$VENV/bin/python" -m pytest "$@"
