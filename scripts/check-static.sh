#!/usr/bin/env bash
# Checks that need no build: every error code the code can return is documented in
# docs/API.md (HTTP) or docs/MCP-GATEWAY.md (the gateway's JSON-RPC codes), and every `make`
# target the README mentions exists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

fail=0
# Error codes are the string literal after the status in ApiError::new(StatusCode::X, "code", …)
# or the first argument of ApiError::not_found("code", …), anywhere in the services.
codes=$(python3 - <<'PY'
import pathlib, re
pattern = re.compile(r'(?:ApiError|Self)::(?:new\(\s*StatusCode::[A-Z_]+,\s*|not_found\(\s*)"([a-z_]+)"')
codes = set()
for path in pathlib.Path("services").rglob("*.rs"):
    if "/tests/" not in str(path):
        codes.update(pattern.findall(path.read_text()))
print("\n".join(sorted(codes)))
PY
)
[[ -n $codes ]] || die "found no error codes in services/: has ApiError changed shape? update scripts/check-static.sh"
for code in $codes; do
  grep -q "\`$code\`" docs/API.md || { echo "docs/API.md does not document the error code \`$code\`" >&2; fail=1; }
done
# Every JSON-RPC error code the gateway answers with is documented in docs/MCP-GATEWAY.md.
rpc_codes=$(grep -oE 'pub const [A-Z_]+: i64 = -?[0-9]+' services/gateway/src/jsonrpc.rs | awk '{print $NF}' | tr -d ';')
[[ -n $rpc_codes ]] || die "found no JSON-RPC error codes in services/gateway/src/jsonrpc.rs: update scripts/check-static.sh"
for code in $rpc_codes; do
  grep -q "\`$code\`" docs/MCP-GATEWAY.md || { echo "docs/MCP-GATEWAY.md does not document the JSON-RPC error code \`$code\`" >&2; fail=1; }
done
# Every envelope code of the gateway (ProxyError's `Body::Envelope("…")` and the `{"code": "…"}`
# bodies built elsewhere in the gateway) is documented in docs/MCP-GATEWAY.md, and ProxyError's
# mapping names only JSON-RPC codes that jsonrpc.rs defines (and the loop above checks).
gw_codes=$( { grep -ohE 'Body::Envelope\("[a-z_]+"\)' services/gateway/src/error.rs | grep -oE '"[a-z_]+"';
  grep -rohE '"code": "[a-z_]+"' services/gateway/src | grep -oE '"[a-z_]+"$'; } | tr -d '"' | sort -u)
[[ -n $gw_codes ]] || die "found no envelope codes in services/gateway/src: has ProxyError changed shape? update scripts/check-static.sh"
for code in $gw_codes; do
  grep -q "\`$code\`" docs/MCP-GATEWAY.md || { echo "docs/MCP-GATEWAY.md does not document the gateway error code \`$code\`" >&2; fail=1; }
done
for name in $(grep -ohE 'codes::[A-Z_]+' services/gateway/src/error.rs | sort -u | cut -d: -f3); do
  grep -qE "pub const $name: i64" services/gateway/src/jsonrpc.rs || { echo "ProxyError maps to codes::$name, which jsonrpc.rs does not define" >&2; fail=1; }
done
# README make targets exist.
for target in $(grep -oE 'make [a-z-]+' README.md | awk '{print $2}' | sort -u); do
  grep -qE "^$target:" Makefile || { echo "README mentions 'make $target' but the Makefile has no such target" >&2; fail=1; }
done
((fail == 0)) || die "static checks failed"
log "static checks passed ($(wc -w <<<"$codes") error codes and $(wc -w <<<"$rpc_codes") JSON-RPC codes and $(wc -w <<<"$gw_codes") gateway codes documented)"
