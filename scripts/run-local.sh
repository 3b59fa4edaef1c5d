#!/usr/bin/env bash
# `make run`: the registry, the auth-server and the gateway on one machine, on embedded
# defaults (SQLite files under ./data, no Docker, no Keycloak). Ctrl-C stops all three.
#   registry     http://127.0.0.1:7860   (admin API key printed at its first start)
#   console      http://127.0.0.1:7860/console/ (sign in at the auth-server as admin)
#   auth-server  http://127.0.0.1:7870   (admin password printed at its first start)
#   gateway      http://127.0.0.1:8080   (the demo server at /demo/mcp)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
CARGO=${CARGO:-cargo}

log "building the three services (the first build takes a few minutes)"
$CARGO build -p registry -p auth-server -p gateway
bin=$($CARGO metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug

mkdir -p data/registry data/gateway
# The gateway reads the routing snapshot with an API key that may do nothing else.
"$bin/registry" --config services/registry/config/local.toml gateway-key --output data/registry/gateway.key

pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

"$bin/registry" --config services/registry/config/local.toml & pids+=($!)
"$bin/auth-server" --config services/auth-server/config/local.toml & pids+=($!)
wait_for_port 127.0.0.1 7860 60 || die "the registry did not start (see its log above)"
"$bin/gateway" --config services/gateway/config/local.toml & pids+=($!)
wait_for_port 127.0.0.1 8080 60 || die "the gateway did not start (see its log above)"
wait_for_port 127.0.0.1 7870 60 || die "the auth-server did not start (see its log above)"
log "running: registry http://127.0.0.1:7860 (console /console/), auth-server http://127.0.0.1:7870, gateway http://127.0.0.1:8080/demo/mcp (Ctrl-C stops)"
log "an MCP client needs only that URL: it registers at the auth-server and signs in in the browser (as admin: the password is printed at the auth-server's first start and kept in data/auth-server/admin.password)"
wait -n "${pids[@]}"
die "a service stopped; the others are being stopped too"
