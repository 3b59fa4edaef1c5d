#!/usr/bin/env bash
# The compose stack, run for real: docker-compose.yml as users run it, in a Docker engine of
# this project's own (scripts/compose-engine.sh), then MCP calls through the containerised
# gateway. Run by hand for now (not yet in scripts/test.sh: no complete run yet); idempotent; a
# second run is fast (the engine's images, the stand-ins and the binaries' build stay cached
# under $MCPGW_CACHE_DIR).
#   1. the engine (Debian's docker.io) and Compose v2 (built once from the Go module proxy);
#   2. the third-party images as local stand-ins (scripts/compose-standins.sh);
#   3. the four mcpgw images from their Dockerfiles' runtime stage, with binaries built here once
#      (static, x86_64-unknown-linux-musl, profile `image`: the ones users get) through
#      scripts/build-images.sh BINARIES_DIR=; prints each image's size;
#   4. Compose v1 (Debian's docker-compose 1.29) parses the file; `docker compose up --wait` of
#      docker-compose.yml, with only the host ports (free ones),
#      the image tag and the secrets (deploy/compose/new-env.sh) set through its .env; Grafana
#      (no reachable artifact) and the npx-installed `everything` (needs the npm registry from
#      inside a container) are left out;
#   5. mcpgw-setup's own end-to-end check (`setup-validate`), then scripts/compose-smoke.py:
#      /demo/mcp and the aggregated /mcp with a Keycloak M2M token (tools/list, tools/call);
#   6. `down -v`: the stack's containers, network and volumes go; the engine is stopped if this
#      run started it (its bridge and iptables chains removed).
# MCPGW_COMPOSE_KEEP=1 leaves the stack and engine running (to look around; DOCKER_HOST and the
# project name are printed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

COMPOSE_VERSION=v2.40.3
PROJECT=mcpgw-compose-test
TAG=compose-test
BIN=$MCPGW_CACHE_DIR/docker/bin
IMAGE_TARGET_DIR=${MCPGW_IMAGE_TARGET_DIR:-$MCPGW_CACHE_DIR/target-image}
RUN=$MCPGW_CACHE_DIR/docker/compose-test
start=$SECONDS

# --- 1. engine and Compose -------------------------------------------------------------------
scripts/compose-engine.sh install
engine_started=""
scripts/compose-engine.sh host >/dev/null 2>&1 || engine_started=1
DOCKER_HOST=$(scripts/compose-engine.sh start)
export DOCKER_HOST
# Debian's CLI first on PATH (its built-in BuildKit needs no buildx), and our Compose v2.
mkdir -p "$BIN" "$RUN"
ln -sf /usr/bin/docker "$BIN/docker"
export PATH=$BIN:$PATH
if [[ $("$BIN/docker-compose" version --short 2>/dev/null) != "${COMPOSE_VERSION#v}" ]]; then
  command -v go >/dev/null || die "Compose $COMPOSE_VERSION is built with Go (1.24+), which is not installed"
  log "building Docker Compose $COMPOSE_VERSION from the Go module proxy (once, a few CPU-minutes)"
  dir=$(go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  # As the main module, so its go.mod's replace directives apply.
  (cd "$dir" && GOFLAGS=-mod=mod go build -trimpath \
    -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
    -o "$BIN/docker-compose" ./cmd) >&2 || die "building Compose $COMPOSE_VERSION failed (see above)"
fi
compose() { "$BIN/docker-compose" -p "$PROJECT" --env-file "$RUN/.env" -f docker-compose.yml "$@"; }

cleanup() {
  local rc=$?
  if [[ ${MCPGW_COMPOSE_KEEP:-} == 1 ]]; then
    log "left running (MCPGW_COMPOSE_KEEP=1): DOCKER_HOST=$DOCKER_HOST $BIN/docker-compose -p $PROJECT --env-file $RUN/.env ..."
    return
  fi
  if ((rc != 0)) && [[ -s $RUN/.env ]]; then
    log "the stack's last log lines:"
    compose ps -a >&2 || true
    compose logs --no-color --tail 30 >&2 || true
  fi
  [[ ! -s $RUN/.env ]] || compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true
  [[ -z $engine_started ]] || scripts/compose-engine.sh stop
}
trap cleanup EXIT

# --- 2. stand-ins ----------------------------------------------------------------------------
t=$SECONDS
scripts/compose-standins.sh build
log "stand-ins: $((SECONDS - t)) s"

# --- 3. the mcpgw images ---------------------------------------------------------------------
t=$SECONDS
log "static binaries (profile image, x86_64-unknown-linux-musl) into $IMAGE_TARGET_DIR"
rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl ||
  rustup target add x86_64-unknown-linux-musl >&2
command -v musl-gcc >/dev/null || apt_install musl-tools
CARGO_TARGET_DIR=$IMAGE_TARGET_DIR cargo build --quiet --locked --profile image \
  --target x86_64-unknown-linux-musl -p registry -p auth-server -p gateway -p mcpgw-setup
log "binaries: $((SECONDS - t)) s"
t=$SECONDS
BINARIES_DIR=$IMAGE_TARGET_DIR/x86_64-unknown-linux-musl/image TAG=$TAG scripts/build-images.sh build >/dev/null
log "images: $((SECONDS - t)) s; sizes (what \`docker image inspect\` reports, uncompressed):"
for image in registry auth-server gateway setup; do
  printf '    mcpgw/%-12s %6.1f MB\n' "$image" "$(docker image inspect -f '{{.Size}}' "mcpgw/$image:$TAG" | awk '{print $1/1e6}')" >&2
done

# --- 4. up -----------------------------------------------------------------------------------
deploy/compose/new-env.sh "$RUN/.env.new" 2>/dev/null
mv "$RUN/.env.new" "$RUN/.env"
gateway_port=$(free_port) keycloak_port=$(free_port)
{
  echo "IMAGE_TAG=$TAG"
  echo "GATEWAY_PORT=$gateway_port"
  echo "KEYCLOAK_PORT=$keycloak_port"
  for v in REGISTRY_PORT AUTH_SERVER_PORT PROMETHEUS_PORT GRAFANA_PORT; do echo "$v=$(free_port)"; done
} >>"$RUN/.env"
compose down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || true # a run that was killed
# Debian's Compose v1 (1.29) reads the file too (it refused the top-level `name:` it once had).
[[ -x /usr/bin/docker-compose ]] || apt_install docker-compose
/usr/bin/docker-compose --env-file "$RUN/.env" -f docker-compose.yml config -q ||
  die "Compose v1 ($(/usr/bin/docker-compose version --short)) refuses docker-compose.yml"
t=$SECONDS
log "docker compose up --wait (Keycloak's first start takes a minute or two)"
compose up -d --wait --wait-timeout 600 --no-build gateway prometheus >&2 ||
  die "the stack did not come up healthy"
log "stack healthy: $((SECONDS - t)) s"
compose ps --format '{{.Service}}: {{.Status}}' >&2

# --- 5. MCP through the gateway --------------------------------------------------------------
log "setup-validate (mcpgw-setup --only=validate: M2M token, initialize + tools/list at /mcp)"
compose run --rm --no-deps setup-validate >&2 || die "setup-validate failed"
# The client secret setup wrote to the secrets volume (as docker-compose.yml's header shows).
secret=$(docker run --rm -v "${PROJECT}_mcpgw-secrets:/s:ro" node:22.23.3-bookworm-slim \
  cat /s/mcpgw/keycloak/clients/mcpgw-m2m) || die "no M2M client secret in the secrets volume"
python3 scripts/compose-smoke.py "http://127.0.0.1:$gateway_port" "http://127.0.0.1:$keycloak_port" "$secret"
log "compose stack test passed in $((SECONDS - start)) s"
