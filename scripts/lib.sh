#!/usr/bin/env bash
# Shared helpers for scripts/deps/*.sh and scripts/bench-*.sh. Source it; do not run it.
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

# --- benchmark scripts (scripts/bench-*.sh) -------------------------------------------------------
# One copy of the start-up, quiet-wait, registry start and report-writing code they share.

# bench_init NAME: a private work dir $WORK and the list $PIDS of what the script starts, stopped in
# reverse order at exit (then the optional hook bench_on_exit runs). $WORK is removed on success
# unless BENCH_KEEP is set.
bench_init() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcpgw-bench-$1.XXXXXX")
  chmod 700 "$WORK"
  PIDS=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
bench_cleanup() {
  local rc=$? i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do bench_stop "${PIDS[i]}"; done
  if declare -F bench_on_exit >/dev/null; then bench_on_exit || true; fi
  if ((rc == 0)) && [[ -z ${BENCH_KEEP:-} ]]; then rm -rf "$WORK"; else log "kept $WORK (logs, partial results)"; fi
}

# bench_stop PID: SIGTERM, then SIGKILL after 15 s; reaps it and drops it from PIDS. No-op if it is gone.
bench_stop() {
  local pid=$1
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  # Forget it, so cleanup never signals a later process that got the same pid.
  local kept=() p
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
  PIDS=("${kept[@]}")
}

# busy_pct: percent of all CPUs busy over the next 3 seconds (from /proc/stat).
busy_pct() {
  local a b
  a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
  sleep 3
  b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[2] - x[2]; printf "%.0f", (t > 0 ? 100 * (y[1] - x[1]) / t : 0) }'
}

# wait_quiet [MAX_BUSY_PCT=15]: numbers from a machine that is also compiling are noise. Wait up to
# $QUIET_WAIT s (default 1200) until the CPUs are mostly idle; if they never were, say so in
# QUIET_NOTE, which the reports print.
QUIET_NOTE=""
wait_quiet() {
  local max=${1:-15} limit=${QUIET_WAIT:-1200} busy
  local deadline=$((SECONDS + limit))
  while busy=$(busy_pct) && ((busy > max)); do
    if ((SECONDS >= deadline)); then
      log "the machine is still ${busy}% busy after ${limit} s; benchmarking anyway"
      QUIET_NOTE="The machine was ${busy}% busy with other work when a measurement started; treat these numbers as pessimistic."
      return
    fi
    log "CPUs ${busy}% busy with other work; waiting for them to settle before measuring"
    sleep 10
  done
}

# cpu_seconds PID: user+system CPU time the process has used so far.
cpu_seconds() {
  awk -v tck="$(getconf CLK_TCK)" '{ print ($14 + $15) / tck }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# children_cpu: set CHILD_CPU to the user+system CPU seconds of this shell's finished
# (waited-for) children. Not a $(...) function: `times` in a subshell would see the
# subshell's children, i.e. none.
CHILD_CPU=0
children_cpu() {
  times >"$WORK/times"
  CHILD_CPU=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$WORK/times")
}

# machine_facts: set cpu_model and mem_gb (GiB) for the reports.
machine_facts() {
  cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  mem_gb=$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
}

# verdict VALUE OP LIMIT (OP one of < <= >=): "met" or "**missed**".
verdict() {
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
    ok = (op == "<") ? (v + 0 < l + 0) : (op == "<=") ? (v + 0 <= l + 0) : (v + 0 >= l + 0)
    print ok ? "met" : "**missed**" }'
}

# start_registry BIN DATA_DIR STORE_URL LOG [MCPGW_REGISTRY_X=value...]: start a registry on
# 127.0.0.1:$REG_PORT (metrics on $REG_MPORT; both picked if unset) with the bench settings plus
# the given ones (which win), add it to PIDS, set REG_PID, and wait (60 s at most) until it
# answers /health and has written DATA_DIR/admin.key. Inherited MCPGW_REGISTRY_* settings are
# dropped first: they would make runs incomparable.
start_registry() {
  local bin=$1 data=$2 url=$3 log_file=$4 v
  shift 4
  [[ -n ${REG_PORT:-} ]] || REG_PORT=$(free_port)
  [[ -n ${REG_MPORT:-} ]] || REG_MPORT=$(free_port)
  while [[ $REG_MPORT == "$REG_PORT" ]]; do REG_MPORT=$(free_port); done
  mkdir -p "$data"
  for v in $(compgen -e | grep '^MCPGW_REGISTRY_' || true); do unset "$v"; done
  MCPGW_REGISTRY_LISTEN=127.0.0.1:$REG_PORT \
    MCPGW_REGISTRY_METRICS_LISTEN=127.0.0.1:$REG_MPORT \
    MCPGW_REGISTRY_DATA_DIR=$data \
    MCPGW_REGISTRY_STORE__URL=$url \
    MCPGW_REGISTRY_EGRESS__ALLOW_LOOPBACK=true \
    MCPGW_REGISTRY_BOOTSTRAP__ADMIN_KEY_FILE=$data/admin.key \
    MCPGW_REGISTRY_LOG__FILTER=warn \
    env "$@" "$bin" serve >"$log_file" 2>&1 &
  REG_PID=$!
  PIDS+=("$REG_PID")
  # /health can answer a moment before main() writes the key file: wait for both.
  local deadline=$((SECONDS + 60))
  until curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$REG_PORT/health" && [[ -s $data/admin.key ]]; do
    kill -0 "$REG_PID" 2>/dev/null || die "the registry exited during startup:"$'\n'"$(tail -n 20 "$log_file")"
    ((SECONDS < deadline)) || die "the registry did not answer within 60 s:"$'\n'"$(tail -n 20 "$log_file")"
    sleep 0.2
  done
}

# write_sections OUT SECTION_FILE HEADING...: put SECTION_FILE's text into OUT in place of the
# sections under HEADING... (each from its heading to the next "## " heading), where the first of
# them stood, or at the end; other sections are kept. Creates OUT with a short header if missing.
write_sections() {
  python3 - "$@" <<'PY'
import os, sys
out, section_file, *headings = sys.argv[1:]
section = open(section_file).read().rstrip("\n") + "\n"
if os.path.exists(out):
    lines = open(out).read().splitlines(keepends=True)
else:
    lines = [
        "# Performance\n", "\n",
        "Measurements of mcpgw on the development machine (2 cores, see each section for the CPU).\n",
        "Each section names the script that produced it; rerun that script to refresh it, e.g.\n",
        "`scripts/bench-registry.sh` for the registry. Sections are replaced in place, others kept.\n",
        "\n",
    ]
at = None
for heading in headings:
    start = next((i for i, l in enumerate(lines) if l.rstrip("\n") == heading), None)
    if start is None:
        continue
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    del lines[start:end]
    at = start if at is None else min(at, start)
if at is None:
    if lines and lines[-1].strip():
        lines.append("\n")
    lines.append(section)
else:
    tail = lines[at:]
    lines[at:] = [section] + (["\n"] if tail else []) + tail
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
open(out, "w").write("".join(lines))
PY
}
