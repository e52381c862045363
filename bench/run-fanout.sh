#!/usr/bin/env bash
# Run the fan-out benchmark (bench/fanout.py): Townhall's live server against Debian's
# redis-server and nats-server, with iperf3 and openssl speed for the machine's limits.
# Installs the peers with apt-get when they are missing (as root, or with sudo).
# Arguments are passed to bench/fanout.py, e.g.:  bench/run-fanout.sh --quick --json out.json
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nats-server >/dev/null || missing+=(nats-server)
command -v iperf3 >/dev/null || missing+=(iperf3)
command -v openssl >/dev/null || missing+=(openssl)
if ((${#missing[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    echo "installing ${missing[*]}" >&2
    # iperf3 asks whether to start a daemon; no, the bench starts its own.
    echo "iperf3 iperf3/start_daemon boolean false" | $SUDO debconf-set-selections
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi
# The Debian packages enable system services; the bench starts private servers on free
# loopback ports and needs none of them.

exec "$PYTHON" bench/fanout.py "$@"
