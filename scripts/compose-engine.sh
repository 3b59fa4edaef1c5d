#!/usr/bin/env bash
# A Docker engine of this project's own for the compose stack test (scripts/compose-test.sh):
# Debian's docker.io, started as root with every piece of its state under
# $MCPGW_CACHE_DIR/docker (data root: images and build cache survive, so a second run is fast;
# exec root, pid file, socket), so it never touches a system Docker, and stopped by its pid.
#   compose-engine.sh install | start | stop | host
# start and host print the DOCKER_HOST to use on stdout. stop also removes what the engine added
# to the host: its bridge (mcpgw-docker0) and the iptables chains it created.
# Needs root (the engine needs it); the images cannot be pulled here, so nothing is pulled.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT=$MCPGW_CACHE_DIR/docker
RUN=$ROOT/run
PIDFILE=$RUN/dockerd.pid
LOGFILE=$RUN/dockerd.log
SOCK=$RUN/docker.sock
# A bridge of our own, so a system engine's docker0 (if any) is left alone. The address range
# is one no default engine picks; compose networks come from the default pools as usual.
BRIDGE=mcpgw-docker0
BRIDGE_CIDR=${MCPGW_DOCKER_BRIDGE_CIDR:-10.213.76.1/24}
ME=scripts/compose-engine.sh

host() { echo "unix://$SOCK"; }
running() { pid_is "$PIDFILE" dockerd && DOCKER_HOST=$(host) docker info >/dev/null 2>&1; }

install() {
  ((EUID == 0)) || die "the Docker engine runs as root; run $ME as root"
  # Debian's /usr/bin/docker: its built-in BuildKit needs no buildx plugin (scripts/build-images.sh).
  if [[ ! -x /usr/sbin/dockerd || ! -x /usr/bin/docker ]]; then
    apt_install docker.io containerd runc iptables
  fi
  log "docker engine ready: $(/usr/sbin/dockerd --version)"
}

start() {
  if running; then
    log "docker engine already running (pid $(cat "$PIDFILE")); reusing it"
    host
    return
  fi
  [[ -x /usr/sbin/dockerd ]] || die "dockerd is not installed; run: $ME install"
  mkdir -p "$ROOT/data" "$ROOT/exec" "$RUN"
  rm -f "$SOCK"
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
  log "starting dockerd (state in $ROOT)"
  # setsid: the engine outlives this script; stop() ends it by its pid.
  setsid /usr/sbin/dockerd --data-root "$ROOT/data" --exec-root "$ROOT/exec" \
    --pidfile "$PIDFILE" -H "$(host)" --bridge "$BRIDGE" --storage-driver overlay2 \
    >"$LOGFILE" 2>&1 </dev/null &
  local deadline=$((SECONDS + 60))
  until DOCKER_HOST=$(host) docker info >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "dockerd did not answer within 60 s"$'\n'"$(tail -n 20 "$LOGFILE")"
    sleep 0.5
  done
  host
}

stop() {
  stop_pid "$PIDFILE" dockerd
  # The containerd it started as its child goes with it; then what it added to the host: the
  # rules that jump to its chains or name its bridge, the chains, the bridge.
  # Another engine (a system Docker) shares the DOCKER chains: then only our bridge's rules go.
  local table chain rule pattern="-j DOCKER(-[A-Z0-9-]+)?\$| $BRIDGE " shared=""
  if pgrep -x dockerd >/dev/null; then shared=1 pattern=" $BRIDGE "; fi
  for table in filter nat; do
    iptables -t "$table" -S 2>/dev/null | grep -E -- "$pattern" |
      grep '^-A' | sed 's/^-A/-D/' | while read -r rule; do
      # shellcheck disable=SC2086 # the rule is iptables' own words, split as it printed them
      iptables -t "$table" $rule 2>/dev/null || true
    done
    [[ -z $shared ]] || continue
    for chain in DOCKER-USER DOCKER-ISOLATION-STAGE-2 DOCKER-ISOLATION-STAGE-1 DOCKER; do
      iptables -t "$table" -S 2>/dev/null | grep -q -- "^-N $chain\$" || continue
      iptables -t "$table" -F "$chain" 2>/dev/null || true
      iptables -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE" || true; fi
}

case ${1:-} in
  install) install ;;
  start) start ;;
  stop) stop ;;
  host) running || die "no engine of ours is running; run: $ME start"; host ;;
  *) die "usage: $ME install | start | stop | host" ;;
esac
