#!/usr/bin/env bash
# Benchmark the gateway's data plane and record the results in docs/performance.md (section
# "## Gateway: tools/call overhead and memory"; other sections are kept).
#
#   scripts/bench-gateway.sh
#
# What runs (all on 127.0.0.1, all stopped at exit):
#   - a release registry (SQLite in a new temp dir): the gateway's routing snapshot and its
#     audit store;
#   - services/gateway/examples/bench_stack.rs `stack`: a token issuer and a trivial MCP server
#     (rmcp, one `echo` tool, stateless, JSON answers), registered, approved for dev, with a
#     scope document that lets group `bench` call `echo`;
#   - the release gateway binary, as its own process (so its memory is its own), with
#     authentication, policy, rate limiting (a limit too high to refuse anything, so the check
#     still runs) and audit (JSON log line + batches to the registry) on, log filter `info`;
#   - bench_stack `proxy`: a bare forwarder on the gateway's HTTP stack (axum + the gateway's own
#     upstream client, nothing else), the floor any proxy on that stack pays for the extra hop;
#   - nginx and HAProxy (Debian packages; installed if missing) as plain reverse proxies to the
#     same MCP server: configs generated into the work directory, loopback only, keep-alive to
#     the upstream, nginx with its default access log (to a file), HAProxy without logging;
#   - `wrk` (Debian; installed if missing) sending the same 2026-07-28 stateless tools/call to the
#     MCP server directly, through each proxy, and through the gateway (with a bearer token), at
#     each concurrency, interleaved round by round, each run after a warm-up; the CPU time
#     (utime + stime from /proc/<pid>/stat) of every process involved is read before and after
#     each run and divided by the requests wrk counted: the CPU per call of each target;
#   - bench_stack `streams`: BENCH_STREAMS legacy SSE streams held open on the gateway while
#     its RSS is read from /proc;
#   - last, instructions per call: each of BENCH_CALLGRIND's targets is restarted on its port
#     under `valgrind --tool=callgrind` (perf's instruction counter is often missing in
#     VMs), sent BENCH_CALLGRIND_WARMUP requests, its counters zeroed, sent BENCH_CALLGRIND_CALLS
#     requests one after the other on one keep-alive connection (curl), and dumped: the
#     instructions of the proxy process (all threads) divided by the calls.
# Every timed request is checked: wrk must see no socket errors and no non-2xx answers, and the
# MCP server's call counter must have moved by at least the number of requests wrk counted
# (so error answers cannot pass as fast successes); one answer per target is checked for the
# echoed text before anything is timed.
#
# Tunables (environment):
#   BENCH_TARGETS="direct proxy nginx haproxy gateway"   BENCH_CONCURRENCY="1 64"
#   BENCH_DURATION=10 (s per timed run)   BENCH_WARMUP=3 (s)
#   BENCH_ROUNDS=3 (direct/gateway pairs per concurrency; the report gives the median)
#   BENCH_STREAMS=10000   BENCH_OUT=docs/performance.md   BENCH_QUIET_WAIT=1200 (s)
#   BENCH_CALLGRIND="proxy nginx haproxy gateway" (empty: no instruction counts)
#   BENCH_CALLGRIND_WARMUP=200   BENCH_CALLGRIND_CALLS=2000
#   BENCH_GATEWAY_ENV="MCPGW_GATEWAY_X=1 …"  extra gateway settings, recorded in the report
#   BENCH_PROFILE=1  after the timed runs, one more gateway run at the highest concurrency under
#     `perf record` (if installed); the flat profile of the gateway goes to stdout, not the report
#   BENCH_GATEWAY_BIN=path  a gateway binary built some other way, e.g. with frame pointers for
#     BENCH_PROFILE (see docs/performance.md); the report names it
#   BENCH_SKIP_BUILD=1  use the release binaries already built (e.g. while others edit the tree)
#   BENCH_KEEP=1  keep the work directory (logs, wrk output, perf data) even on success
#   CARGO_TARGET_DIR  where the release binaries are built (default: <repo>/target)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/lib.sh"

read -ra CONCURRENCY <<<"${BENCH_CONCURRENCY:-1 64}"
read -ra TARGETS <<<"${BENCH_TARGETS:-direct proxy nginx haproxy gateway}"
read -ra CALLGRIND <<<"${BENCH_CALLGRIND-proxy nginx haproxy gateway}"
CG_WARMUP=${BENCH_CALLGRIND_WARMUP:-200}
CG_CALLS=${BENCH_CALLGRIND_CALLS:-2000}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-3}
ROUNDS=${BENCH_ROUNDS:-3}
STREAMS=${BENCH_STREAMS:-10000}
QUIET_WAIT=${BENCH_QUIET_WAIT:-1200}
OUT=${BENCH_OUT:-$ROOT/docs/performance.md}
read -ra EXTRA_ENV <<<"${BENCH_GATEWAY_ENV:-}"
for kv in "${EXTRA_ENV[@]}"; do
  [[ $kv =~ ^MCPGW_GATEWAY_[A-Z0-9_]+=.*$ ]] || die "BENCH_GATEWAY_ENV: '$kv' is not MCPGW_GATEWAY_NAME=value"
done
# The allocator settings the gateway image runs with (its Dockerfile's ENV), so the bench measures
# the allocator as shipped.
mapfile -t IMAGE_ENV < <(grep -o 'MIMALLOC_[A-Z_]*=[0-9]*' "$ROOT/services/gateway/Dockerfile")
((${#IMAGE_ENV[@]})) || die "services/gateway/Dockerfile sets no MIMALLOC_ variables"
SECTION="## Gateway: tools/call overhead and memory"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
REGISTRY_BIN=$TARGET_DIR/release/registry
GATEWAY_BIN=${BENCH_GATEWAY_BIN:-$TARGET_DIR/release/gateway}
STACK_BIN=$TARGET_DIR/release/examples/bench_stack

bench_init gw

# wait_for WHAT TIMEOUT_S PID COMMAND...: retry COMMAND until it succeeds; fail if PID dies.
wait_for() {
  local what=$1 deadline=$((SECONDS + $2)) pid=$3
  shift 3
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || die "$what exited during startup (logs in $WORK)"
    ((SECONDS < deadline)) || die "$what did not come up within the time limit (logs in $WORK)"
    sleep 0.2
  done
}

rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
hwm_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# metric NAME_WITH_LABELS: one sample from the gateway's /metrics (0 if absent).
metric() {
  curl -fsS --max-time 5 "$GW_METRICS" | awk -v m="$1" 'index($0, m " ") == 1 { v = $2 } END { print v + 0 }'
}

calls() { curl -fsS --max-time 5 "$COUNT_URL"; }

# ---------------------------------------------------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
((NOFILE > STREAMS + 1000)) || die "ulimit -n is $NOFILE; the stream test needs more than $((STREAMS + 1000)) (lower BENCH_STREAMS or raise the hard limit)"
# The gateway's default connection cap is half its descriptor limit (the other half is kept for
# upstream connections); the stream test holds STREAMS client connections at once, so when half
# is not enough the cap is set to what the limit leaves after 500 for the rest.
if ((NOFILE / 2 <= STREAMS + 100)); then
  EXTRA_ENV+=("MCPGW_GATEWAY_LISTENER__MAX_CONNECTIONS=$((NOFILE - 500))")
fi
command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || apt_install curl
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || apt_install nginx
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || apt_install haproxy
((${#CALLGRIND[@]} == 0)) || command -v valgrind >/dev/null || apt_install valgrind
PATH=$PATH:/usr/sbin

log "building the registry, the gateway and bench_stack (release). A first release build takes 15-25 min on 2 cores."
[[ -n ${BENCH_SKIP_BUILD:-} ]] ||
  (cd "$ROOT" && cargo build --release -p gateway -p registry --bins --example bench_stack)
for b in "$REGISTRY_BIN" "$GATEWAY_BIN" "$STACK_BIN"; do [[ -x $b ]] || die "build finished but $b is missing"; done

# --- the registry --------------------------------------------------------------------------------
REG_DATA=$WORK/registry
mkdir -p "$REG_DATA"
SEAL=$WORK/seal.key
(umask 077 && python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())' >"$SEAL")
for v in $(compgen -e | grep -E '^MCPGW_GATEWAY_' || true); do unset "$v"; done
log "starting the registry"
start_registry "$REGISTRY_BIN" "$REG_DATA" "sqlite://$REG_DATA/registry.db" "$WORK/registry.log" \
  MCPGW_REGISTRY_SECRETS__SEALING_KEY__FILE="$SEAL"

# --- the issuer, the MCP server, the registrations --------------------------------------------
GW_PORT=$(free_port)
GW_MPORT=$(free_port)
while [[ $GW_MPORT == "$GW_PORT" ]]; do GW_MPORT=$(free_port); done
STACK_JSON=$WORK/stack.json
log "starting the token issuer and the MCP server; registering the server"
MCPGW_BENCH_ADMIN_KEY=$(head -n1 "$REG_DATA/admin.key") "$STACK_BIN" stack \
  --registry "http://127.0.0.1:$REG_PORT" \
  --gateway-listen "127.0.0.1:$GW_PORT" --gateway-metrics-listen "127.0.0.1:$GW_MPORT" \
  --gateway-data "$WORK/gateway" --sealing-key-file "$SEAL" \
  --streams-per-caller $((STREAMS * 2)) --out "$STACK_JSON" >"$WORK/stack.log" 2>&1 &
STACK_PID=$!
PIDS+=("$STACK_PID")
wait_for "bench_stack" 60 "$STACK_PID" test -s "$STACK_JSON"
j() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$STACK_JSON" "$1"; }
DIRECT_URL=$(j direct_url)
GATEWAY_URL=$(j gateway_url)
GW_BASE=$(j gateway_base)
GW_METRICS=$(j gateway_metrics)
COUNT_URL=$(j count_url)
GW_CONFIG=$(j gateway_config)
TOKEN=$(j token)

# --- the bare forwarder ---------------------------------------------------------------------------
PX_PORT=$(free_port)
"$STACK_BIN" proxy --listen "127.0.0.1:$PX_PORT" --upstream "$DIRECT_URL" >"$WORK/proxy.log" 2>&1 &
PX_PID=$!
PIDS+=("$PX_PID")
PROXY_URL=http://127.0.0.1:$PX_PORT/mcp
wait_for "the bare forwarder" 30 "$PX_PID" port_open 127.0.0.1 "$PX_PORT"

# --- nginx and HAProxy: plain reverse proxies to the same MCP server ---------------------------
[[ $DIRECT_URL =~ ^http://127\.0\.0\.1:([0-9]+)/mcp$ ]] || die "unexpected MCP server URL $DIRECT_URL"
UP_PORT=${BASH_REMATCH[1]}
NG_PORT=$(free_port)
HA_PORT=$(free_port)
NGINX_URL=http://127.0.0.1:$NG_PORT/mcp
HAPROXY_URL=http://127.0.0.1:$HA_PORT/mcp
mkdir -p "$WORK/nginx"
# nginx_conf EXTRA: the config, EXTRA's directives first (callgrind runs nginx as one process).
nginx_conf() {
  cat <<EOF
$1
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
worker_processes auto;
events { worker_connections 4096; }
http {
  access_log $WORK/nginx/access.log;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  upstream mcp { server 127.0.0.1:$UP_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NG_PORT;
    location / {
      proxy_pass http://mcp;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # rmcp checks the Host header against its allowed hosts; nginx would send "mcp".
      proxy_set_header Host 127.0.0.1:$UP_PORT;
    }
  }
}
EOF
}
nginx_conf "" >"$WORK/nginx/nginx.conf"
nginx_conf "daemon off; master_process off;" >"$WORK/nginx/nginx-one.conf"
cat >"$WORK/haproxy.cfg" <<EOF
global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend bench
  bind 127.0.0.1:$HA_PORT
  default_backend mcp
backend mcp
  server mcp 127.0.0.1:$UP_PORT
EOF
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/.*version: nginx.//')
HAPROXY_VERSION=$(haproxy -v | awk 'NR == 1 { print $3 }')
log "starting nginx $NGINX_VERSION on 127.0.0.1:$NG_PORT and HAProxy $HAPROXY_VERSION on 127.0.0.1:$HA_PORT"
nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' \
  >"$WORK/nginx/stdout.log" 2>&1 &
NG_PID=$!
PIDS+=("$NG_PID")
wait_for "nginx" 30 "$NG_PID" port_open 127.0.0.1 "$NG_PORT"
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
HA_PID=$!
PIDS+=("$HA_PID")
wait_for "HAProxy" 30 "$HA_PID" port_open 127.0.0.1 "$HA_PORT"
# nginx's CPU is its master's and its workers' (its children).
nginx_pids() { echo "$NG_PID" $(pgrep -P "$NG_PID" || true); }

# --- the gateway ---------------------------------------------------------------------------------
log "starting the gateway on 127.0.0.1:$GW_PORT"
env "${IMAGE_ENV[@]}" "${EXTRA_ENV[@]}" "$GATEWAY_BIN" --config "$GW_CONFIG" >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
wait_for "the gateway" 60 "$GW_PID" curl -fs -o /dev/null --max-time 2 "$GW_BASE/ready"

# --- one checked request per target --------------------------------------------------------------
ID=1
BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
HEADERS=(
  "Content-Type: application/json"
  "Accept: application/json, text/event-stream"
  "MCP-Protocol-Version: 2026-07-28"
  "Mcp-Method: tools/call"
  "Mcp-Name: echo"
)
check_target() {
  local name=$1 url=$2 auth=${3:-} args=() h out
  for h in "${HEADERS[@]}"; do args+=(-H "$h"); done
  [[ -z $auth ]] || args+=(-H "Authorization: Bearer $auth")
  out=$(curl -sS --max-time 10 -w '\n%{http_code} %{content_type}' "${args[@]}" --data "$BODY" "$url") ||
    die "$name: the check request failed"
  python3 - "$name" "$out" <<'EOF' || die "$name does not answer the benchmark request correctly (see above)"
import json, sys
name, out = sys.argv[1], sys.argv[2]
body, _, status = out.rpartition("\n")
code, _, ctype = status.partition(" ")
try:
    v = json.loads(body)
except ValueError:
    sys.exit(f"{name}: HTTP {code}, {ctype}, not one JSON answer: {body[:400]}")
r = v.get("result") or {}
text = "".join(c.get("text", "") for c in r.get("content", []))
if code != "200" or "error" in v or r.get("isError") or text != "hello":
    sys.exit(f"{name}: HTTP {code}: {body[:400]}")
print(f"{name}: HTTP {code} {ctype}: {body[:200]}", file=sys.stderr)
EOF
}
check_target direct "$DIRECT_URL"
check_target proxy "$PROXY_URL"
check_target nginx "$NGINX_URL"
check_target haproxy "$HAPROXY_URL"
check_target gateway "$GATEWAY_URL" "$TOKEN"
# …and a request without the token must be refused: authentication really is on.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "Content-Type: application/json" \
  -H "Accept: application/json, text/event-stream" --data "$BODY" "$GATEWAY_URL")
[[ $code == 401 ]] || die "the gateway answered $code to a request without a token (expected 401)"

# cpu_sum PID...: the CPU seconds of all of them (0 for none).
cpu_sum() {
  local p t=0
  for p in "$@"; do t=$(awk -v a="$t" -v b="$(cpu_seconds "$p")" 'BEGIN { print a + b }'); done
  echo "$t"
}

# wrk scripts: the request, and a summary line with microsecond latencies.
wrk_script() {
  local file=$1 auth=${2:-} h
  {
    echo 'wrk.method = "POST"'
    printf 'wrk.body = [[%s]]\n' "$BODY"
    for h in "${HEADERS[@]}"; do printf 'wrk.headers["%s"] = "%s"\n' "${h%%: *}" "${h#*: }"; done
    [[ -z $auth ]] || printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$auth"
    cat <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d socket_errors=%d non2xx=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
EOF
  } >"$file"
}
# The proxies get the direct request; only the gateway needs the token.
(umask 077 && wrk_script "$WORK/direct.lua" && wrk_script "$WORK/gateway.lua" "$TOKEN")

# --- memory: idle, then with many open streams ---------------------------------------------------
sleep 2
RSS_IDLE=$(rss_mb "$GW_PID")
log "gateway RSS idle: $RSS_IDLE MB"
log "opening $STREAMS SSE streams on the gateway"
MCPGW_BENCH_TOKEN=$TOKEN "$STACK_BIN" streams --url "$GW_BASE" --count "$STREAMS" >"$WORK/streams.out" 2>"$WORK/streams.log" &
STREAMS_PID=$!
PIDS+=("$STREAMS_PID")
wait_for "the stream client" 300 "$STREAMS_PID" grep -q '^open' "$WORK/streams.out"
sleep 3
RSS_STREAMS=$(rss_mb "$GW_PID")
OPEN_GAUGE=$(metric mcpgw_gateway_open_streams)
STREAMS_LINE=$(head -n1 "$WORK/streams.out")
GW_THREADS=$(awk '/^Threads:/ { print $2 }' "/proc/$GW_PID/status")
log "gateway RSS with $STREAMS streams: $RSS_STREAMS MB (client: $STREAMS_LINE; gateway open-stream gauge $OPEN_GAUGE)"
((OPEN_GAUGE >= STREAMS)) || die "the gateway counts $OPEN_GAUGE open streams, expected $STREAMS"
bench_stop "$STREAMS_PID"
deadline=$((SECONDS + 60))
while (($(metric mcpgw_gateway_open_streams) > 0)) && ((SECONDS < deadline)); do sleep 0.5; done
OPEN_AFTER=$(metric mcpgw_gateway_open_streams)
sleep 2
RSS_CLOSED=$(rss_mb "$GW_PID")
log "streams closed (gauge $OPEN_AFTER); gateway RSS $RSS_CLOSED MB"

# --- load ---------------------------------------------------------------------------------------
wait_quiet
# run_wrk NAME CONC SECONDS OUTFILE: one wrk run against target NAME; writes the RESULT line
# plus the CPU seconds each process used to OUTFILE.
run_wrk() {
  local name=$1 c=$2 secs=$3 out=$4 url script mid
  # mid: the proxy's processes (for direct: none).
  case $name in
    direct) url=$DIRECT_URL script=$WORK/direct.lua mid="" ;;
    proxy) url=$PROXY_URL script=$WORK/direct.lua mid=$PX_PID ;;
    nginx) url=$NGINX_URL script=$WORK/direct.lua mid=$(nginx_pids) ;;
    haproxy) url=$HAPROXY_URL script=$WORK/direct.lua mid=$HA_PID ;;
    gateway) url=$GATEWAY_URL script=$WORK/gateway.lua mid=$GW_PID ;;
    *) die "unknown target $name (expected direct, proxy, nginx, haproxy or gateway)" ;;
  esac
  local gw0 st0 rg0 calls0 ok0 calls1 ok1
  # shellcheck disable=SC2086 # mid is a list of pids
  gw0=$(cpu_sum $mid)
  st0=$(cpu_seconds "$STACK_PID")
  rg0=$(cpu_seconds "$REG_PID")
  calls0=$(calls)
  ok0=$(metric 'mcpgw_gateway_mcp_requests_total{decision="allowed",method="tools/call",server="bench",status="ok"}')
  children_cpu
  local wrk0=$CHILD_CPU
  wrk -t1 -c"$c" -d"${secs}s" --timeout 10s -s "$script" "$url" >"$out.raw" 2>&1 || die "wrk failed: $(cat "$out.raw")"
  children_cpu
  local wcpu
  wcpu=$(awk -v a="$CHILD_CPU" -v b="$wrk0" 'BEGIN { print a - b }')
  calls1=$(calls)
  ok1=$(metric 'mcpgw_gateway_mcp_requests_total{decision="allowed",method="tools/call",server="bench",status="ok"}')
  grep '^RESULT' "$out.raw" >"$out" || die "wrk printed no result: $(cat "$out.raw")"
  # shellcheck disable=SC2086
  awk -v g="$(cpu_sum $mid)" -v g0="$gw0" -v s="$(cpu_seconds "$STACK_PID")" -v s0="$st0" \
    -v r="$(cpu_seconds "$REG_PID")" -v r0="$rg0" -v w="$wcpu" -v calls=$((calls1 - calls0)) -v ok=$((ok1 - ok0)) \
    'BEGIN { printf "cpu_middle=%.2f cpu_upstream=%.2f cpu_registry=%.2f cpu_wrk=%.2f calls=%d gw_ok=%d\n", g - g0, s - s0, r - r0, w, calls, ok }' >>"$out"
}

# field FILE KEY: a key=value from a result file.
field() { tr ' ' '\n' <"$1" | awk -F= -v k="$2" '$1 == k { print $2; exit }'; }

# check_run NAME C FILE: every request counted must have reached the tool.
check_run() {
  local name=$1 c=$2 f=$3 req errs non2xx calls ok
  req=$(field "$f" requests)
  errs=$(field "$f" socket_errors)
  non2xx=$(field "$f" non2xx)
  calls=$(field "$f" calls)
  ok=$(field "$f" gw_ok)
  ((req > 0)) || die "$name c=$c: no requests completed"
  ((errs == 0 && non2xx == 0)) || die "$name c=$c: $errs socket errors, $non2xx non-2xx answers out of $req"
  ((calls >= req)) || die "$name c=$c: wrk counted $req answers but the tool ran only $calls times"
  if [[ $name == gateway ]]; then
    ((ok >= req)) || die "gateway c=$c: wrk counted $req answers but the gateway counted only $ok successful tool calls"
  fi
}

for c in "${CONCURRENCY[@]}"; do
  for t in "${TARGETS[@]}"; do
    log "warm-up: $t, concurrency $c, ${WARMUP} s"
    run_wrk "$t" "$c" "$WARMUP" "$WORK/warm-$t-$c"
    check_run "$t" "$c" "$WORK/warm-$t-$c"
  done
  for ((r = 1; r <= ROUNDS; r++)); do
    for t in "${TARGETS[@]}"; do
      sleep 2 # the gateway's audit batches of the previous run reach the registry first
      f=$WORK/run-$t-$c-$r
      run_wrk "$t" "$c" "$DURATION" "$f"
      check_run "$t" "$c" "$f"
      log "$t c=$c round $r: $(cat "$f" | tr '\n' ' ')"
    done
  done
done
if [[ -n ${BENCH_PROFILE:-} ]]; then
  if command -v perf >/dev/null; then
    c=${CONCURRENCY[-1]}
    log "profiling the gateway: perf record during a ${DURATION} s run at concurrency $c"
    perf record -F 1999 -g -p "$GW_PID" -o "$WORK/perf.data" -- sleep "$DURATION" >"$WORK/perf.log" 2>&1 &
    perf_pid=$!
    run_wrk gateway "$c" "$DURATION" "$WORK/profiled"
    wait "$perf_pid" || true
    perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
      grep -E '^ +[0-9]' | sed -E 's/ +$//; s/  +/ /g' | head -n 60 >"$WORK/perf-self.txt" || true
    # Inclusive time needs call chains: only meaningful for a binary with frame pointers.
    perf report -i "$WORK/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
      grep -E '^ +[0-9]' | sed -E 's/ +$//; s/  +/ /g' | head -n 120 >"$WORK/perf-children.txt" || true
    log "gateway profile, self time by function (top 60; data in $WORK/perf.data):"
    cat "$WORK/perf-self.txt" >&2
    log "gateway profile, time including callees (top 120; needs frame pointers to mean anything):"
    cat "$WORK/perf-children.txt" >&2
  else
    log "BENCH_PROFILE: perf is not installed; skipped"
  fi
fi
RSS_AFTER=$(rss_mb "$GW_PID")
HWM=$(hwm_mb "$GW_PID")
AUDIT_SENT=$(metric mcpgw_gateway_audit_sent_total)
AUDIT_DROPPED=$(metric mcpgw_gateway_audit_dropped_total)
log "gateway RSS after the load: $RSS_AFTER MB (peak $HWM MB); audit events sent $AUDIT_SENT, dropped $AUDIT_DROPPED"

# --- instructions per call (callgrind) -------------------------------------------------------------
# Each target is restarted on its own port under callgrind (so the timed runs above were not slowed),
# warmed up, zeroed, sent CG_CALLS sequential calls on one keep-alive connection, and dumped. A
# target whose count fails is reported as not measured (why: in the log), not as a failed run.
BODY_FILE=$WORK/body.json
printf '%s' "$BODY" >"$BODY_FILE"
# curl_calls URL AUTH N: N calls, one connection; succeeds if all N answered 200.
curl_calls() {
  local url=$1 auth=$2 n=$3 h i ok
  {
    for h in "${HEADERS[@]}"; do printf 'header = "%s"\n' "$h"; done
    [[ -z $auth ]] || printf 'header = "Authorization: Bearer %s"\n' "$auth"
    printf 'data-binary = "@%s"\nwrite-out = "\\n%%{http_code}\\n"\nsilent\nmax-time = 600\n' "$BODY_FILE"
    for ((i = 0; i < n; i++)); do printf 'url = "%s"\n' "$url"; done
  } >"$WORK/curl.cfg"
  ok=$(curl -K "$WORK/curl.cfg" 2>>"$WORK/callgrind.log" | grep -c '^200$' || true)
  ((ok == n)) || { log "callgrind: $ok of $n calls to $url answered 200"; return 1; }
}
# callgrind_target NAME URL AUTH READY CMD...: instructions per call of CMD as a proxy (READY: a URL
# that answers once it is up, or tcp:PORT). CG_ENV: settings for CMD, given outside valgrind (an
# `env` inside would be the only process callgrind follows).
callgrind_target() {
  local name=$1 url=$2 auth=$3 ready=$4 pid out calls0 calls1 total
  shift 4
  out=$WORK/callgrind.$name
  env "${CG_ENV[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no "$@" >"$out.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  local deadline=$((SECONDS + 300))
  until curl -fs -o /dev/null --max-time 10 "$ready" || { [[ $ready == tcp:* ]] && port_open 127.0.0.1 "${ready#tcp:}"; }; do
    kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)) || { log "callgrind: $name did not start (see $out.log)"; bench_stop "$pid"; return 1; }
    sleep 1
  done
  curl_calls "$url" "$auth" "$CG_WARMUP" || { bench_stop "$pid"; return 1; }
  callgrind_control -z "$pid" >>"$WORK/callgrind.log" 2>&1 || { bench_stop "$pid"; return 1; }
  calls0=$(calls)
  curl_calls "$url" "$auth" "$CG_CALLS" || { bench_stop "$pid"; return 1; }
  calls1=$(calls)
  callgrind_control -d "$pid" >>"$WORK/callgrind.log" 2>&1 || { bench_stop "$pid"; return 1; }
  bench_stop "$pid"
  ((calls1 - calls0 >= CG_CALLS)) || { log "callgrind: the tool ran $((calls1 - calls0)) times for $CG_CALLS calls"; return 1; }
  # The dump after zeroing: the instructions of the calls (all threads).
  total=$(awk '/^totals:/ { print $2 }' "$out.1")
  [[ -n $total ]] || { log "callgrind: no totals in $out.1"; return 1; }
  echo "$name $total $CG_CALLS" >>"$WORK/instructions"
  log "callgrind: $name: $total instructions for $CG_CALLS calls ($((total / CG_CALLS)) per call)"
}
: >"$WORK/instructions"
CG_ENV=()
for t in "${CALLGRIND[@]}"; do
  log "instructions per call: $t under callgrind ($CG_WARMUP warm-up calls, then $CG_CALLS)"
  case $t in
    proxy)
      bench_stop "$PX_PID"
      callgrind_target proxy "$PROXY_URL" "" "tcp:$PX_PORT" \
        "$STACK_BIN" proxy --listen "127.0.0.1:$PX_PORT" --upstream "$DIRECT_URL" || true
      ;;
    nginx)
      bench_stop "$NG_PID"
      callgrind_target nginx "$NGINX_URL" "" "tcp:$NG_PORT" \
        nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx-one.conf" || true
      ;;
    haproxy)
      bench_stop "$HA_PID"
      callgrind_target haproxy "$HAPROXY_URL" "" "tcp:$HA_PORT" haproxy -db -f "$WORK/haproxy.cfg" || true
      ;;
    gateway)
      bench_stop "$GW_PID"
      CG_ENV=("${IMAGE_ENV[@]}" "${EXTRA_ENV[@]}")
      callgrind_target gateway "$GATEWAY_URL" "$TOKEN" "$GW_BASE/ready" "$GATEWAY_BIN" --config "$GW_CONFIG" || true
      CG_ENV=()
      ;;
    *) die "BENCH_CALLGRIND: unknown target $t (expected proxy, nginx, haproxy or gateway)" ;;
  esac
done

# --- the report ----------------------------------------------------------------------------------
machine_facts
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  commit="$commit (with uncommitted changes)"
fi

python3 - "$WORK" "$ROUNDS" "${CONCURRENCY[*]}" "${TARGETS[*]}" >"$WORK/tables.md" <<'EOF'
import statistics, sys
work, rounds, concs, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
def load(path):
    d = {}
    for line in open(path):
        for kv in line.split():
            if "=" in kv:
                k, v = kv.split("=", 1)
                d[k] = float(v)
    d["rps"] = d["requests"] / (d["duration_us"] / 1e6)
    return d
runs = {(t, c): [load(f"{work}/run-{t}-{c}-{r}") for r in range(1, rounds + 1)]
        for c in concs for t in targets}
med = lambda t, c, k: statistics.median(x[k] for x in runs[(t, c)])
ms = lambda us: f"{us / 1000:.3f}"
label = {"direct": "direct", "proxy": "bare forwarder", "nginx": "nginx", "haproxy": "HAProxy", "gateway": "gateway"}
print("| concurrency | target | req/s | p50 ms | p90 ms | p99 ms | max ms |")
print("|---:|---|---:|---:|---:|---:|---:|")
for c in concs:
    for t in targets:
        print(f"| {c} | {label[t]} | {med(t, c, 'rps'):.0f} | {ms(med(t, c, 'p50_us'))} | {ms(med(t, c, 'p90_us'))} | "
              f"{ms(med(t, c, 'p99_us'))} | {ms(med(t, c, 'max_us'))} |")
print()
print("Against the direct calls (medians):")
print()
print("| concurrency | through | added p50 ms | added p99 ms | req/s ratio |")
print("|---:|---|---:|---:|---:|")
summary = {}
for c in concs:
    for t in targets:
        if t == "direct":
            continue
        dp50 = med(t, c, "p50_us") - med("direct", c, "p50_us")
        dp99 = med(t, c, "p99_us") - med("direct", c, "p99_us")
        ratio = med(t, c, "rps") / med("direct", c, "rps")
        if t == "gateway":
            summary[c] = (dp50, ratio)
        print(f"| {c} | {label[t]} | {ms(dp50)} | {ms(dp99)} | {ratio:.2f}x |")
print()
print("CPU seconds per 10,000 requests, by process (median over the rounds; the second column is")
print("the proxy the requests went through, all its processes):")
print()
print("| concurrency | target | proxy | MCP server | registry (audit) | wrk | all |")
print("|---:|---|---:|---:|---:|---:|---:|")
for c in concs:
    for t in targets:
        per = lambda k: statistics.median(x[k] / x["requests"] * 1e4 for x in runs[(t, c)])
        g = per("cpu_middle") if t != "direct" else 0.0
        u, r, w = per("cpu_upstream"), per("cpu_registry"), per("cpu_wrk")
        if t != "gateway":
            r = 0.0
        print(f"| {c} | {label[t]} | {g:.2f} | {u:.2f} | {r:.2f} | {w:.2f} | {g + u + r + w:.2f} |")
print()
print("Every round (req/s; p50 / p99 ms):")
print()
print("| concurrency | target | " + " | ".join(f"round {r}" for r in range(1, rounds + 1)) + " |")
print("|---:|---|" + "---:|" * rounds)
for c in concs:
    for t in targets:
        cells = [f"{x['rps']:.0f}; {ms(x['p50_us'])} / {ms(x['p99_us'])}" for x in runs[(t, c)]]
        print(f"| {c} | {label[t]} | " + " | ".join(cells) + " |")
print()
# CPU per call of the proxy's own processes (for the gateway: itself and the registry's audit
# intake), and instructions per call of the proxy process under callgrind.
instr = {}
try:
    for line in open(f"{work}/instructions"):
        name, total, n = line.split()
        instr[name] = int(total) / int(n)
except FileNotFoundError:
    pass
hi = concs[-1]
def us(t, c, k):
    return statistics.median(x[k] / x["requests"] * 1e6 for x in runs[(t, c)])
def own(t, c):
    if t == "direct":
        return 0.0
    return us(t, c, "cpu_middle") + (us(t, c, "cpu_registry") if t == "gateway" else 0.0)
def cell(t, c):
    if t == "gateway":
        return f"{own(t, c):.0f} µs (gateway {us(t, c, 'cpu_middle'):.0f} + registry audit intake {us(t, c, 'cpu_registry'):.0f})"
    return "–" if t == "direct" else f"{own(t, c):.0f} µs"
kilo = lambda v: f"{v / 1000:.0f}k" if v < 1e6 else f"{v / 1e6:.2f}M"
print("CPU and instructions per call (the proxy's own processes; the MCP server's CPU is in the last")
print("CPU column; instructions from callgrind, calls one after the other on one connection):")
print()
print("| target | " + " | ".join(f"CPU per call at c={c}" for c in reversed(concs)) +
      f" | MCP server CPU per call at c={hi} | instructions per call | req/s at c={hi} ÷ direct |")
print("|---|" + "---:|" * (len(concs) + 3))
for t in targets:
    ratio = med(t, hi, "rps") / med("direct", hi, "rps")
    ins = kilo(instr[t]) if t in instr else "–"
    print(f"| {label[t]} | " + " | ".join(cell(t, c) for c in reversed(concs)) +
          f" | {us(t, hi, 'cpu_upstream'):.0f} µs | {ins} | {ratio:.2f} |")
with open(f"{work}/cpu-summary", "w") as f:
    if "gateway" in targets and "nginx" in targets:
        f.write(f"cpu {hi} {own('gateway', hi):.1f} {own('nginx', hi):.1f} {own('gateway', hi) / own('nginx', hi):.2f}\n")
    if "gateway" in instr:
        line = f"instr {instr['gateway']:.0f}"
        if "nginx" in instr:
            line += f" {instr['gateway'] / instr['nginx']:.1f}"
        f.write(line + "\n")
with open(f"{work}/summary", "w") as f:
    for c, (dp50, ratio) in summary.items():
        f.write(f"{c} {dp50 / 1000:.3f} {ratio:.2f}\n")
EOF

targets=()
while read -r c dp50 ratio; do
  if ((c == 1)); then
    targets+=("- Added p50 at concurrency 1: $dp50 ms (target at most 0.1 ms: $(verdict "$dp50" "<=" 0.1)).")
  fi
  if ((c == 64)); then
    targets+=("- Throughput at concurrency 64: ${ratio}x the direct throughput (target at least 0.8x: $(verdict "$ratio" ">=" 0.8)).")
  fi
done <"$WORK/summary"
if [[ -s $WORK/cpu-summary ]]; then
  while read -r kind a b c d; do
    case $kind in
      cpu) targets+=("- CPU per call at concurrency $a: gateway with its registry intake $b µs, nginx $c µs: ${d}x nginx (target at most 3x: $(verdict "$d" "<=" 3); stretch 2x: $(verdict "$d" "<=" 2)).") ;;
      instr) targets+=("- Instructions per call of the gateway: $((a / 1000))k${b:+ (${b}x nginx)} (target at most 150k: $(verdict "$a" "<=" 150000)).") ;;
    esac
  done <"$WORK/cpu-summary"
fi
targets+=("- RSS idle: $RSS_IDLE MB (target at most 30 MB: $(verdict "$RSS_IDLE" "<=" 30)).")
targets+=("- RSS with $STREAMS open SSE streams: $RSS_STREAMS MB (target at most 300 MB with 10,000: $(verdict "$RSS_STREAMS" "<=" 300)).")

{
  echo "$SECTION"
  echo
  echo "Measured $(date -u +'%Y-%m-%d %H:%M UTC') at commit \`$commit\` on $(nproc) cores" \
    "(${cpu_model:-unknown CPU}, shared), ${mem_gb} GB RAM, by \`scripts/bench-gateway.sh\`." \
    "One \`tools/call\` of a trivial \`echo\` tool on an MCP server built with rmcp (stateless," \
    "JSON answers), sent by \`wrk\` ($(wrk --version 2>&1 | head -n1 | awk '{ print $2 }'), one thread, keep-alive)" \
    "as a 2026-07-28 stateless request (\`Mcp-Method\`/\`Mcp-Name\` headers, protocol version in" \
    "\`_meta\`): to the server directly; through a *bare forwarder* (\`bench_stack proxy\`: axum +" \
    "the gateway's own upstream client (hyper) and nothing else, the floor of any proxy on the" \
    "gateway's HTTP stack); through nginx ${NGINX_VERSION} and HAProxy ${HAPROXY_VERSION} as plain" \
    "reverse proxies (Debian packages, keep-alive to the upstream, nginx with its default access" \
    "log to a file and \`worker_processes auto\`, HAProxy with its default threads and no log);" \
    "and through the release gateway binary with a bearer token" \
    "(JWT verified once, then cached), the scope policy, the per-caller rate limit and audit on" \
    "(a JSON log line per call, written to a file, and batches to the registry, which stores them in" \
    "SQLite on the same machine). Gateway log filter \`info\`. Every process — load generator," \
    "gateway, MCP server, registry — shares the same $(nproc) cores over loopback, so the gateway's" \
    "CPU is taken from the others: at concurrency 64 the machine, not any one process, is the limit." \
    "Each concurrency: a ${WARMUP} s warm-up per target, then $ROUNDS rounds of ${DURATION} s, the" \
    "targets alternating; the tables give the median of the rounds. Every timed answer was" \
    "2xx and the tool's call counter moved by at least wrk's request count; one answer per" \
    "target was checked for the echoed text first, and a request without a token was refused (401)." \
    "CPU per call: user + system time of each process from \`/proc/<pid>/stat\` before and after" \
    "each timed run, divided by the requests wrk counted (nginx: master and workers; the gateway:" \
    "itself and the registry, which receives and stores its audit events)."
  if [[ -s $WORK/instructions ]]; then
    echo
    echo "Instructions per call: after the timed runs, each proxy was restarted under" \
      "\`valgrind --tool=callgrind\` ($(valgrind --version)), sent $CG_WARMUP warm-up calls, its counters" \
      "zeroed, then sent $CG_CALLS calls one after the other on one keep-alive connection (curl), every" \
      "one answered 200 and counted by the tool; the count is every instruction of the proxy process" \
      "(all threads, kernel excluded) divided by $CG_CALLS. nginx as one process" \
      "(\`master_process off\`). The Rust binaries are cargo's \`release\` profile (opt-level 3," \
      "debuginfo stripped, no LTO)."
  fi
  if [[ -n ${BENCH_GATEWAY_BIN:-} ]]; then
    echo
    echo "Gateway binary: \`$BENCH_GATEWAY_BIN\` (not the plain release build)."
  fi
  echo
  echo "The gateway runs with mimalloc and its image's allocator settings (\`${IMAGE_ENV[*]}\`)."
  if ((${#EXTRA_ENV[@]})); then
    echo
    echo "Gateway settings changed for this run: \`${EXTRA_ENV[*]}\`."
  fi
  [[ -z $QUIET_NOTE ]] || { echo; echo "$QUIET_NOTE"; }
  echo
  cat "$WORK/tables.md"
  echo
  echo "Memory of the gateway process (VmRSS from /proc): $RSS_IDLE MB idle (routing snapshot" \
    "loaded, before any request); $RSS_STREAMS MB with $STREAMS legacy SSE streams open" \
    "(\`GET /bench/sse\`, one caller, each stream's \`endpoint\` event received; the gateway's" \
    "open-stream gauge read $OPEN_GAUGE; $GW_THREADS threads); $RSS_CLOSED MB after they closed;" \
    "$RSS_AFTER MB after the load runs, peak $HWM MB. Audit events sent to the registry during" \
    "the run: $AUDIT_SENT, dropped: $AUDIT_DROPPED."
  echo
  echo "### Against the targets"
  echo
  printf '%s\n' "${targets[@]}"
  echo
} >"$WORK/section.md"

write_sections "$OUT" "$WORK/section.md" "$SECTION"
cat "$WORK/section.md"
log "wrote \"$SECTION\" to ${OUT#"$ROOT"/}"
