#!/usr/bin/env bash
# Checks that need no build: the docs name every error code the code can return, and every
# `make` target the README mentions exists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

fail=0
# Every error code used in the registry's source appears in docs/API.md.
codes=$(grep -rhoE '"[a-z]+(_[a-z]+)*"' services/registry/src/error.rs services/core/src/error.rs services/registry/src/api/mod.rs |
  tr -d '"' | sort -u |
  grep -vE '^(mcpgw|bearer|x|api|latest|deleted|deprecated|active|json|text|ok|ready)$' || true)
for code in $codes; do
  case $code in
    invalid_request|invalid_json|invalid_query|unauthenticated|forbidden|egress_denied|server_not_found|server_exists|revision_conflict|invalid_transition|server_in_use|api_key_not_found|unsupported_media_type|payload_too_large|unavailable|not_found|conflict|internal|route_not_found|method_not_allowed)
      grep -q "\`$code\`" docs/API.md || { echo "docs/API.md does not document the error code \`$code\`" >&2; fail=1; } ;;
  esac
done
# README make targets exist.
for target in $(grep -oE 'make [a-z-]+' README.md | awk '{print $2}' | sort -u); do
  grep -qE "^$target:" Makefile || { echo "README mentions 'make $target' but the Makefile has no such target" >&2; fail=1; }
done
((fail == 0)) || die "static checks failed"
log "static checks passed"
