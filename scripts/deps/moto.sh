#!/usr/bin/env bash
# AWS Secrets Manager emulator (moto server) on 127.0.0.1. State is in memory:
# every start begins empty. Clients need dummy credentials, e.g.
# AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1.
#   moto.sh install | start | stop | url      (start/url print the URL on stdout)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

PIDFILE=$MCPGW_RUN_DIR/moto.pid
PORTFILE=$MCPGW_RUN_DIR/moto.port
LOGFILE=$MCPGW_RUN_DIR/moto.log
BIN=$MCPGW_VENV/bin/moto_server
ME="scripts/deps/moto.sh"

# Pinned so that every machine emulates the same AWS behaviour.
install() {
  ensure_venv
  [[ -x $BIN ]] || pip_install 'moto[server]==5.2.5'
  log "moto ready: $("$MCPGW_VENV/bin/python" -c 'import moto; print(moto.__version__)')"
}

running() { pid_is "$PIDFILE" moto_server && [[ -s $PORTFILE ]] && port_open 127.0.0.1 "$(cat "$PORTFILE")"; }

start() {
  if running; then
    log "moto_server already running (pid $(cat "$PIDFILE")); reusing it"
    echo "http://127.0.0.1:$(cat "$PORTFILE")"
    return
  fi
  [[ -x $BIN ]] || die "moto_server not installed; run: $ME install"
  stop_pid "$PIDFILE" moto_server # alive but not answering: replace it
  rm -f "$PIDFILE" "$PORTFILE"
  local port pid
  port=$(free_port)
  log "starting moto_server on 127.0.0.1:$port (log $LOGFILE)"
  nohup "$BIN" -H 127.0.0.1 -p "$port" >"$LOGFILE" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  # Check the pid too: if our server died, the port may belong to someone else.
  if ! wait_for_port 127.0.0.1 "$port" 30 || ! kill -0 "$pid" 2>/dev/null; then
    stop_pid "$PIDFILE" moto_server
    rm -f "$PIDFILE"
    die "moto_server did not come up on 127.0.0.1:$port within 30 s; see $LOGFILE, then retry: $ME start"$'\n'"$(tail -n 20 "$LOGFILE")"
  fi
  echo "$port" >"$PORTFILE"
  log "moto_server up on 127.0.0.1:$port (pid $pid)"
  echo "http://127.0.0.1:$port"
}

url() {
  running || die "moto_server is not running; run: $ME start"
  echo "http://127.0.0.1:$(cat "$PORTFILE")"
}

stop() {
  if pid_is "$PIDFILE" moto_server; then stop_pid "$PIDFILE" moto_server; log "moto_server stopped"; else log "moto_server was not running"; fi
  rm -f "$PIDFILE" "$PORTFILE"
}

case ${1:-} in
  install | start | stop | url) "$1" ;;
  *) die "usage: $ME install|start|stop|url" ;;
esac
