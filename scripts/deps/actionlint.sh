#!/usr/bin/env bash
# actionlint (the GitHub Actions workflow linter) for scripts/check-workflows.sh, built from the
# Go module proxy with the machine's Go toolchain (no prebuilt binary is downloaded) into
# $MCPGW_CACHE_DIR/actionlint/bin, with its module cache beside it. Pinned, so every machine
# reports the same findings. Idempotent: a second install is a no-op.
#   actionlint.sh install | env      (env prints ACTIONLINT=… for eval)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ME="scripts/deps/actionlint.sh"
ACTIONLINT_VERSION=1.7.12
DIR=$MCPGW_CACHE_DIR/actionlint
ACTIONLINT=$DIR/bin/actionlint

installed_version() { "$ACTIONLINT" -version 2>/dev/null | head -n1 | sed "s/^v//"; }

install() {
  if [[ -x $ACTIONLINT && $(installed_version) == "$ACTIONLINT_VERSION" ]]; then
    return 0
  fi
  command -v go >/dev/null || [[ -x /usr/local/go/bin/go ]] ||
    die "actionlint is built with Go (1.22 or newer): install Go (Debian: apt-get install golang-go) and re-run $ME install"
  local go
  go=$(command -v go || echo /usr/local/go/bin/go)
  mkdir -p "$DIR"
  log "building actionlint $ACTIONLINT_VERSION from the Go module proxy (once; about a minute)"
  GOBIN=$DIR/bin GOMODCACHE=$DIR/gomod GOCACHE=$DIR/gocache GOFLAGS=-modcacherw CGO_ENABLED=0 \
    "$go" install "github.com/rhysd/actionlint/cmd/actionlint@v$ACTIONLINT_VERSION" ||
    die "go install of actionlint $ACTIONLINT_VERSION failed (see above)"
  [[ $(installed_version) == "$ACTIONLINT_VERSION" ]] ||
    die "$ACTIONLINT reports '$(installed_version)', not $ACTIONLINT_VERSION; remove $DIR and retry: $ME install"
  log "actionlint $ACTIONLINT_VERSION ready in $DIR/bin"
}

env_() {
  [[ -x $ACTIONLINT ]] || die "actionlint not installed; run: $ME install"
  printf 'ACTIONLINT=%q\n' "$ACTIONLINT"
}

case ${1:-} in
  install) install ;;
  env) env_ ;;
  *) die "usage: $ME install|env" ;;
esac
