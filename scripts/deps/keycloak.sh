#!/usr/bin/env bash
# Keycloak on 127.0.0.1, in dev mode but on PostgreSQL as in production (the database
# `keycloak` on the server of scripts/deps/postgres.sh, started here if needed; `stop`
# leaves PostgreSQL running, it may serve others). Admin user `admin`, password
# generated once and kept in $MCPGW_RUN_DIR/keycloak.admin-password.
#   keycloak.sh install | start | stop | url      (start/url print the base URL on stdout)
#   keycloak.sh admin-password                    (prints the admin password)
#
# Version: 26.7.3 (newest on Maven Central when written), run on the newest JDK among
# 25/21/17 found under /usr/lib/jvm or /opt. Keycloak 26.x supports OpenJDK 17, 21 and
# 25; this machine's default java is OpenJDK 17 and it also carries Temurin 25
# (/usr/lib/jvm/temurin-25-jdk-amd64), which Keycloak recommends, so that one is used;
# no JDK 21 is installed. 26.7.3 was also checked on the OpenJDK 17 (starts and serves
# tokens the same). Override with MCPGW_KEYCLOAK_VERSION (25.x: bootstrap admin via
# KEYCLOAK_ADMIN*, and needs JDK 17/21) and MCPGW_KEYCLOAK_JAVA_HOME.
#
# Commands that work against it (tested on 26.7.3; KC=$(keycloak.sh url)):
#   # admin token: password grant on the master realm, public client admin-cli
#   TOKEN=$(curl -sf -d grant_type=password -d client_id=admin-cli -d username=admin \
#     --data-urlencode "password=$(keycloak.sh admin-password)" \
#     "$KC/realms/master/protocol/openid-connect/token" | jq -r .access_token)
#   # a realm (201 Created; 409 if it exists)
#   curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
#     -d '{"realm":"mcpgw","enabled":true}' "$KC/admin/realms"
#   # a confidential client with a service account (client_credentials grant)
#   curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
#     -d '{"clientId":"mcpgw-m2m","secret":"m2m-secret","publicClient":false,
#          "serviceAccountsEnabled":true,"standardFlowEnabled":false,
#          "directAccessGrantsEnabled":false}' "$KC/admin/realms/mcpgw/clients"
#   # its token: an RS256 JWT, iss=$KC/realms/mcpgw, typ=Bearer, azp=mcpgw-m2m
#   curl -sf -d grant_type=client_credentials -d client_id=mcpgw-m2m -d client_secret=m2m-secret \
#     "$KC/realms/mcpgw/protocol/openid-connect/token" | jq -r .access_token
#   # discovery and JWKS
#   curl -sf "$KC/realms/mcpgw/.well-known/openid-configuration"
#   curl -sf "$KC/realms/mcpgw/protocol/openid-connect/certs"
#   # a group, a user in it, and a client whose tokens carry aud=mcp-gateway and groups
#   H=(-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json')
#   curl -sf "${H[@]}" -d '{"name":"mcp-users"}' "$KC/admin/realms/mcpgw/groups"
#   curl -sf "${H[@]}" -d '{"username":"alice","enabled":true,"email":"alice@example.test",
#     "emailVerified":true,"firstName":"Alice","lastName":"Test","groups":["/mcp-users"],
#     "credentials":[{"type":"password","value":"alice-password","temporary":false}]}' \
#     "$KC/admin/realms/mcpgw/users"     # without email/first/last name KC 26 refuses logins
#   curl -sf "${H[@]}" -d '{"clientId":"mcpgw-web","secret":"web-secret","publicClient":false,
#     "standardFlowEnabled":true,"directAccessGrantsEnabled":true,"serviceAccountsEnabled":true,
#     "redirectUris":["http://127.0.0.1:*"],"attributes":{"pkce.code.challenge.method":"S256"},
#     "protocolMappers":[
#      {"name":"aud","protocol":"openid-connect","protocolMapper":"oidc-audience-mapper",
#       "config":{"included.custom.audience":"mcp-gateway","access.token.claim":"true"}},
#      {"name":"groups","protocol":"openid-connect","protocolMapper":"oidc-group-membership-mapper",
#       "config":{"claim.name":"groups","full.path":"false","access.token.claim":"true",
#                 "id.token.claim":"true"}}]}' "$KC/admin/realms/mcpgw/clients"
#   # alice's token (aud ["mcp-gateway","account"], groups ["mcp-users"]), by password grant
#   curl -sf -d grant_type=password -d client_id=mcpgw-web -d client_secret=web-secret \
#     -d username=alice -d password=alice-password -d scope=openid \
#     "$KC/realms/mcpgw/protocol/openid-connect/token"
#   # or by authorization code + PKCE without a browser: GET .../openid-connect/auth?...
#   # with a cookie jar, POST username/password to the login form's action URL (its
#   # &amp; decoded), the 302 Location is redirect_uri?state=..&code=..; exchange the code.
# Keycloak access tokens: header typ "JWT" (not at+jwt), claim typ "Bearer".
set -euo pipefail
HERE=$(dirname "${BASH_SOURCE[0]}")
source "$HERE/../lib.sh"

VERSION=${MCPGW_KEYCLOAK_VERSION:-26.7.3}
KC_CACHE=$MCPGW_CACHE_DIR/keycloak
KC_HOME=$KC_CACHE/keycloak-$VERSION
PIDFILE=$MCPGW_RUN_DIR/keycloak.pid
PORTFILE=$MCPGW_RUN_DIR/keycloak.port
LOGFILE=$MCPGW_RUN_DIR/keycloak.log
PWFILE=$MCPGW_RUN_DIR/keycloak.admin-password
ME="scripts/deps/keycloak.sh"
START_TIMEOUT=${MCPGW_KEYCLOAK_START_TIMEOUT:-180}

# java_home: a JDK Keycloak supports, preferring 25, then 21, then 17.
java_home() {
  local want d v
  [[ -z ${MCPGW_KEYCLOAK_JAVA_HOME:-} ]] || { echo "$MCPGW_KEYCLOAK_JAVA_HOME"; return; }
  for want in 25 21 17; do
    for d in /usr/lib/jvm/* /opt/* /opt/java/*; do
      [[ -x $d/bin/java ]] || continue
      v=$("$d/bin/java" -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p')
      [[ $v == "$want" ]] && { echo "$d"; return; }
    done
  done
  return 1
}
die_log() { die "$1"$'\n'"--- last lines of $LOGFILE ---"$'\n'"$(tail -n 30 "$LOGFILE" 2>/dev/null)"; }
base_url() { echo "http://127.0.0.1:$(cat "$PORTFILE")"; }

install() {
  "$HERE/postgres.sh" install # first: it takes the install lock itself when it has work
  exec 9>>"$MCPGW_CACHE_DIR/.install.lock"
  flock 9
  java_home >/dev/null || apt_install openjdk-17-jre-headless
  if [[ ! -x $KC_HOME/bin/kc.sh ]]; then
    command -v mvn >/dev/null || apt_install maven
    mkdir -p "$KC_CACHE"
    log "downloading Keycloak $VERSION from Maven Central (about 180 MB)"
    # Own local repository, so the cache holds everything and ~/.m2 stays untouched.
    # (sed: Debian's Maven 3.8 prints colour resets even in batch mode.)
    mvn -B -q dependency:copy -Dartifact="org.keycloak:keycloak-quarkus-dist:$VERSION:tar.gz" \
      -DoutputDirectory="$KC_CACHE" -Dmaven.repo.local="$MCPGW_CACHE_DIR/m2" 2>&1 |
      sed 's/\x1b\[[0-9;]*m//g' >&2 ||
      die "mvn could not fetch org.keycloak:keycloak-quarkus-dist:$VERSION:tar.gz; check that Maven Central is reachable and the version exists, then re-run: $ME install"
    log "unpacking into $KC_CACHE"
    rm -rf "$KC_HOME.tmp" && mkdir -p "$KC_HOME.tmp"
    tar -xzf "$KC_CACHE/keycloak-quarkus-dist-$VERSION.tar.gz" -C "$KC_HOME.tmp" --strip-components=1
    mv "$KC_HOME.tmp" "$KC_HOME"
    # The unpacked tree is all we need: drop both archive copies (~350 MB).
    rm -rf "$KC_CACHE/keycloak-quarkus-dist-$VERSION.tar.gz" "$MCPGW_CACHE_DIR/m2/org/keycloak"
  fi
  log "keycloak ready: $(cat "$KC_HOME/version.txt") in $KC_HOME, java $(java_home)"
}

# Succeed if our Keycloak process is alive and the master realm answers.
running() {
  pid_is "$PIDFILE" keycloak && [[ -s $PORTFILE ]] &&
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$(base_url)/realms/master") == 200 ]]
}

start() {
  if running; then
    log "keycloak already running (pid $(cat "$PIDFILE")); reusing it"
    base_url
    return
  fi
  [[ -x $KC_HOME/bin/kc.sh ]] || die "Keycloak $VERSION is not installed; run: $ME install"
  local jdk pg db port mport pid re deadline next admin_env
  jdk=$(java_home) || die "no JDK 17/21/25 found under /usr/lib/jvm or /opt; run: $ME install"
  stop_kc # alive but not answering: replace it
  "$HERE/postgres.sh" start >/dev/null
  # Bootstrap admin is created only in an empty database: without our password file we
  # cannot log in to an existing one, so then start over with an empty database.
  if [[ ! -s $PWFILE ]]; then
    pg=$("$HERE/postgres.sh" url)
    PGOPTIONS='-c client_min_messages=warning' psql -X -q -d "$pg" -c 'DROP DATABASE IF EXISTS keycloak' >&2
    (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(16))' >"$PWFILE")
  fi
  db=$("$HERE/postgres.sh" createdb keycloak)
  re='^postgres://([^:]+):([^@]+)@([^/]+)/(.+)$'
  [[ $db =~ $re ]] || die "unexpected URL from postgres.sh createdb: $db"
  # Bootstrap admin variables: KC_BOOTSTRAP_ADMIN_* since 26, KEYCLOAK_ADMIN* before.
  if [[ $VERSION == 25.* ]]; then
    admin_env=(KEYCLOAK_ADMIN=admin KEYCLOAK_ADMIN_PASSWORD="$(cat "$PWFILE")")
  else
    admin_env=(KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD="$(cat "$PWFILE")")
  fi
  port=$(free_port)
  mport=$(free_port) # management interface (default 9000), in case something enables it
  log "starting keycloak $VERSION on 127.0.0.1:$port (java $jdk, db ${BASH_REMATCH[3]}/keycloak, log $LOGFILE)"
  # Small heap: the machine has 2 cores and other services. setsid: kc.sh runs java as
  # a child, so stop can reach both through the process group.
  # The database password goes by environment, to keep it out of `ps`.
  JAVA_HOME=$jdk JAVA_OPTS_KC_HEAP="-Xms256m -Xmx768m" KC_DB_PASSWORD=${BASH_REMATCH[2]} \
    env "${admin_env[@]}" setsid nohup "$KC_HOME/bin/kc.sh" start-dev --db postgres \
    --db-url "jdbc:postgresql://${BASH_REMATCH[3]}/keycloak" --db-username "${BASH_REMATCH[1]}" \
    --http-host 127.0.0.1 --http-port "$port" --http-management-port "$mport" \
    >"$LOGFILE" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  echo "$port" >"$PORTFILE"
  deadline=$((SECONDS + START_TIMEOUT)) next=$((SECONDS + 10))
  until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/realms/master") == 200 ]]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE" "$PORTFILE"
      die_log "keycloak exited during startup; fix the cause shown below, then: $ME start"
    fi
    if ((SECONDS >= deadline)); then
      stop_kc
      rm -f "$PIDFILE" "$PORTFILE"
      die_log "keycloak did not answer /realms/master within ${START_TIMEOUT}s (raise MCPGW_KEYCLOAK_START_TIMEOUT on a slow machine), then: $ME start"
    fi
    if ((SECONDS >= next)); then
      log "waiting for keycloak: $(tail -n 1 "$LOGFILE" | cut -c1-150)"
      next=$((SECONDS + 10))
    fi
    sleep 1
  done
  log "keycloak up on 127.0.0.1:$port (pid $pid)"
  base_url
}

url() {
  running || die "keycloak is not running; run: $ME start"
  base_url
}

admin_password() {
  [[ -s $PWFILE ]] || die "no admin password yet; run: $ME start"
  cat "$PWFILE"
}

# stop_kc: SIGTERM kc.sh (it forwards the signal to java), then clean up the group.
stop_kc() {
  local pid
  pid_is "$PIDFILE" keycloak || return 0
  pid=$(cat "$PIDFILE")
  stop_pid "$PIDFILE" keycloak
  kill -KILL -- "-$pid" 2>/dev/null || true # java left behind if kc.sh had to be killed
}

stop() {
  if pid_is "$PIDFILE" keycloak; then stop_kc; log "keycloak stopped"; else log "keycloak was not running"; fi
  rm -f "$PIDFILE" "$PORTFILE"
}

case ${1:-} in
  install | start | stop | url) "$1" ;;
  admin-password) admin_password ;;
  *) die "usage: $ME install|start|stop|url|admin-password" ;;
esac
