#!/usr/bin/env bash
# Run the Center load benchmark against SQLite, then against a private PostgreSQL
# server started for the purpose (scripts/postgres.sh) and stopped afterwards.
# Arguments are passed to bench/center.py, e.g.:  bench/run-center.sh --clients 64 --seconds 20
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}

echo "### SQLite" >&2
"$PYTHON" bench/center.py "$@"

echo "### PostgreSQL" >&2
# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
trap stop_postgres EXIT
start_postgres
echo "PostgreSQL at $POSTGRES_URL" >&2
# center.py creates a scratch database on this server (CREATE DATABASE in AUTOCOMMIT)
# and drops it at the end.
"$PYTHON" bench/center.py --database-url "$POSTGRES_URL" "$@"
