# Helpers for scripts/test: install what the tests need from the machine's package registries, idempotently,
# and start throw-away services on free loopback ports. Sourced, not run.

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
# ensure_apt PACKAGE... : installs the Debian packages that are missing.
ensure_apt() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing: ${missing[*]}"
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_postgres: a private cluster in a temporary directory on a free port, run by an unprivileged user
# (PostgreSQL refuses to run as root). Exports TEST_POSTGRES_URL and PG_STOP (a command that stops it).
start_postgres() {
    ensure_apt postgresql
    local bindir
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    local port dir user
    port=$(free_port)
    dir=$(mktemp -d /tmp/gateway-pg.XXXXXX)
    if [ "$(id -u)" -eq 0 ]; then
        user=postgres
        id -u "$user" >/dev/null 2>&1 || useradd --system --no-create-home "$user"
        chown "$user" "$dir"
        run_pg() { runuser -u postgres -- "$@"; }
    else
        user=$(id -un)
        run_pg() { "$@"; }
    fi
    run_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
    run_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "-p $port -k $dir -c listen_addresses=127.0.0.1 \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" start >/dev/null
    export TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
    PG_STOP="run_pg $bindir/pg_ctl -D $dir/data -m fast stop; rm -rf $dir"
    echo "postgres running on port $port (data in $dir)"
}
