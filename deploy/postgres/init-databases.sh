#!/usr/bin/env bash
# Creates the two databases of the compose stack on PostgreSQL's first start (the postgres
# image runs /docker-entrypoint-initdb.d/* once, on an empty data directory):
#   keycloak    owned by role keycloak (Keycloak's own schema)
#   mcpgw_auth  owned by role mcpgw    (the auth-server; mcpgw-setup runs its migrations)
# Separate roles so neither service can read the other's data. Passwords come from the
# environment (docker-compose.yml passes them from .env); psql variables quote them.
set -euo pipefail
: "${KEYCLOAK_DB_PASSWORD:?KEYCLOAK_DB_PASSWORD is not set (see .env.example)}"
: "${AUTH_DB_PASSWORD:?AUTH_DB_PASSWORD is not set (see .env.example)}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v kc_password="$KEYCLOAK_DB_PASSWORD" -v auth_password="$AUTH_DB_PASSWORD" <<'SQL'
CREATE ROLE keycloak LOGIN PASSWORD :'kc_password';
CREATE DATABASE keycloak OWNER keycloak;
CREATE ROLE mcpgw LOGIN PASSWORD :'auth_password';
CREATE DATABASE mcpgw_auth OWNER mcpgw;
SQL
echo "init-databases: created databases keycloak and mcpgw_auth"
