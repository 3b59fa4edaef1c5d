#!/usr/bin/env bash
# cargo-deny, the dependency policy check of scripts/test.sh (deny.toml: licenses, bans,
# duplicate versions, sources), built from crates.io with `cargo install --locked` into
# $MCPGW_CACHE_DIR/cargo-deny (a few minutes on 2 cores, once). Idempotent: skipped when the
# cached binary is the pinned version.
#   cargo-deny.sh install | path | version      (path prints the executable on stdout)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ME="scripts/deps/cargo-deny.sh"
# Pinned so that every machine applies the same checks to the same tree.
CARGO_DENY_VERSION=0.20.2
ROOT=$MCPGW_CACHE_DIR/cargo-deny
BIN=$ROOT/bin/cargo-deny

installed_version() { "$BIN" --version 2>/dev/null | awk '{print $2}'; }

install() {
  [[ -x $BIN && $(installed_version) == "$CARGO_DENY_VERSION" ]] && return 0
  command -v cargo >/dev/null || die "cargo is not installed; install Rust (rustup) and re-run: $ME install"
  # One install at a time (two test runs starting together would both build it).
  exec 8>>"$MCPGW_CACHE_DIR/.cargo-deny-install.lock"
  flock 8
  [[ -x $BIN && $(installed_version) == "$CARGO_DENY_VERSION" ]] && return 0
  log "cargo install cargo-deny $CARGO_DENY_VERSION into $ROOT (a few minutes, once)"
  # Its own temporary target directory: the workspace's CARGO_TARGET_DIR would mix its
  # artifacts with the services'.
  env -u CARGO_TARGET_DIR cargo install cargo-deny --version "=$CARGO_DENY_VERSION" --locked \
    --root "$ROOT" --quiet >&2 ||
    die "cargo install cargo-deny failed (see above); crates.io must be reachable for the first install"
  [[ $(installed_version) == "$CARGO_DENY_VERSION" ]] ||
    die "$BIN is not cargo-deny $CARGO_DENY_VERSION after the install; remove $ROOT and retry: $ME install"
  log "cargo-deny $CARGO_DENY_VERSION ready in $ROOT"
}

path() {
  [[ -x $BIN ]] || die "cargo-deny is not installed; run: $ME install"
  echo "$BIN"
}

version() { installed_version; }

case ${1:-} in
  install | path | version) "$1" ;;
  *) die "usage: $ME install|path|version" ;;
esac
