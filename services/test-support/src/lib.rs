//! What the integration tests of more than one mcpgw service share. Test code only: the
//! services take this crate as a dev-dependency, and no production crate depends on it.
//!
//! - [`issuer`]: a loopback token issuer (OpenID discovery, a JWKS, tokens signed with keys
//!   the test controls), a stand-in for an IdP in tests of token handling;
//! - [`postgres`]: a PostgreSQL database per test, dropped when the test ends;
//! - [`peers`]: the real MCP peers of `scripts/deps/mcp-peers.sh` (server-everything);
//! - [`poll`]: asking again until what arrives in the background has arrived;
//! - [`keycloak`] (feature `keycloak`): a Keycloak realm per test, made by `mcpgw-setup-keycloak`.
//!
//! Tests of the real login and token flows use Keycloak and a second OIDC provider
//! (`scripts/deps/keycloak.sh`, `scripts/deps/oidc.sh`).

pub mod issuer;
#[cfg(feature = "keycloak")]
pub mod keycloak;
pub mod peers;
pub mod poll;
pub mod postgres;

pub use issuer::TestIssuer;
pub use peers::{peer_env, server_everything};
pub use poll::poll;
pub use postgres::PgTestDatabase;
