#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs and starts the real components the tests
# talk to (MongoDB as a single-node replica set, the AWS Secrets Manager emulator, PostgreSQL,
# Keycloak on PostgreSQL, a second OIDC provider, Chromium for the console tests and the MCP
# clients' OAuth sign-in, cargo-deny),
# checks formatting, lints and the dependency policy (scripts/check.sh), runs every test on both
# storage backends, then stops what it started.
# Idempotent; caches live in $MCPGW_CACHE_DIR (default ~/.cache/mcpgw), so a second run is fast.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

need_rust() {
  command -v cargo >/dev/null || die "cargo is not installed; install Rust 1.94 or newer (rustup) and re-run"
  local v
  v=$(rustc --version | awk '{print $2}')
  if [[ $(printf '%s\n1.94.0\n' "$v" | sort -V | head -n1) != 1.94.0 ]]; then
    die "rustc $v is too old: this workspace needs 1.94 or newer (rustup update stable)"
  fi
  for c in rustfmt clippy; do
    cargo $([[ $c == rustfmt ]] && echo fmt || echo clippy) --version >/dev/null 2>&1 ||
      die "cargo $c is missing: rustup component add $c"
  done
}

need_rust
log "installing test dependencies (cached after the first run)"
for dep in mongodb moto postgres keycloak oidc mcp-peers stdio-catalog tfscan browser cargo-deny; do scripts/deps/"$dep".sh install; done
# Where the real MCP servers and clients are (server-everything, the Inspector, the Python SDK).
eval "$(scripts/deps/mcp-peers.sh env)"
# The real stdio servers the gateway hosts in its catalog test (server-memory, server-filesystem).
eval "$(scripts/deps/stdio-catalog.sh env)"
# The browser of the MCP clients' OAuth sign-in test (tests/browser/oauth_sign_in.mjs).
export MCPGW_CHROMIUM=${MCPGW_CHROMIUM:-$(scripts/deps/browser.sh path)}

# Stop at the end only what this run started; an instance that was already running (a
# developer's) is reused and left running.
started=()
cleanup() {
  for dep in "${started[@]}"; do scripts/deps/"$dep".sh stop || true; done
}
trap cleanup EXIT
# Keycloak needs PostgreSQL, so it is stopped first; PostgreSQL last.
for dep in oidc keycloak moto mongodb postgres; do
  scripts/deps/"$dep".sh url >/dev/null 2>&1 || started+=("$dep")
done
MCPGW_TEST_MONGODB_URL=$(scripts/deps/mongodb.sh start)
MCPGW_TEST_MOTO_URL=$(scripts/deps/moto.sh start)
MCPGW_TEST_POSTGRES_URL=$(scripts/deps/postgres.sh start)
log "starting Keycloak (about 20 s, or 90 s on a new database)"
MCPGW_TEST_KEYCLOAK_URL=$(scripts/deps/keycloak.sh start)
MCPGW_TEST_KEYCLOAK_ADMIN_PASSWORD=$(scripts/deps/keycloak.sh admin-password)
MCPGW_TEST_OIDC_URL=$(scripts/deps/oidc.sh start)
export MCPGW_TEST_MONGODB_URL MCPGW_TEST_MOTO_URL MCPGW_TEST_POSTGRES_URL MCPGW_TEST_KEYCLOAK_URL \
  MCPGW_TEST_KEYCLOAK_ADMIN_PASSWORD MCPGW_TEST_OIDC_URL

# fmt, clippy, cargo-deny and the static checks (`make check` alone runs just these).
scripts/check.sh

log "cargo test (SQLite and MongoDB backends)"
cargo test --workspace --locked

log "MCP conformance suite, both eras, through the gateway (docs/conformance.md)"
scripts/conformance.sh

log "web console in headless Chromium against the real registry and auth-server (docs/console.md)"
scripts/test-console.sh

# After the tests: the compose check runs the services' --check-config with the debug
# binaries they built.
log "docker-compose.yml: Compose schema, project rules, each service's --check-config"
scripts/check-compose.sh

log "Terraform: fmt, validate every module and environment, checkov and trivy"
scripts/check-terraform.sh
