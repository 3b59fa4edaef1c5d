//! mcpgw-setup against real Keycloak, MongoDB, PostgreSQL and the Secrets Manager emulator
//! (all started by `scripts/test.sh`).

mod support;
