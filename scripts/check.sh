#!/usr/bin/env bash
# The fast checks (`make check`), and the first part of scripts/test.sh: formatting, clippy with
# warnings as errors, the dependency policy (cargo-deny on deny.toml) and the static checks of
# docs and deployment files. Nothing here starts a database or runs a test, so it is the check to
# run before every commit; `make test` runs it too, then the whole suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

log "cargo fmt --check"
cargo fmt --all -- --check || die "formatting differs: run 'make fmt' and commit"

log "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Advisories are left out: their database is a git clone from GitHub, which these machines
# cannot reach (deny.toml says more). Duplicate versions are warnings (deny.toml's [bans]).
log "cargo deny: licenses, bans, duplicate versions, sources (deny.toml)"
scripts/deps/cargo-deny.sh install
"$(scripts/deps/cargo-deny.sh path)" --log-level error check licenses bans sources

# The services' tests make Keycloak realms through mcpgw-test-support's keycloak feature; were a
# service among that feature's (normal) dependencies, its tests would link a second build of
# their own crate (the dev-dependency loop mcpgw-setup-keycloak was split out to end).
log "no dev-dependency loop: mcpgw-test-support[keycloak] depends on no service"
loop=$(cargo tree --locked -p mcpgw-test-support --features keycloak -e normal --prefix none \
    | awk '{print $1}' | grep -xE 'registry|auth-server|gateway|mcpgw-setup' | sort -u || true)
[[ -z "$loop" ]] || die "mcpgw-test-support --features keycloak depends on: $(echo $loop); the services' tests would depend on their own crate (keep Keycloak code in mcpgw-setup-keycloak)"

log "static checks of docs and deployment files"
scripts/check-static.sh
scripts/check-runbook.sh
# The release pipeline's workflows (actionlint, built once from the Go module proxy).
scripts/check-workflows.sh
