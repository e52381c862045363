# Start and stop a private PostgreSQL server on loopback for tests and benchmarks.
# Source this file, then: start_postgres (sets POSTGRES_URL), stop_postgres.

start_postgres() {
    local bindir
    bindir=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
    PG_DIR=$(mktemp -d /tmp/townhall-pg.XXXXXX)
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    local runas=()
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$PG_DIR"
        runas=(runuser -u postgres --)
    fi
    "${runas[@]}" "$bindir/initdb" -D "$PG_DIR/data" -U townhall --auth=trust -E UTF8 >/dev/null
    "${runas[@]}" "$bindir/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
        -o "-h 127.0.0.1 -p $port -k $PG_DIR -c fsync=off -c max_connections=200" start >/dev/null
    PG_BINDIR=$bindir
    PG_RUNAS=("${runas[@]}")
    export POSTGRES_URL="postgresql+psycopg://townhall@127.0.0.1:$port/postgres"
}

stop_postgres() {
    [[ -n "${PG_DIR:-}" ]] || return 0
    "${PG_RUNAS[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null || true
    rm -rf "$PG_DIR"
}
