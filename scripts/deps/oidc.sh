#!/usr/bin/env bash
# A second OIDC provider on 127.0.0.1 (stands for Entra ID, Okta, ...): the small Node
# server in scripts/deps/oidc-provider/ (panva's oidc-provider). State and signing keys
# live in memory: every start begins afresh. Its settings (clients, user, audience) come
# from OIDC_* variables in the environment of `start`, listed in server.mjs; a running
# provider is reused as is, so stop it to change them.
#   oidc.sh install | start | stop | url      (start/url print the issuer on stdout:
#                                             http://127.0.0.1:PORT/realms/second)
#
# Checked with (I=$(oidc.sh url)):
#   curl -sf "$I/.well-known/openid-configuration"; curl -sf "$I/jwks"
#   curl -sf -u mcpgw-m2m:mcpgw-m2m-secret -d grant_type=client_credentials "$I/token"
#     -> access_token: RS256 JWT, typ at+jwt, iss=$I, aud=mcp-gateway, sub=client_id=mcpgw-m2m
#     (add -d resource=URI for aud=URI, -d scope=mcp for scope)
#   Authorization code: client mcpgw-web (secret mcpgw-web-secret), PKCE S256 required;
#   /auth redirects to a login form at $I/interaction/UID; POST username=alice
#   password=alice-password to $I/interaction/UID/login, follow the redirects (keep
#   cookies) to the redirect URI with ?code=; ID and access tokens carry
#   groups=["mcp-users"].
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib.sh"

SRC=$HERE/oidc-provider
# node_modules stay out of the repo: the package files are copied into the cache and
# installed there. server.mjs is copied at each start (ES modules ignore NODE_PATH).
APP=$MCPGW_CACHE_DIR/oidc-provider
PIDFILE=$MCPGW_RUN_DIR/oidc.pid
PORTFILE=$MCPGW_RUN_DIR/oidc.port
ISSUERFILE=$MCPGW_RUN_DIR/oidc.issuer # the realm may differ per start (OIDC_REALM)
LOGFILE=$MCPGW_RUN_DIR/oidc.log
ME="scripts/deps/oidc.sh"

issuer() { cat "$ISSUERFILE"; }
# Installed means: node_modules built from exactly the lock file now in the repo.
installed() { [[ -d $APP/node_modules ]] && cmp -s "$SRC/package-lock.json" "$APP/.installed-lock"; }

install() {
  local major
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then apt_install nodejs npm; fi
  major=$(node -p 'process.versions.node.split(".")[0]')
  # oidc-provider 9 needs Node 20.19+ (it warns on anything below 22, harmlessly).
  ((major >= 20)) || die "node $(node -v) is too old for oidc-provider 9: install Node 20.19 or newer, then re-run: $ME install"
  if ! installed; then
    exec 9>>"$MCPGW_CACHE_DIR/.install.lock"
    flock 9
    mkdir -p "$APP"
    cp "$SRC/package.json" "$SRC/package-lock.json" "$APP/"
    log "npm ci in $APP"
    (cd "$APP" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2 ||
      die "npm ci failed in $APP; check that the npm registry is reachable, then re-run: $ME install"
    cp "$SRC/package-lock.json" "$APP/.installed-lock"
  fi
  log "oidc-provider ready: $(node -p "require('$APP/node_modules/oidc-provider/package.json').version") on node $(node -v)"
}

running() {
  pid_is "$PIDFILE" server.mjs && [[ -s $ISSUERFILE ]] &&
    curl -sf -o /dev/null --max-time 5 "$(issuer)/.well-known/openid-configuration"
}

start() {
  if running; then
    log "oidc provider already running (pid $(cat "$PIDFILE")); reusing it"
    issuer
    return
  fi
  installed || die "oidc-provider is not installed (or package-lock.json changed); run: $ME install"
  stop_pid "$PIDFILE" server.mjs # alive but not answering: replace it
  rm -f "$PIDFILE" "$PORTFILE" "$ISSUERFILE"
  cp "$SRC/server.mjs" "$APP/server.mjs"
  local port pid deadline=$((SECONDS + 30))
  port=$(free_port)
  log "starting oidc provider on 127.0.0.1:$port (log $LOGFILE)"
  (cd "$APP" && PORT=$port exec nohup node "$APP/server.mjs") >"$LOGFILE" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  echo "$port" >"$PORTFILE"
  echo "http://127.0.0.1:$port/realms/${OIDC_REALM:-second}" >"$ISSUERFILE"
  until curl -sf -o /dev/null --max-time 2 "$(issuer)/.well-known/openid-configuration"; do
    # Check the pid too: if our server died, the port may belong to someone else.
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
      stop_pid "$PIDFILE" server.mjs
      rm -f "$PIDFILE" "$PORTFILE" "$ISSUERFILE"
      die "oidc provider did not come up on 127.0.0.1:$port within 30 s; see $LOGFILE, then retry: $ME start"$'\n'"$(tail -n 20 "$LOGFILE")"
    fi
    sleep 0.2
  done
  log "oidc provider up, issuer $(issuer) (pid $pid)"
  issuer
}

url() {
  running || die "oidc provider is not running; run: $ME start"
  issuer
}

stop() {
  if pid_is "$PIDFILE" server.mjs; then stop_pid "$PIDFILE" server.mjs; log "oidc provider stopped"; else log "oidc provider was not running"; fi
  rm -f "$PIDFILE" "$PORTFILE" "$ISSUERFILE"
}

case ${1:-} in
  install | start | stop | url) "$1" ;;
  *) die "usage: $ME install|start|stop|url" ;;
esac
