//! mcpgw auth-server: browser login (a local identity provider with a bootstrap administrator;
//! OIDC providers), server-side sessions, short-lived access tokens for agents signed with the
//! auth-server's own keys and published as a JWKS, `/validate` for proxies, and OAuth protected
//! resource metadata for MCP clients. `README.md` beside `src/` describes the design.
//!
//! The binary in `main.rs` is thin: it parses the command line, loads config and calls
//! [`app::start`]. Tests call the same function on `127.0.0.1:0`.

pub mod api;
pub mod app;
pub mod config;
pub mod error;
pub mod keys;
pub mod local;
pub mod metrics;
pub mod oauth;
pub mod oidc;
pub mod refresh;
pub mod registration;
pub mod scope;
pub mod session;
pub mod store;
pub mod tokens;
