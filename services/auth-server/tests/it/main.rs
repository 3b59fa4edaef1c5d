//! Integration tests of the auth-server: the real service on real sockets, on real SQLite and
//! real PostgreSQL (`MCPGW_TEST_POSTGRES_URL`, started by `scripts/test.sh`; see `helpers`).
//!
//! Behaviour tests are written once and run on both backends through `both_backends!`.

mod helpers;

mod binary;
mod keycloak;
mod login;
mod oauth;
mod oidc;
mod ops;
mod refresh;
mod registration;
mod sessions;
mod store;
mod tokens;
mod validate;
