#!/usr/bin/env bash
# Benchmark ranked search (POST /api/v1/search) and record the results in docs/performance.md
# (sections "## Search: throughput and latency" and "## Search quality"; other sections are kept).
#
#   scripts/bench-search.sh
#
# What runs (all on 127.0.0.1, all stopped at exit):
#   - a release registry (SQLite in a new temp dir), seeded over its REST API with BENCH_SERVERS
#     servers of BENCH_TOOLS tools each: varied, realistic text generated from a fixed seed
#     (domains × resources × actions, with parameters), so runs are comparable;
#   - `wrk` (Debian; installed if missing) posting searches at BENCH_CONNECTIONS connections,
#     rotating through the 96 queries of the quality set (agents' phrasings), after a warm-up;
#   - services/registry/examples/search_bench.rs: the in-process costs (index build, one
#     incremental update = a server and its tools re-indexed, one query) on the same catalog;
#   - the quality evaluation (`cargo test -p registry --test it search_quality`): NDCG@10, MRR and
#     Recall@10 of the labelled queries over the 131-server catalog.
# Every timed answer is checked by wrk's Lua script: status 200 and a non-empty result list
# (`"rank":1` in the body); one bad answer fails the run. One answer is checked in full first.
#
# Tunables (environment):
#   BENCH_SERVERS=1000  BENCH_TOOLS=10  BENCH_CONNECTIONS=100  BENCH_THREADS=2
#   BENCH_DURATION=20 (s)  BENCH_WARMUP=5 (s)  BENCH_OUT=docs/performance.md
#   BENCH_QUIET_WAIT=600 (s to wait for the machine to be quiet)  BENCH_KEEP=1 keep the work dir
#   CARGO_TARGET_DIR  where the release binaries are built (default: <repo>/target)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/lib.sh"

SERVERS=${BENCH_SERVERS:-1000}
TOOLS=${BENCH_TOOLS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-100}
THREADS=${BENCH_THREADS:-2}
DURATION=${BENCH_DURATION:-20}
WARMUP=${BENCH_WARMUP:-5}
QUIET_WAIT=${BENCH_QUIET_WAIT:-600}
OUT=${BENCH_OUT:-$ROOT/docs/performance.md}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR=$TARGET_DIR
REGISTRY_BIN=$TARGET_DIR/release/registry
EXAMPLE_BIN=$TARGET_DIR/release/examples/search_bench
DATA=$ROOT/services/registry/tests/data

bench_init search

command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || apt_install curl

# --- build ---------------------------------------------------------------------------------------
log "building the registry and search_bench (release)"
(cd "$ROOT" && cargo build --release -p registry --bins --example search_bench)
for b in "$REGISTRY_BIN" "$EXAMPLE_BIN"; do [[ -x $b ]] || die "build finished but $b is missing"; done

# --- the registry --------------------------------------------------------------------------------
REG_DATA=$WORK/registry
log "starting the registry"
start_registry "$REGISTRY_BIN" "$REG_DATA" "sqlite://$REG_DATA/registry.db" "$WORK/registry.log"
KEY=$(head -n1 "$REG_DATA/admin.key")
BASE=http://127.0.0.1:$REG_PORT

# --- seed ----------------------------------------------------------------------------------------
log "seeding $SERVERS servers x $TOOLS tools"
python3 - "$SERVERS" "$TOOLS" "$WORK/catalog.json" <<'EOF'
import json, random, sys
servers, tools_per, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rnd = random.Random(20261121)
domains = {
  "billing": ["invoice", "payment", "refund", "subscription", "customer", "credit note", "payout", "tax rate"],
  "crm": ["contact", "deal", "account", "lead", "opportunity", "note", "pipeline", "company"],
  "tickets": ["ticket", "comment", "queue", "sla", "macro", "agent", "satisfaction survey", "tag"],
  "observability": ["metric", "log", "trace", "alert", "dashboard", "monitor", "incident", "slo"],
  "kubernetes": ["pod", "deployment", "service", "namespace", "node", "config map", "secret", "ingress"],
  "storage": ["bucket", "object", "folder", "file", "snapshot", "volume", "backup", "shared link"],
  "database": ["table", "row", "index", "query", "schema", "migration", "view", "connection"],
  "source control": ["repository", "branch", "commit", "pull request", "issue", "release", "tag", "workflow run"],
  "chat": ["channel", "message", "thread", "reaction", "user", "direct message", "file", "reminder"],
  "calendar": ["event", "meeting", "attendee", "availability", "room", "reminder", "calendar", "invitation"],
  "email": ["email", "draft", "label", "attachment", "mailbox", "contact", "filter", "signature"],
  "maps": ["route", "place", "address", "coordinates", "distance", "traffic", "elevation", "time zone"],
  "weather": ["forecast", "alert", "temperature", "precipitation", "wind", "air quality", "uv index", "station"],
  "security": ["finding", "vulnerability", "policy", "role", "access key", "certificate", "audit event", "scan"],
  "hr": ["employee", "leave request", "payslip", "position", "candidate", "interview", "review", "benefit"],
  "commerce": ["product", "order", "cart", "inventory", "shipment", "discount", "return", "price"],
  "documents": ["page", "document", "space", "template", "comment", "attachment", "version", "export"],
  "analytics": ["report", "dataset", "chart", "segment", "funnel", "cohort", "experiment", "forecast"],
  "devops": ["pipeline", "build", "artifact", "job", "environment", "feature flag", "runner", "deployment"],
  "travel": ["flight", "hotel", "booking", "itinerary", "fare", "seat", "passenger", "car rental"],
}
vendors = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Tyrell", "Cyberdyne",
           "Soylent", "Aperture", "Vandelay", "Pied Piper", "Massive", "Oscorp", "Gringotts", "Monarch", "Nakatomi", "Dunder"]
actions = [("list", "List {p} with filters and paging"), ("get", "Get one {s} by id with all its fields"),
           ("create", "Create a new {s}"), ("update", "Update fields of an existing {s}"),
           ("delete", "Delete a {s} permanently"), ("search", "Search {p} by text and attributes"),
           ("export", "Export {p} as CSV or JSON"), ("summarize", "Summarize recent activity on {p}"),
           ("archive", "Archive an old {s}"), ("count", "Count {p} matching a filter")]
params = {"id": "Identifier of the {s}", "query": "Free text to search {p} for", "limit": "Maximum results",
          "cursor": "Page cursor", "since": "Only {p} changed since this time", "fields": "Fields of the {s} to set",
          "format": "csv or json", "owner": "Owner of the {s}", "status": "Status of the {s}"}
plural = lambda s: s + ("es" if s.endswith(("s", "x", "ch")) else "s")
out_list = []
names = list(domains)
for i in range(servers):
    domain = names[i % len(names)]
    vendor = vendors[(i // len(names)) % len(vendors)]
    resources = domains[domain]
    path = f"{domain.replace(' ', '-')}-{vendor.lower().replace(' ', '-')}-{i}"
    tools, seen = [], set()
    while len(tools) < tools_per:
        (verb, text), res = rnd.choice(actions), rnd.choice(resources)
        name = f"{verb}_{res.replace(' ', '_')}" + ("" if verb in ("get", "create", "update", "delete", "archive") else "s")
        if name in seen:
            continue
        seen.add(name)
        ps = rnd.sample(list(params), 3)
        tools.append({"name": name, "description": text.format(s=res, p=plural(res)) + f" in {vendor} {domain}.",
                      "inputSchema": {"type": "object", "properties": {
                          p: {"type": "string", "description": params[p].format(s=res, p=plural(res))} for p in ps}}})
    out_list.append({"path": path, "name": f"{vendor} {domain.title()}",
                     "description": f"{vendor}'s {domain} service: " + ", ".join(plural(r) for r in rnd.sample(resources, 4)) + ".",
                     "tags": [domain.replace(" ", "-"), vendor.lower().replace(" ", "-")],
                     "endpoint": {"transport": "streamable-http", "url": f"http://127.0.0.1:9/{path}/mcp"},
                     "governance": {"owner_team": f"team-{domain.replace(' ', '-')}"},
                     "tools": tools})
json.dump(out_list, open(out, "w"))
EOF
python3 - "$WORK/catalog.json" "$BASE" "$KEY" <<'EOF'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
catalog, base, key = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
def call(method, path, body, want):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method=method,
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == want, (path, r.status)
def register(s):
    body = {k: v for k, v in s.items() if k != "tools"}
    call("POST", "/api/v1/servers", body, 201)
    call("PUT", f"/api/v1/servers/{s['path']}/tools", {"tools": s["tools"]}, 200)
with ThreadPoolExecutor(8) as pool:
    list(pool.map(register, catalog))
EOF

# --- queries -------------------------------------------------------------------------------------
python3 -c 'import json, sys; [print(q["query"]) for q in json.load(open(sys.argv[1]))]' \
  "$DATA/search-queries.json" >"$WORK/queries.txt"
# Generated-catalog words too, so that most answers come from the bulk of the index.
cat >>"$WORK/queries.txt" <<'EOF'
list overdue invoices for a customer
export the pods of a namespace as csv
summarize recent alerts on the checkout dashboard
find the pull request that changed the release workflow
count leave requests pending for my team
search hotels and flights for the itinerary
archive old shipments and returns
EOF
# Only queries that find something in this catalog are timed (each answer is then checked to be
# non-empty); the quality set's queries about, say, time zones have nothing to find here.
python3 - "$WORK/queries.txt" "$BASE" "$KEY" <<'EOF'
import json, sys, urllib.request
path, base, key = sys.argv[1:]
queries = [l for l in open(path).read().splitlines() if l.strip()]
kept = []
for q in queries:
    req = urllib.request.Request(base + "/api/v1/search", data=json.dumps({"query": q, "limit": 10}).encode(),
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        if json.load(r)["results"]:
            kept.append(q)
open(path + ".all", "w").write("\n".join(queries) + "\n")
open(path, "w").write("\n".join(kept) + "\n")
EOF
QUERY_ALL=$(wc -l <"$WORK/queries.txt.all")
QUERY_COUNT=$(wc -l <"$WORK/queries.txt")
log "$QUERY_COUNT of $QUERY_ALL queries find something in this catalog; timing those"
log "checking one answer"
curl -fsS "$BASE/api/v1/search" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d '{"query": "list overdue invoices for a customer", "limit": 3}' >"$WORK/one.json"
python3 - "$WORK/one.json" <<'EOF' || die "the search answer is wrong (see above)"
import json, sys
a = json.load(open(sys.argv[1]))
print(json.dumps(a, indent=1)[:1500])
assert a["mode"] == "lexical" and len(a["results"]) == 3 and a["results"][0]["rank"] == 1
assert "invoice" in (a["results"][0]["name"] + a["results"][0]["description"]).lower()
EOF

python3 - "$WORK/queries.txt" "$KEY" >"$WORK/search.lua" <<'EOF'
import json, sys
queries = [q for q in open(sys.argv[1]).read().splitlines() if q.strip()]
bodies = [json.dumps({"query": q, "limit": 10}) for q in queries]
print("local bodies = {" + ",".join(json.dumps(b) for b in bodies) + "}")
print(f'local auth = "Bearer {sys.argv[2]}"')
print(r'''
local threads = {}
function setup(thread) table.insert(threads, thread) end
-- Globals, not locals: done() reads them from each thread with thread:get.
n, bad, first_bad = 0, 0, nil
function init(args) n = math.random(#bodies) end
function request()
  n = n % #bodies + 1
  return wrk.format("POST", "/api/v1/search",
    {["Content-Type"] = "application/json", ["Authorization"] = auth}, bodies[n])
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"rank":1', 1, true) then
    bad = bad + 1
    if first_bad == nil then first_bad = status .. " " .. string.sub(body, 1, 200) end
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("bad")
    local fb = t:get("first_bad")
    if fb then io.stderr:write("bad answer: " .. fb .. "\n") end
  end
  io.write(string.format("BAD=%d\n", total))
  for _, p in ipairs({50, 90, 99}) do
    io.write(string.format("P%d=%.3f\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("REQS=%d\nSECS=%.3f\nERRS=%d\n", summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
''')
EOF

# --- quiet machine ---------------------------------------------------------------------------------
# Searches are light; 25 % of background load does not change them much.
wait_quiet 25

# --- timed runs ------------------------------------------------------------------------------------
log "warm-up ${WARMUP}s"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$WORK/search.lua" "$BASE" >"$WORK/warmup.txt" 2>&1
log "timed run ${DURATION}s at $CONNECTIONS connections"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/search.lua" "$BASE" >"$WORK/wrk.txt" 2>&1
cat "$WORK/wrk.txt"
field() { awk -F= -v k="$1" '$1 == k { print $2; exit }' "$WORK/wrk.txt"; }
BAD=$(field BAD)
ERRS=$(field ERRS)
REQS=$(field REQS)
[[ $BAD == 0 && $ERRS == 0 && $REQS -gt 0 ]] || die "wrong answers: $BAD bad, $ERRS errors (see $WORK/wrk.txt)"
RPS=$(awk -v r="$REQS" -v s="$(field SECS)" 'BEGIN { printf "%.0f", r / s }')
P50=$(field P50)
P90=$(field P90)
P99=$(field P99)
REG_RSS=$(awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$REG_PID/status")

log "in-process costs"
"$EXAMPLE_BIN" costs "$WORK/catalog.json" "$WORK/queries.txt" >"$WORK/inproc.json"
cat "$WORK/inproc.json"
ij() { python3 -c 'import json, sys; print(round(json.load(open(sys.argv[1]))[sys.argv[2]], int(sys.argv[3])))' "$WORK/inproc.json" "$1" "$2"; }

log "quality evaluation"
(cd "$ROOT" && MCPGW_SEARCH_QUALITY_OUT=$WORK/quality.json cargo test -q -p registry --test it search_quality >"$WORK/quality.log" 2>&1) \
  || { cat "$WORK/quality.log" >&2; die "the quality evaluation failed"; }
qj() { python3 -c 'import json, sys; v = json.load(open(sys.argv[1]))[sys.argv[2]]; print(round(v, 3) if isinstance(v, float) else v)' "$WORK/quality.json" "$1"; }

# --- report ----------------------------------------------------------------------------------------
machine_facts
{
  echo "## Search: throughput and latency"
  echo
  echo "Measured by \`scripts/bench-search.sh\` on $(date -u +%Y-%m-%d): release registry, SQLite, $SERVERS servers × $TOOLS tools"
  echo "($(ij documents 0) documents) seeded over the REST API with generated text; \`POST /api/v1/search\` (limit 10, lexical mode) sent by"
  echo "\`wrk\` ($(wrk --version 2>&1 | head -n1 | awk '{ print $2 }'), $THREADS threads, $CONNECTIONS connections, keep-alive) for ${DURATION} s after a ${WARMUP} s warm-up,"
  echo "rotating through the $QUERY_COUNT queries (of $QUERY_ALL: the quality set's agent phrasings plus 7 about the generated catalog) that find something in it."
  echo "Every answer was checked (status 200 and a non-empty result list): $REQS answers, 0 wrong, 0 socket errors."
  echo "Machine: $(nproc) vCPU ($cpu_model), ${mem_gb} GiB RAM; load generator and registry share the 2 cores."
  [[ -n $QUIET_NOTE ]] && echo && echo "$QUIET_NOTE"
  echo
  echo "| measure | result | target | |"
  echo "|---|---|---|---|"
  echo "| throughput | $RPS req/s | ≥ 2,000 req/s | $(verdict "$RPS" ">=" 2000) |"
  echo "| latency p50 | $P50 ms | | |"
  echo "| latency p90 | $P90 ms | | |"
  echo "| latency p99 | $P99 ms | ≤ 50 ms | $(verdict "$P99" "<=" 50) |"
  echo "| registry RSS after the run | $REG_RSS MiB | | |"
  echo
  echo "In process (\`services/registry/examples/search_bench.rs\`, same catalog, one thread):"
  echo
  echo "| measure | result |"
  echo "|---|---|"
  echo "| build the index from $(ij servers 0) records | $(ij build_ms 1) ms |"
  echo "| one incremental update (a server and its $(ij update_tools 0) tools re-indexed, as after a write) | $(ij update_us 1) µs |"
  echo "| one query (limit 10, API-key caller) | $(ij query_us 1) µs |"
  echo
  echo "## Search quality"
  echo
  echo "Measured by \`cargo test -p registry --test it search_quality\` (run by \`scripts/bench-search.sh\`) on $(date -u +%Y-%m-%d):"
  echo "$(qj queries) labelled queries (\`services/registry/tests/data/search-queries.json\`, written as agents phrase needs, graded 1–3)"
  echo "over $(qj servers) servers and $(qj tools) tools shaped after public MCP servers (\`search-catalog.json\`), searched over HTTP with"
  echo "\`kinds: [\"tool\"]\`, limit 10, lexical mode (no embedder configured)."
  echo
  echo "| metric | value |"
  echo "|---|---|"
  echo "| NDCG@10 (gain 2^grade − 1) | $(qj ndcg_at_10) |"
  echo "| MRR (first relevant tool) | $(qj mrr) |"
  echo "| Recall@10 (relevant tools in the top 10, of at most 10) | $(qj recall_at_10) |"
  echo
  echo "The test fails below NDCG@10 = $(grep -o 'const NDCG_FLOOR: f64 = [0-9.]*' "$ROOT/services/registry/tests/it/search.rs" | awk '{ print $NF }'), a little under the measured value, so a regression fails CI."
  echo "Tuning, on this set: see \"What was tuned\" in docs/API.md (Search)."
} >"$WORK/section.md"

write_sections "$OUT" "$WORK/section.md" "## Search: throughput and latency" "## Search quality"
cat "$WORK/section.md"
log "wrote the search sections to ${OUT#"$ROOT"/}"
