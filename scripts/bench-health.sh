#!/usr/bin/env bash
# Benchmark one health-check cycle of the registry and record the results in docs/performance.md
# (section "## Registry: health-check cycle"; other sections are kept).
#
#   scripts/bench-health.sh
#
# What runs (all on 127.0.0.1, all stopped at exit):
#   - BENCH_PEERS copies of the reference MCP server `server-everything` (Node, from
#     scripts/deps/mcp-peers.sh), Streamable HTTP, each on its own port: real session-era servers,
#     so every check is the full path (server/discover refused with 404 → initialize →
#     notifications/initialized → ping → DELETE of the session, five HTTP exchanges);
#   - a release registry (SQLite in a new temp dir). It first runs with health checks off while
#     BENCH_SERVERS servers are registered over the REST API (spread over the peers), then is
#     restarted with checks on: its first scheduler tick finds every server due, which is the one
#     cycle measured (the interval is an hour, so no second cycle mixes in);
#   - a sampler reading the registry's CPU time from /proc every 100 ms.
# The cycle's duration is the registry's own "health check cycle done" log line. Every answer is
# checked afterwards: each registered server must have exactly one scheduled check in its history
# that completed the handshake and ping (`healthy`, or `degraded` only for being slower than
# health.degraded_ms, which the peers are when 1,000 checks share 2 cores); any failure fails
# the run.
#
# Tunables (environment):
#   BENCH_SERVERS=1000  BENCH_PEERS=4  BENCH_OUT=docs/performance.md
#   BENCH_QUIET_WAIT=600 (s to wait for the machine to be quiet)  BENCH_KEEP=1 keep the work dir
#   CARGO_TARGET_DIR  where the release binary is built (default: <repo>/target)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/lib.sh"

SERVERS=${BENCH_SERVERS:-1000}
PEERS=${BENCH_PEERS:-4}
QUIET_WAIT=${BENCH_QUIET_WAIT:-600}
OUT=${BENCH_OUT:-$ROOT/docs/performance.md}
SECTION="## Registry: health-check cycle"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR=$TARGET_DIR
REGISTRY_BIN=$TARGET_DIR/release/registry

bench_init health

command -v curl >/dev/null || apt_install curl
eval "$(bash "$ROOT/scripts/deps/mcp-peers.sh" env)"

log "building the registry (release)"
(cd "$ROOT" && cargo build --release -p registry --bins)
[[ -x $REGISTRY_BIN ]] || die "build finished but $REGISTRY_BIN is missing"

# --- the MCP servers -----------------------------------------------------------------------------
PEER_URLS=()
for ((i = 0; i < PEERS; i++)); do
  port=$(free_port)
  PORT=$port "$MCPGW_TEST_NODE" --require "$MCPGW_TEST_NODE_LOOPBACK" "$MCPGW_TEST_SERVER_EVERYTHING" streamableHttp \
    >"$WORK/peer-$i.log" 2>&1 &
  PIDS+=("$!")
  PEER_URLS+=("http://127.0.0.1:$port/mcp")
done
for ((i = 0; i < PEERS; i++)); do
  port=${PEER_URLS[i]#http://127.0.0.1:}
  port=${port%/mcp}
  wait_for_port 127.0.0.1 "$port" 30 || die "server-everything $i did not listen (log in $WORK)"
done
log "$PEERS server-everything peers up"

# --- the registry --------------------------------------------------------------------------------
REG_DATA=$WORK/registry
# start_registry_with HEALTH_ENABLED LOG_FILE: the same data and ports each time; sets REG_PID.
start_registry_with() {
  start_registry "$REGISTRY_BIN" "$REG_DATA" "sqlite://$REG_DATA/registry.db" "$2" \
    MCPGW_REGISTRY_MCP__REGISTER=false \
    MCPGW_REGISTRY_HEALTH__ENABLED="$1" \
    MCPGW_REGISTRY_HEALTH__INTERVAL_SECONDS=3600 \
    MCPGW_REGISTRY_LOG__FORMAT=json \
    MCPGW_REGISTRY_LOG__FILTER="warn,registry::health=info"
}
log "starting the registry (checks off) and registering $SERVERS servers over $PEERS peers"
start_registry_with false "$WORK/registry-seed.log"
KEY=$(head -n1 "$REG_DATA/admin.key")
BASE=http://127.0.0.1:$REG_PORT
python3 - "$SERVERS" "$BASE" "$KEY" "${PEER_URLS[@]}" <<'EOF'
import json, sys, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor
servers, base, key, peers = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
def register(i):
    body = {"path": f"bench-{i:05d}", "name": f"Bench {i}", "description": "health benchmark",
            "endpoint": {"transport": "streamable-http", "url": peers[i % len(peers)]},
            "governance": {"owner_team": "platform"}}
    req = urllib.request.Request(base + "/api/v1/servers", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 201, (i, r.status)
    except urllib.error.HTTPError as e:
        sys.exit(f"registering bench-{i:05d}: {e.code} {e.read().decode()[:500]}")
with ThreadPoolExecutor(8) as pool:
    list(pool.map(register, range(servers)))
EOF
bench_stop "$REG_PID"

wait_quiet
log "restarting the registry with checks on; its first tick checks all $SERVERS servers"
: >"$WORK/cpu.txt"
start_registry_with true "$WORK/registry.log"
CLK_TCK=$(getconf CLK_TCK)
# The sampler: wall time and the registry's user+system CPU seconds, every 100 ms.
(
  while kill -0 "$REG_PID" 2>/dev/null; do
    printf '%s %s\n' "$(date +%s.%N)" "$(awk -v t="$CLK_TCK" '{ print ($14 + $15) / t }' "/proc/$REG_PID/stat" 2>/dev/null || echo 0)"
    sleep 0.1
  done
) >>"$WORK/cpu.txt" &
SAMPLER=$!
PIDS+=("$SAMPLER")
for _ in $(seq 1 600); do
  grep -q '"health check cycle done"' "$WORK/registry.log" && break
  kill -0 "$REG_PID" 2>/dev/null || { cat "$WORK/registry.log" >&2; die "the registry exited"; }
  sleep 0.1
done
grep -q '"health check cycle done"' "$WORK/registry.log" || die "no cycle finished within 60 s (log in $WORK)"
sleep 0.5 # a few samples after the cycle's end

# --- check every answer, compute the numbers ------------------------------------------------------
python3 - "$BASE" "$KEY" "$SERVERS" "$WORK/registry.log" "$WORK/cpu.txt" >"$WORK/result.json" <<'EOF'
import datetime, json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
base, key, servers, log_path, cpu_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
# Every server answered its one scheduled check: `healthy`, or `degraded` only for being slow
# (the handshake and ping completed, later than health.degraded_ms). Anything else fails the run.
paths, cursor = [], None
while True:
    url = base + "/api/v1/servers?limit=200" + (f"&cursor={cursor}" if cursor else "")
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    page = json.load(urllib.request.urlopen(req, timeout=30))
    paths += [s["path"] for s in page["items"] if s["path"].startswith("bench-")]
    cursor = page.get("next_cursor")
    if not cursor:
        break
assert len(paths) == servers, f"listed {len(paths)} bench servers, expected {servers}"
def health(path):
    req = urllib.request.Request(f"{base}/api/v1/servers/{path}/health", headers={"Authorization": f"Bearer {key}"})
    return path, json.load(urllib.request.urlopen(req, timeout=30))["health"]
with ThreadPoolExecutor(8) as pool:
    healths = list(pool.map(health, paths))
bad = [(p, h) for p, h in healths
       if not (h["status"] == "healthy" or (h["status"] == "degraded" and (h.get("reason") or "").startswith("slow:")))
       or len(h["history"]) != 1 or h["history"][0]["trigger"] != "scheduled"]
assert not bad, f"{len(bad)} servers without one good scheduled check, e.g. {bad[:3]}"
history = healths[0][1]["history"]
latencies = sorted(h["history"][0]["latency_ms"] for _, h in healths)
pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
slow = sum(1 for _, h in healths if h["status"] == "degraded")
# The cycle, from the registry's own log line.
line = next(json.loads(l) for l in open(log_path) if '"health check cycle done"' in l)
fields = line.get("fields", line)
checked, duration_ms = int(fields["checked"]), int(fields["duration_ms"])
assert checked == servers, f"the cycle checked {checked}, expected {servers}"
end = datetime.datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
start = end - duration_ms / 1000
samples = [tuple(map(float, l.split())) for l in open(cpu_path) if len(l.split()) == 2]
def cpu_at(t):  # the last sample at or before t
    before = [c for (w, c) in samples if w <= t]
    return before[-1] if before else samples[0][1]
cpu = cpu_at(end + 0.1) - cpu_at(start)
# Peak: the busiest 500 ms window inside the cycle, in cores.
inside = [(w, c) for (w, c) in samples if start - 0.1 <= w <= end + 0.1]
peak = 0.0
for i, (w0, c0) in enumerate(inside):
    for (w1, c1) in inside[i + 1:]:
        if w1 - w0 >= 0.5:
            peak = max(peak, (c1 - c0) / (w1 - w0))
            break
print(json.dumps({"checked": checked, "duration_ms": duration_ms, "cpu_s": round(cpu, 2),
                  "mean_cores": round(cpu / max(duration_ms / 1000, 0.001), 2), "peak_cores": round(peak, 2),
                  "healthy": servers - slow, "slow": slow, "p50": pct(0.5), "p90": pct(0.9), "max": latencies[-1],
                  "protocol": history[0].get("protocol")}))
EOF
rj() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/result.json" "$1"; }
REG_RSS=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$REG_PID/status")
cfg() { awk -F' = ' -v k="$1" '/^\[health\]/ { h = 1; next } /^\[/ { h = 0 } h && $1 == k { print $2; exit }' "$ROOT/services/registry/config/default.toml"; }

# --- report ----------------------------------------------------------------------------------------
machine_facts
{
  echo "$SECTION"
  echo
  echo "Measured by \`scripts/bench-health.sh\` on $(date -u +%Y-%m-%d): release registry, SQLite, $SERVERS registered servers spread"
  echo "over $PEERS real \`server-everything\` processes (Streamable HTTP, session era: each check is server/discover refused → initialize →"
  echo "initialized → ping → DELETE), one scheduler cycle with the default settings (concurrency $(cfg concurrency), spread_ms $(cfg spread_ms),"
  echo "timeout_ms $(cfg timeout_ms)). Duration from the registry's \"health check cycle done\" log line; CPU from /proc every 100 ms."
  echo "Every answer was checked: each of the $SERVERS servers has exactly one scheduled check, which completed the handshake and"
  echo "\`ping\` (protocol $(rj protocol)): $(rj healthy) \`healthy\`, $(rj slow) \`degraded\` only for answering slower than \`degraded_ms\`, none failed."
  echo "Machine: $(nproc) vCPU ($cpu_model), ${mem_gb} GiB RAM; the peers and the registry share the cores."
  [[ -n $QUIET_NOTE ]] && echo && echo "$QUIET_NOTE"
  echo
  echo "| measure | result | target | |"
  echo "|---|---|---|---|"
  echo "| cycle duration, $SERVERS servers | $(rj duration_ms) ms | ≤ 5,000 ms | $(verdict "$(rj duration_ms)" "<=" 5000) |"
  echo "| registry CPU during the cycle | $(rj cpu_s) s (mean $(rj mean_cores) cores) | | |"
  echo "| registry CPU, busiest 500 ms | $(rj peak_cores) cores | no spike | |"
  echo "| one check (5 HTTP exchanges), p50 / p90 / max | $(rj p50) / $(rj p90) / $(rj max) ms | | |"
  echo "| registry RSS after the cycle | $REG_RSS MiB | | |"
  echo
  echo "The starts are spread over \`spread_ms\` (random per server) and at most \`concurrency\` checks are in flight, so the"
  echo "cycle's work is a plateau, not a burst; the results are written in one batch at its end."
} >"$WORK/section.md"

write_sections "$OUT" "$WORK/section.md" "$SECTION"
cat "$WORK/section.md"
log "wrote the health section to ${OUT#"$ROOT"/}"
