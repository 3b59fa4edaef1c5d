//! mcpgw-setup against real Keycloak, MongoDB, PostgreSQL and the Secrets Manager emulator
//! (all started by `scripts/test.sh`).

mod cli;
mod databases;
mod e2e;
mod gateway_key;
mod realm;
mod support;
