#!/usr/bin/env bash
# Real stdio MCP servers for the gateway's hosting tests (services/gateway/tests/it/catalog.rs),
# installed at pinned versions into $MCPGW_CACHE_DIR/stdio-catalog (nothing under the repo).
#   stdio-catalog.sh install   npm packages (scripts/deps/stdio-catalog/package-lock.json)
#   stdio-catalog.sh env       print `export` lines with the paths the tests read (stdout)
#
# What is installed (pinned), beside mcp-server-time, which scripts/deps/mcp-peers.sh puts in
# the Python peers' venv:
#   @modelcontextprotocol/server-memory 2026.8.31       a knowledge graph in a JSON file
#   @modelcontextprotocol/server-filesystem 2026.8.31   files under the directories it is given
# They run on the Node that mcp-peers.sh installs (its `env` names it: MCPGW_TEST_NODE).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib.sh"

SRC=$HERE/stdio-catalog
PREFIX=$MCPGW_CACHE_DIR/stdio-catalog
NM=$PREFIX/node_modules
MEMORY=$NM/@modelcontextprotocol/server-memory/dist/index.js
FILESYSTEM=$NM/@modelcontextprotocol/server-filesystem/dist/index.js
ME="scripts/deps/stdio-catalog.sh"

installed() { [[ -f $MEMORY && -f $FILESYSTEM ]] && cmp -s "$SRC/package-lock.json" "$PREFIX/.installed-lock"; }

install() {
  if installed; then
    log "stdio catalog already installed in $PREFIX"
    return
  fi
  if ! command -v npm >/dev/null; then apt_install nodejs npm; fi
  exec 9>>"$MCPGW_CACHE_DIR/.install.lock"
  flock 9
  installed && return
  mkdir -p "$PREFIX"
  cp "$SRC/package.json" "$SRC/package-lock.json" "$PREFIX/"
  log "npm ci in $PREFIX (server-memory, server-filesystem)"
  (cd "$PREFIX" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) 2>&1 |
    grep -v 'Unknown user config' >&2 || true
  [[ -f $MEMORY && -f $FILESYSTEM ]] ||
    die "npm ci failed in $PREFIX; check that the npm registry is reachable, then re-run: $ME install"
  cp "$SRC/package-lock.json" "$PREFIX/.installed-lock"
  log "stdio catalog ready in $PREFIX"
}

env_() {
  installed || die "the stdio catalog is not installed (or its pins changed); run: $ME install"
  cat <<EOT
export MCPGW_TEST_STDIO_MEMORY=$MEMORY
export MCPGW_TEST_STDIO_FILESYSTEM=$FILESYSTEM
EOT
}

case "${1:-}" in
  install) install ;;
  env) env_ ;;
  *) die "usage: $ME install | env" ;;
esac
