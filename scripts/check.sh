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

log "static checks of docs and deployment files"
scripts/check-static.sh
scripts/check-runbook.sh
