#!/usr/bin/env bash
# Writes .env for docker-compose.yml from .env.example with every required secret generated
# (keys: base64 of 32 random bytes; passwords: 48 hex digits, URL-safe). Refuses to overwrite an
# existing .env, so running it twice changes nothing. Usage: deploy/compose/new-env.sh [FILE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/lib.sh
out=${1:-.env}
if [[ -e $out ]]; then
  log "$out exists; leaving it alone (delete it to generate a new one)"
  exit 0
fi
key() { head -c 32 /dev/urandom | base64 | tr -d '\n'; }
password() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
umask 077
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
while IFS= read -r line; do
  case $line in
    REGISTRY_SEALING_KEY= | AUTH_SEALING_KEY= | GATEWAY_SESSION_KEY=) echo "$line$(key)" ;;
    *_PASSWORD=) echo "$line$(password)" ;;
    *) echo "$line" ;;
  esac
done <.env.example >"$tmp"
# Every required variable must now have a value.
if grep -E '^[A-Z_]+=$' "$tmp"; then die "the lines above are still empty in the generated file"; fi
mv "$tmp" "$out"
trap - EXIT
log "wrote $out (mode 0600) with generated secrets; keep it out of git"
