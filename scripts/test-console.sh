#!/usr/bin/env bash
# Browser tests of the registry's web console (tests/browser/*.test.mjs): headless Chromium
# driven by playwright-core against the real registry and auth-server binaries.
#
#   scripts/test-console.sh [--keep] [--no-build] [-- NODE_TEST_ARGS...]
#       --keep           keep the work directory (configs, databases, logs) even on success
#       --no-build       use the binaries already in the target dir (e.g. while the tree does
#                        not compile)
#       NODE_TEST_ARGS   passed to `node --test`, e.g. -- --test-name-pattern=tokens
#
# What it does, everything on 127.0.0.1 and stopped by pid on exit:
#   1. installs Chromium (Debian package) and playwright-core if needed (scripts/deps/browser.sh)
#      and builds the registry and auth-server debug binaries into ${CARGO_TARGET_DIR:-<repo>/target};
#   2. in a new temp dir, writes their configs on free ports: the auth-server with SQLite, local
#      users (bootstrap admin `admin`, group mcpgw-admins; its generated password is read from
#      the file it writes), cookies without Secure, and the OAuth client `mcpgw-console`; the
#      registry with SQLite, loopback egress, the demo MCP server (registered as `demo`), health
#      checks every 2 s without damping, the auth-server as a trusted issuer and the [console]
#      section. Each config is checked with --check-config first; a section the binary does not
#      know yet ([[oauth.clients]], [console]) is left out with a warning, and the tests that
#      need it fail;
#   3. starts both, waits (bounded, with progress) for /ready, then, with the registry's
#      bootstrap admin key, stores the scope documents that make group mcpgw-admins (and the
#      scopes the auth-server gives it) a registry admin and group mcpgw-viewers a reader; adds
#      the local user `viewer` (group mcpgw-viewers) for the permission test;
#   4. runs `node --test` on tests/browser/*.test.mjs with MCPGW_CONSOLE_URL, MCPGW_AUTH_URL,
#      MCPGW_ADMIN_USER, MCPGW_ADMIN_PASSWORD, MCPGW_VIEWER_USER, MCPGW_VIEWER_PASSWORD,
#      MCPGW_DEMO_MCP_URL, MCPGW_REGISTRY_URL, MCPGW_REGISTRY_ADMIN_KEY, MCPGW_CHROMIUM and
#      MCPGW_SCREENSHOT_DIR (default ${MCPGW_ARTIFACTS_DIR:-~/.cache/mcpgw/artifacts}/console,
#      emptied first; each page in both themes at 1280x800 and 390 px wide).
# Exit status: 0 when every test passed; 1 when a test failed; 2 on a setup error. On failure the
# last 40 log lines of each service are printed and the work directory is kept.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/lib.sh

KEEP=0
BUILD=1
NODE_ARGS=()
while (($#)); do
  case $1 in
    --keep) KEEP=1 ;;
    --no-build) BUILD=0 ;;
    --) shift; NODE_ARGS=("$@"); break ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) printf 'ERROR: unknown argument %s (see --help)\n' "$1" >&2; exit 2 ;;
  esac
  shift
done
setup_die() { printf 'ERROR: %s\n' "$*" >&2; exit 2; }

command -v cargo >/dev/null || setup_die "cargo is not installed; install Rust (rustup) and re-run"
command -v curl >/dev/null || setup_die "curl is needed: apt-get install curl"
command -v python3 >/dev/null || setup_die "python3 is needed: apt-get install python3"

scripts/deps/browser.sh install || setup_die "installing the browser test dependencies failed (see above)"
CHROMIUM=$(scripts/deps/browser.sh path)

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
REGISTRY_BIN=$TARGET_DIR/debug/registry
AUTH_BIN=$TARGET_DIR/debug/auth-server
if ((BUILD)); then
  log "building registry and auth-server (cargo, target dir $TARGET_DIR)"
  CARGO_TARGET_DIR=$TARGET_DIR cargo build -q --locked -p registry -p auth-server ||
    setup_die "cargo build -p registry -p auth-server failed (see above)"
else
  for b in "$REGISTRY_BIN" "$AUTH_BIN"; do
    [[ -x $b ]] || setup_die "--no-build: $b does not exist; build it (or run without --no-build)"
  done
  log "--no-build: using $REGISTRY_BIN and $AUTH_BIN as they are (built $(date -r "$REGISTRY_BIN" '+%F %T'))"
fi

SHOTS=${MCPGW_SCREENSHOT_DIR:-${MCPGW_ARTIFACTS_DIR:-$HOME/.cache/mcpgw/artifacts}/console}
mkdir -p "$SHOTS"
find "$SHOTS" -mindepth 1 -delete

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcpgw-console.XXXXXX")
chmod 700 "$WORK"
mkdir -p "$WORK/auth" "$WORK/registry"
PIDS=()     # what this run started, stopped in reverse order on exit
FAILED_RUN=1 # cleared when the tests passed
cleanup() {
  local rc=$? i pid deadline
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if ((rc != 0 || FAILED_RUN)); then
    local f
    for f in "$WORK/auth-server.log" "$WORK/registry.log"; do
      [[ -s $f ]] || continue
      printf '\n--- last 40 lines of %s ---\n' "$f" >&2
      tail -n 40 "$f" | sed 's/\x1b\[[0-9;]*m//g' >&2
    done
  fi
  if ((rc == 0 && !KEEP)); then rm -rf "$WORK"; else log "kept $WORK (configs, databases, logs)"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Five distinct free ports.
PORTS=()
while ((${#PORTS[@]} < 5)); do
  p=$(free_port)
  [[ " ${PORTS[*]} " == *" $p "* ]] || PORTS+=("$p")
done
AUTH_PORT=${PORTS[0]} AUTH_MPORT=${PORTS[1]} REG_PORT=${PORTS[2]} REG_MPORT=${PORTS[3]} DEMO_PORT=${PORTS[4]}
AUTH_URL=http://127.0.0.1:$AUTH_PORT
REG_URL=http://127.0.0.1:$REG_PORT
DEMO_MCP_URL=http://127.0.0.1:$DEMO_PORT/mcp

# Settings that the binaries of this checkout may not know yet (being added with the console).
AUTH_OAUTH_SECTION="
[[oauth.clients]]
id = \"mcpgw-console\"
redirect_uris = [\"$REG_URL/console/callback\"]
audience = \"mcpgw-registry\"
manage_tokens = true"
REG_CONSOLE_SECTION="
[console]
auth_server_url = \"$AUTH_URL\"
public_url = \"$REG_URL\"
client_id = \"mcpgw-console\"
secure_cookies = false"

write_auth_config() { # $1: extra sections
  cat >"$WORK/auth-server.toml" <<EOF
listen = "127.0.0.1:$AUTH_PORT"
metrics_listen = "127.0.0.1:$AUTH_MPORT"
data_dir = "$WORK/auth"
public_url = "$AUTH_URL"
allowed_return_origins = ["$REG_URL"]
admin_groups = ["mcpgw-admins"]

[group_scopes]
# mcp-no-document: held, but no scope document is named after it (the Tokens page must not offer it).
mcpgw-admins = ["mcp-registry-admin", "mcp-servers-unrestricted/read", "mcp-servers-unrestricted/execute", "mcp-no-document"]
mcpgw-viewers = ["mcp-registry-viewer"]

[store]
url = "sqlite://$WORK/auth/auth.db"

[session]
cookie_secure = false

[local]
bootstrap_admin = "admin"
bootstrap_password_file = "$WORK/auth/admin.password"

[log]
format = "text"
filter = "info"
$1
EOF
}

write_registry_config() { # $1: extra sections
  cat >"$WORK/registry.toml" <<EOF
listen = "127.0.0.1:$REG_PORT"
metrics_listen = "127.0.0.1:$REG_MPORT"
data_dir = "$WORK/registry"

[store]
url = "sqlite://$WORK/registry/registry.db"

[log]
format = "text"
filter = "info,rmcp=warn"

[egress]
allow_loopback = true

[bootstrap]
admin_key_file = "$WORK/registry/admin.key"

[demo]
enabled = true
listen = "127.0.0.1:$DEMO_PORT"

[health]
interval_seconds = 5  # the least the registry accepts (5..86400)
damping = 1

[auth]
policy_cache_seconds = 1

[[auth.issuers]]
issuer = "$AUTH_URL"
audiences = ["mcpgw-registry"]
# Revoked tokens (a signed-out console session) are refused at once.
revocations_url = "$AUTH_URL/api/v1/revocations"
$1
EOF
}

# check_config NAME BIN CONFIG_WRITER SECTION KEY: --check-config with SECTION; if the binary
# refuses it because it does not know KEY yet, write the config without it and say so.
MISSING=()
check_config() {
  local name=$1 bin=$2 writer=$3 section=$4 key=$5 out
  "$writer" "$section"
  # Inherited settings of a developer's shell would change what is tested.
  if out=$(env -u MCPGW_REGISTRY_CONFIG -u MCPGW_AUTH_CONFIG "$bin" --config "$WORK/$name.toml" --check-config 2>&1); then
    return 0
  fi
  if grep -qi -- "$key" <<<"$out"; then
    log "WARNING: this $name does not accept [$key] yet:"
    sed 's/^/      /' <<<"$out" >&2
    log "WARNING: starting it without [$key]; the console tests that need it will fail"
    MISSING+=("$name [$key]")
    "$writer" ""
    out=$("$bin" --config "$WORK/$name.toml" --check-config 2>&1) ||
      setup_die "the $name refuses the generated config $WORK/$name.toml even without [$key]:"$'\n'"$out"
  else
    setup_die "the $name refuses the generated config $WORK/$name.toml:"$'\n'"$out"
  fi
}
for v in $(compgen -e | grep -E '^MCPGW_(REGISTRY|AUTH)_' || true); do unset "$v"; done
check_config auth-server "$AUTH_BIN" write_auth_config "$AUTH_OAUTH_SECTION" oauth
check_config registry "$REGISTRY_BIN" write_registry_config "$REG_CONSOLE_SECTION" console

# wait_ready NAME URL PID TIMEOUT: poll URL/ready, a progress line every 5 s.
wait_ready() {
  local name=$1 url=$2 pid=$3 timeout=$4 deadline next
  deadline=$((SECONDS + timeout)) next=$((SECONDS + 5))
  until curl -fs -o /dev/null --max-time 2 "$url/ready"; do
    kill -0 "$pid" 2>/dev/null || setup_die "the $name exited during startup (log: $WORK/$name.log)"
    ((SECONDS < deadline)) || setup_die "the $name did not answer $url/ready within $timeout s (log: $WORK/$name.log)"
    if ((SECONDS >= next)); then
      log "waiting for the $name at $url/ready ($((deadline - SECONDS)) s left)"
      next=$((SECONDS + 5))
    fi
    sleep 0.2
  done
  log "the $name is ready at $url"
}
# wait_file FILE PID NAME: the binaries write their generated secrets just after starting.
wait_file() {
  local deadline=$((SECONDS + 30))
  until [[ -s $1 ]]; do
    kill -0 "$2" 2>/dev/null || setup_die "the $3 exited before writing $1 (log: $WORK/$3.log)"
    ((SECONDS < deadline)) || setup_die "the $3 did not write $1 within 30 s (log: $WORK/$3.log)"
    sleep 0.2
  done
}

log "starting the auth-server on $AUTH_URL"
"$AUTH_BIN" --config "$WORK/auth-server.toml" serve >"$WORK/auth-server.log" 2>&1 </dev/null &
AUTH_PID=$!
PIDS+=("$AUTH_PID")
wait_ready auth-server "$AUTH_URL" "$AUTH_PID" 60
wait_file "$WORK/auth/admin.password" "$AUTH_PID" auth-server
ADMIN_PASSWORD=$(<"$WORK/auth/admin.password")

# A second local user, in group mcpgw-viewers. The auth-server has no user API yet (only the
# bootstrap admin and reset-password): copy the admin's row under a new name and group, then
# give it its own generated password with reset-password.
VIEWER_PASSWORD=
if python3 - "$WORK/auth/auth.db" <<'PY' 2>"$WORK/viewer.err"; then
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
with db:
    db.execute("""INSERT OR IGNORE INTO users (username, password_hash, group_list, disabled, created_at, updated_at)
                  SELECT 'viewer', password_hash, '["mcpgw-viewers"]', 0, created_at, updated_at
                  FROM users WHERE username = 'admin'""")
    if db.execute("SELECT count(*) FROM users WHERE username = 'viewer'").fetchone()[0] != 1:
        sys.exit("no admin row to copy")
PY
  VIEWER_PASSWORD=$("$AUTH_BIN" --config "$WORK/auth-server.toml" reset-password --username viewer 2>>"$WORK/viewer.err") ||
    VIEWER_PASSWORD=
fi
if [[ -z $VIEWER_PASSWORD ]]; then
  sed 's/^/      /' "$WORK/viewer.err" >&2
  setup_die "could not add the local user 'viewer' to the auth-server's SQLite store (did its users table change?)"
fi

log "starting the registry on $REG_URL (demo MCP server on $DEMO_MCP_URL)"
"$REGISTRY_BIN" --config "$WORK/registry.toml" serve >"$WORK/registry.log" 2>&1 </dev/null &
REG_PID=$!
PIDS+=("$REG_PID")
wait_ready registry "$REG_URL" "$REG_PID" 60
wait_file "$WORK/registry/admin.key" "$REG_PID" registry
ADMIN_KEY=$(<"$WORK/registry/admin.key")

# put_scope NAME JSON: store a scope document with the bootstrap admin key.
put_scope() {
  local out
  out=$(curl -sS --max-time 10 -o "$WORK/scope.out" -w '%{http_code}' -X PUT "$REG_URL/api/v1/scopes/$1" \
    -H "Authorization: Bearer $ADMIN_KEY" -H 'Content-Type: application/json' --data "$2") || true
  [[ $out == 200 || $out == 201 ]] ||
    setup_die "PUT /api/v1/scopes/$1 answered ${out:-nothing}: $(cat "$WORK/scope.out" 2>/dev/null)"
}
ALL_UI='"list_service","register_service","modify_service","toggle_service","delete_service",
  "register_stdio_service","health_check_service","change_lifecycle_status","approve_tools",
  "read_audit","manage_api_keys","read_policies","manage_policies","list_agents","get_agent",
  "publish_agent","modify_agent","delete_agent"'
ui_all=$(python3 -c 'import json,sys; print(json.dumps({a: ["all"] for a in json.loads("[" + sys.argv[1] + "]")}))' "$ALL_UI")
# Named like the auth-server's scope for group mcpgw-admins (tokens carry scopes, not groups)
# and mapped to the group too.
put_scope mcp-registry-admin "{\"name\":\"mcp-registry-admin\",\"group_mappings\":[\"mcpgw-admins\"],
  \"server_access\":[{\"server\":\"*\",\"methods\":[\"*\"],\"tools\":[\"*\"]}],\"ui_permissions\":$ui_all}"
put_scope mcp-registry-viewer '{"name":"mcp-registry-viewer","group_mappings":["mcpgw-viewers"],
  "server_access":[],"ui_permissions":{"list_service":["all"]}}'
log "scope documents stored: mcp-registry-admin (group mcpgw-admins: every UI action), mcp-registry-viewer (list_service)"

export MCPGW_CONSOLE_URL=$REG_URL/console/ MCPGW_AUTH_URL=$AUTH_URL MCPGW_REGISTRY_URL=$REG_URL \
  MCPGW_ADMIN_USER=admin MCPGW_ADMIN_PASSWORD=$ADMIN_PASSWORD \
  MCPGW_VIEWER_USER=$([[ -n $VIEWER_PASSWORD ]] && echo viewer) MCPGW_VIEWER_PASSWORD=$VIEWER_PASSWORD \
  MCPGW_DEMO_MCP_URL=$DEMO_MCP_URL MCPGW_REGISTRY_ADMIN_KEY=$ADMIN_KEY \
  MCPGW_SCREENSHOT_DIR=$SHOTS MCPGW_CHROMIUM=$CHROMIUM

log "running the browser tests (node --test tests/browser/*.test.mjs)"
RC=0
(cd tests/browser && node --test --test-concurrency=1 --test-reporter=spec "${NODE_ARGS[@]}" ./*.test.mjs) || RC=$?

count=$(find "$SHOTS" -type f | wc -l)
log "screenshots: $count files in $SHOTS"
((${#MISSING[@]} == 0)) || log "NOTE: started without ${MISSING[*]} (not supported by this checkout yet)"
if ((RC != 0)); then
  log "browser tests FAILED (node --test exit $RC)"
  exit 1
fi
FAILED_RUN=0
log "browser tests passed"
