#!/usr/bin/env bash
# Headless Chromium, playwright-core and axe-core for the web console's browser tests
# (tests/browser, run by scripts/test-console.sh). Nothing is downloaded by Playwright itself:
# the browser is Debian's chromium package, driven by the playwright-core npm package; axe-core
# audits accessibility (both pinned exactly in tests/browser/package.json and package-lock.json).
#   browser.sh install   apt-get install chromium if /usr/bin/chromium is missing (needs root),
#                        then `npm ci` in tests/browser (npm cache in $MCPGW_CACHE_DIR/npm);
#                        skipped when node_modules was installed from the same lock file
#   browser.sh path      print the Chromium executable (stdout)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib.sh"

TESTS=$(cd "$HERE/../../tests/browser" && pwd)
LOCK=$TESTS/package-lock.json
STAMP=$TESTS/node_modules/.mcpgw-lock-sha256 # the lock's hash when node_modules was installed
NPM_CACHE=$MCPGW_CACHE_DIR/npm
CHROMIUM=${MCPGW_CHROMIUM:-/usr/bin/chromium}
ME="scripts/deps/browser.sh"

lock_hash() { sha256sum "$LOCK" | awk '{print $1}'; }

install_chromium() {
  [[ -x $CHROMIUM ]] && return 0
  [[ $CHROMIUM == /usr/bin/chromium ]] ||
    die "MCPGW_CHROMIUM=$CHROMIUM is not an executable; unset it to use Debian's /usr/bin/chromium"
  command -v apt-get >/dev/null ||
    die "no $CHROMIUM and no apt-get: install Chromium by hand and set MCPGW_CHROMIUM to its executable"
  ((EUID == 0)) || command -v sudo >/dev/null ||
    die "$CHROMIUM is missing and installing it needs root: run 'sudo apt-get install chromium' (or this script as root), then re-run: $ME install"
  apt_install chromium
  [[ -x $CHROMIUM ]] || die "apt-get installed chromium but $CHROMIUM is not there; set MCPGW_CHROMIUM to its executable"
}

install_node_modules() {
  command -v node >/dev/null && command -v npm >/dev/null ||
    die "node and npm are needed (Node 20 or newer): apt-get install nodejs npm, then re-run: $ME install"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  ((major >= 20)) || die "node $(node --version) is too old: the browser tests need Node 20 or newer"
  [[ -f $LOCK ]] || die "$LOCK is missing; restore it from git (git checkout -- tests/browser/package-lock.json)"
  if [[ -f $STAMP && $(cat "$STAMP") == "$(lock_hash)" && -f $TESTS/node_modules/playwright-core/package.json ]]; then
    return 0
  fi
  # One install at a time (two test runs starting together would both write node_modules).
  exec 8>>"$MCPGW_CACHE_DIR/.browser-install.lock"
  flock 8
  if [[ -f $STAMP && $(cat "$STAMP") == "$(lock_hash)" ]]; then return 0; fi
  log "npm ci in tests/browser (playwright-core, axe-core; cache $NPM_CACHE)"
  mkdir -p "$NPM_CACHE"
  (cd "$TESTS" && npm ci --cache "$NPM_CACHE" --no-audit --no-fund --loglevel=error >&2) ||
    die "npm ci in $TESTS failed (see above); the npm registry must be reachable for the first install"
  lock_hash >"$STAMP"
  log "playwright-core $(node -p "require('$TESTS/node_modules/playwright-core/package.json').version") installed"
}

install() {
  install_chromium
  install_node_modules
}

path() {
  [[ -x $CHROMIUM ]] || die "$CHROMIUM is missing; run: $ME install"
  echo "$CHROMIUM"
}

case ${1:-} in
  install | path) "$1" ;;
  *) die "usage: $ME install|path" ;;
esac
