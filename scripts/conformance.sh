#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance, server scenarios)
# against the gateway fronting our fixture server, in both protocol eras. See docs/conformance.md.
#
#   scripts/conformance.sh [--gateway-only] [--out DIR]
#
# What it does, everything on 127.0.0.1 and stopped by pid on exit:
#   1. installs the pinned peers if needed (scripts/deps/mcp-peers.sh) and builds the example
#      services/gateway/examples/conformance_stack.rs (registry + token issuer + gateway in one
#      process, as the tests start them) into ${CARGO_TARGET_DIR:-<repo>/target};
#   2. starts the fixture services/gateway/tests/peers/conformance_server.py (Python SDK 2.x,
#      both eras on one endpoint) and the stack, which registers the fixture as server
#      `conformance`, grants group `conformance` "methods": "*", "tools": "*", and prints a
#      bearer token for that group;
#   3. unless --gateway-only, runs the suite against the fixture directly (the baseline: what
#      the fixture itself passes), then through the gateway, for `--requirements 2025-11-25`
#      (initialize handshake) and `--requirements 2026-07-28` (stateless). The CLI cannot send
#      headers, so tests/conformance/bearer.cjs (a node --require preload) adds the bearer
#      token to the requests bound for the gateway;
#   4. judges each run against services/gateway/tests/conformance/expected-failures-<era>.yml:
#      the CLI itself (--expected-failures, scored scenarios) and tests/conformance/baseline.py
#      (the same rules over every scenario run, not-scored ones included; for the direct run,
#      the file's entries minus its `gateway_only:` ones).
# Exit status 0 when every run matches its expectations; 1 when a scenario or check that
# passed fails (regression) or a listed one passes (stale entry: remove it); 2 on a setup error.
# Results (checks.json per scenario, CLI output, gateway and fixture logs) are left in
# --out DIR (default $MCPGW_RUN_DIR/conformance; emptied first, so it must be empty or a previous
# results directory). About 20 s once built.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/lib.sh

GATEWAY_ONLY=0
OUT=$MCPGW_RUN_DIR/conformance
while (($#)); do
  case $1 in
    --gateway-only) GATEWAY_ONLY=1 ;;
    --out) OUT=${2:?--out needs a directory}; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) printf 'ERROR: unknown argument %s (see --help)\n' "$1" >&2; exit 2 ;;
  esac
  shift
done
setup_die() { printf 'ERROR: %s\n' "$*" >&2; exit 2; }
if [[ -e $OUT && ! -e $OUT/.conformance-results ]] && [[ -n $(ls -A "$OUT" 2>/dev/null) ]]; then
  setup_die "--out $OUT is not empty and is not a previous results directory; give another one"
fi
rm -rf "$OUT"
mkdir -p "$OUT"
touch "$OUT/.conformance-results"

HERE=$ROOT/services/gateway/tests
ERAS=(2025-11-25 2026-07-28)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RUN_TIMEOUT=150 # seconds for one CLI run (a full run takes about 10 s)

scripts/deps/mcp-peers.sh install
eval "$(scripts/deps/mcp-peers.sh env)"
CONF_VERSION=$("$MCPGW_TEST_NODE" -p "require('$MCPGW_TEST_NODE_PEERS/node_modules/@modelcontextprotocol/conformance/package.json').version")

log "building the conformance stack (cargo example, target dir $TARGET_DIR)"
CARGO_TARGET_DIR=$TARGET_DIR cargo build -q --locked -p gateway --example conformance_stack ||
  setup_die "cargo build -p gateway --example conformance_stack failed"
STACK_BIN=$TARGET_DIR/debug/examples/conformance_stack

PIDS=() # pid files of what this run started
cleanup() {
  local f
  for f in "${PIDS[@]}"; do stop_pid "$f" "$(cat "$f.name")"; rm -f "$f" "$f.name"; done
}
trap cleanup EXIT

# start NAME MATCH TIMEOUT CMD...: runs CMD in the background (stdout to $OUT/NAME.out, stderr
# to $OUT/NAME.log), records its pid, waits for its `READY ...` line and leaves it in $READY.
READY=
start() {
  local name=$1 match=$2 timeout=$3 pidf=$MCPGW_RUN_DIR/conformance-$1.pid deadline
  shift 3
  nohup "$@" >"$OUT/$name.out" 2>"$OUT/$name.log" </dev/null &
  echo $! >"$pidf"
  echo "$match" >"$pidf.name"
  PIDS+=("$pidf")
  deadline=$((SECONDS + timeout))
  until grep -q '^READY ' "$OUT/$name.out" 2>/dev/null; do
    if ! kill -0 "$(cat "$pidf")" 2>/dev/null || ((SECONDS >= deadline)); then
      setup_die "$name did not print READY within ${timeout} s; see $OUT/$name.log"$'\n'"$(tail -n 20 "$OUT/$name.log" "$OUT/$name.out")"
    fi
    sleep 0.1
  done
  READY=$(grep -m1 '^READY ' "$OUT/$name.out")
}

start fixture conformance_server.py 30 "$MCPGW_TEST_PY_PEERS/python" "$HERE/peers/conformance_server.py" --port 0
read -r _ FIXTURE_URL <<<"$READY"
log "fixture at $FIXTURE_URL"
export MCPGW_CONFORMANCE_LOG=${MCPGW_CONFORMANCE_LOG:-warn}
start gateway conformance_stack 60 "$STACK_BIN" --upstream "$FIXTURE_URL" --path conformance
read -r _ GATEWAY_URL TOKEN <<<"$READY"
log "gateway at $GATEWAY_URL (registry, issuer and gateway: pid $(cat "$MCPGW_RUN_DIR/conformance-gateway.pid"))"
GATEWAY_ORIGIN=${GATEWAY_URL%/conformance/mcp}

# suite MODE ERA URL: one CLI run; its output in $OUT/MODE-ERA.log and $OUT/MODE-ERA/.
FAILED=0
suite() {
  local mode=$1 era=$2 url=$3 name=$1-$2 rc=0 cli=()
  cli=(timeout "$RUN_TIMEOUT" "$MCPGW_TEST_NODE" --require "$MCPGW_TEST_NODE_LOOPBACK")
  if [[ $mode == gateway ]]; then
    cli+=(--require "$HERE/conformance/bearer.cjs")
  fi
  cli+=("$MCPGW_TEST_CONFORMANCE" server --url "$url" --requirements "$era" -o "$OUT/$name")
  if [[ $mode == gateway ]]; then
    cli+=(--expected-failures "$HERE/conformance/expected-failures-$era.yml")
  fi
  log "conformance $CONF_VERSION, requirements $era, $mode ($url)"
  (cd "$OUT" && MCPGW_CONFORMANCE_TOKEN=$TOKEN MCPGW_CONFORMANCE_ORIGIN=$GATEWAY_ORIGIN "${cli[@]}") \
    >"$OUT/$name.log" 2>&1 || rc=$?
  if ((rc == 124)); then
    printf '  the CLI did not finish within %s s; see %s\n' "$RUN_TIMEOUT" "$OUT/$name.log" >&2
    FAILED=1
  elif [[ $mode == gateway ]] && ((rc != 0)); then
    printf '  the CLI reports a difference from expected-failures-%s.yml (exit %s):\n' "$era" "$rc" >&2
    sed 's/\x1b\[[0-9;]*m//g' "$OUT/$name.log" |
      sed -n '/^\(Expected failures\|Stale baseline\|Unexpected failures\)/,$p' | sed 's/^/    /' >&2
    FAILED=1
  fi
  local direct=()
  [[ $mode == direct ]] && direct=(--direct)
  "$MCPGW_TEST_PY_PEERS/python" "$HERE/conformance/baseline.py" --log "$OUT/$name.log" --results "$OUT/$name" \
    --expected "$HERE/conformance/expected-failures-$era.yml" \
    --requirements "$(dirname "$MCPGW_TEST_CONFORMANCE")/../requirements/$era.yaml" --label "  $mode $era" "${direct[@]}" >&2 || FAILED=1
}

for era in "${ERAS[@]}"; do
  ((GATEWAY_ONLY)) || suite direct "$era" "$FIXTURE_URL"
  suite gateway "$era" "$GATEWAY_URL"
done

if ((FAILED)); then
  log "conformance: DIFFERENT from the expected failures (results in $OUT; see docs/conformance.md)"
  exit 1
fi
log "conformance: as expected (results in $OUT)"
