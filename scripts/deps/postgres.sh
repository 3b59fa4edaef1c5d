#!/usr/bin/env bash
# PostgreSQL 15 (Debian's `postgresql` package; it stands for Aurora PostgreSQL) on
# 127.0.0.1, TCP only, password auth (scram-sha-256) for the superuser `postgres`.
# The password is generated once and kept in $MCPGW_RUN_DIR/postgres.password.
#   postgres.sh install | start | stop | url      (start/url print the URL on stdout)
#   postgres.sh createdb NAME                     (creates NAME if missing, prints its URL)
# URL form: postgres://postgres:PASSWORD@127.0.0.1:PORT/DB
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

RUN=$(cd "$MCPGW_RUN_DIR" && pwd) # absolute: it ends up in the server's config
PIDFILE=$RUN/postgres.pid
PORTFILE=$RUN/postgres.port
PWFILE=$RUN/postgres.password
ME="scripts/deps/postgres.sh"

# The server refuses to run as root, so as root we run it as user `postgres`. That
# user cannot enter a home directory that is 0700 (/root), so then the cluster lives
# in postgres's own home, one per run dir, with a symlink from the run dir to it.
if ((EUID == 0)); then
  as_pg() { runuser -u postgres -- "$@"; }
  if id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$RUN"; then
    PGBASE="$(getent passwd postgres | cut -d: -f6)/mcpgw-$(printf %s "$RUN" | sha256sum | cut -c1-12)"
  fi
else
  as_pg() { "$@"; }
fi
PGBASE=${PGBASE:-$RUN/postgres}
DATA=$PGBASE/data
LOGFILE=$PGBASE/server.log # written by the server user, so it sits beside the data

# Directory with initdb/pg_ctl: Debian keeps them off PATH, in /usr/lib/postgresql/N/bin.
bindir() {
  local d
  for d in "$(pg_config --bindir 2>/dev/null)" /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    [[ -x $d/initdb && -x $d/pg_ctl ]] && { echo "$d"; return; }
  done
  return 1
}
die_log() { die "$1"$'\n'"--- last lines of $LOGFILE ---"$'\n'"$(tail -n 20 "$LOGFILE" 2>/dev/null)"; }
url_for() { echo "postgres://postgres:$(cat "$PWFILE")@127.0.0.1:$(cat "$PORTFILE")/${1:-postgres}"; }

install() {
  if ! bindir >/dev/null || ! id postgres >/dev/null 2>&1; then
    exec 9>>"$MCPGW_CACHE_DIR/.install.lock"
    flock 9
    bindir >/dev/null || apt_install postgresql
  fi
  local bin
  bin=$(bindir) || die "no initdb/pg_ctl found after installing postgresql; check 'dpkg -L postgresql-15 | grep bin/initdb'"
  log "postgres ready: $("$bin/postgres" --version) in $bin"
}

running() { pid_is "$PIDFILE" postgres && [[ -s $PORTFILE ]] && port_open 127.0.0.1 "$(cat "$PORTFILE")"; }

# First start: a new cluster whose superuser password is a fresh random one.
init_cluster() {
  local bin=$1
  [[ -s $PWFILE ]] || (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(16))' >"$PWFILE")
  mkdir -p "$PGBASE"
  ((EUID != 0)) || chown postgres: "$PGBASE"
  chmod 700 "$PGBASE"
  [[ $PGBASE == "$RUN/postgres" ]] || ln -sfn "$PGBASE" "$RUN/postgres"
  log "initdb $DATA"
  # The server user may not be able to read $PWFILE (root-only run dir): hand initdb
  # a copy in its own directory, removed right after.
  command install -m 600 "$PWFILE" "$PGBASE/pwfile"
  ((EUID != 0)) || chown postgres: "$PGBASE/pwfile"
  as_pg "$bin/initdb" -D "$DATA" -U postgres --pwfile="$PGBASE/pwfile" --auth=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$RUN/postgres-initdb.log" 2>&1 ||
    { rm -f "$PGBASE/pwfile"; die "initdb failed (see $RUN/postgres-initdb.log); to start over: rm -rf $PGBASE $PWFILE && $ME start"; }
  rm -f "$PGBASE/pwfile"
  # TCP on loopback only; no Unix socket, so no clash with a system cluster's socket
  # directory. Room for test pools plus Keycloak's.
  cat >>"$DATA/postgresql.conf" <<'EOF'
# mcpgw test settings (scripts/deps/postgres.sh)
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
EOF
}

start() {
  if running; then
    log "postgres already running (pid $(cat "$PIDFILE")); reusing it"
    url_for
    return
  fi
  local bin port
  bin=$(bindir) || die "PostgreSQL is not installed; run: $ME install"
  if [[ ! -s $DATA/PG_VERSION ]]; then
    init_cluster "$bin"
  elif [[ ! -s $PWFILE ]]; then
    die "$DATA exists but its password file $PWFILE is gone; to start over: rm -rf $PGBASE && $ME start"
  fi
  # A live but unresponsive server of ours holds the data dir: stop it first.
  shutdown
  rm -f "$PIDFILE" "$PORTFILE"
  port=$(free_port)
  log "starting postgres on 127.0.0.1:$port (data $DATA, log $LOGFILE)"
  as_pg "$bin/pg_ctl" start -D "$DATA" -l "$LOGFILE" -w -t 60 -o "-p $port" >&2 ||
    die_log "postgres failed to start"
  head -n1 "$DATA/postmaster.pid" >"$PIDFILE"
  echo "$port" >"$PORTFILE"
  log "postgres up on 127.0.0.1:$port (pid $(cat "$PIDFILE"))"
  url_for
}

url() {
  running || die "postgres is not running; run: $ME start"
  url_for
}

# createdb NAME: create the database if missing (serialised, so parallel callers are safe).
createdb() {
  local name=${1:-}
  [[ $name =~ ^[a-z_][a-z0-9_]*$ ]] || die "usage: $ME createdb NAME (NAME: lower-case letters, digits, _)"
  running || die "postgres is not running; run: $ME start"
  exec 8>>"$RUN/postgres.lock"
  flock 8
  local psql=("$(bindir)/psql" -X -q -v ON_ERROR_STOP=1 -d "$(url_for)" -tA)
  if [[ -z $("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$name'") ]]; then
    log "creating database $name"
    "${psql[@]}" -c "CREATE DATABASE \"$name\"" >&2
  fi
  url_for "$name"
}

# shutdown: stop our server if one runs on $DATA; succeed (quietly) if none does.
shutdown() {
  local bin
  [[ -s $DATA/postmaster.pid ]] || return 0
  bin=$(bindir) || die "PostgreSQL binaries are gone; stop the server by hand: kill -INT \$(head -n1 $DATA/postmaster.pid)"
  as_pg "$bin/pg_ctl" status -D "$DATA" >/dev/null 2>&1 || return 0
  log "stopping postgres"
  # Fast shutdown: disconnect clients instead of waiting for them (SIGTERM would wait).
  as_pg "$bin/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >&2 || die_log "pg_ctl stop failed"
  log "postgres stopped"
}

stop() {
  pid_is "$PIDFILE" postgres || [[ -s $DATA/postmaster.pid ]] || log "postgres was not running"
  shutdown
  rm -f "$PIDFILE" "$PORTFILE"
}

case ${1:-} in
  install | start | stop | url) "$1" ;;
  createdb) createdb "${2:-}" ;;
  *) die "usage: $ME install|start|stop|url|createdb NAME" ;;
esac
