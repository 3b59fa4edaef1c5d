#!/usr/bin/env bash
# Shared helpers for scripts/deps/*.sh. Source it; do not run it.
# Everything here binds or connects to 127.0.0.1 only.

MCPGW_CACHE_DIR="${MCPGW_CACHE_DIR:-$HOME/.cache/mcpgw}"
MCPGW_RUN_DIR="${MCPGW_RUN_DIR:-$MCPGW_CACHE_DIR/run}"
# One venv holds every Python-packaged dependency (mongod wheel, pymongo, moto).
MCPGW_VENV="${MCPGW_VENV:-$MCPGW_CACHE_DIR/venv}"
mkdir -p "$MCPGW_CACHE_DIR" "$MCPGW_RUN_DIR"

log() { printf '==> [%3ss] %s\n' "$SECONDS" "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# Print a TCP port that is free on 127.0.0.1 right now (the kernel picks it).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for_port HOST PORT TIMEOUT_S: succeed once something accepts TCP connections.
wait_for_port() {
  local host=$1 port=$2 deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# port_open HOST PORT: one non-waiting probe.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# pid_is PIDFILE NAME: succeed if PIDFILE names a live process whose command line
# mentions NAME (guards against a stale pid file whose pid was reused).
pid_is() {
  local pid
  pid=$(cat "$1" 2>/dev/null) && [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

# stop_pid PIDFILE NAME: SIGTERM, wait up to 30 s, then SIGKILL. No-op if not running.
stop_pid() {
  local pid deadline=$((SECONDS + 30))
  pid_is "$1" "$2" || return 0
  pid=$(cat "$1")
  log "stopping $2 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$2 ignored SIGTERM for 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

# apt_install PKG...: install Debian packages, running `apt-get update` at most once per script.
apt_install() {
  local sudo=""
  ((EUID == 0)) || sudo="sudo"
  [[ -z $sudo ]] || command -v sudo >/dev/null || die "need root (or sudo) to apt-get install $*; install them by hand and re-run"
  if [[ -z ${_MCPGW_APT_UPDATED:-} ]]; then
    log "apt-get update"
    $sudo apt-get update -qq >&2
    _MCPGW_APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
}

# ensure_venv: create $MCPGW_VENV if missing. Also takes a lock held until the
# calling script exits, so parallel installs do not pip into the same venv at once.
ensure_venv() {
  exec 9>>"$MCPGW_CACHE_DIR/.install.lock"
  flock 9
  [[ -x $MCPGW_VENV/bin/python ]] && return 0
  command -v python3 >/dev/null || apt_install python3 python3-venv
  log "creating venv $MCPGW_VENV"
  if ! python3 -m venv "$MCPGW_VENV" >&2; then
    # Debian ships ensurepip separately; a failed attempt leaves a half-made venv.
    rm -rf "$MCPGW_VENV"
    apt_install python3-venv
    python3 -m venv "$MCPGW_VENV" >&2
  fi
}

# pip_install ARGS...: pip into the shared venv, progress to stderr.
pip_install() {
  log "pip install $*"
  "$MCPGW_VENV/bin/python" -m pip install -q "$@" >&2
}
