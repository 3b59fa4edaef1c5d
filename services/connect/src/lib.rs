//! `mcpgw-connect`: the client side of an mcpgw gateway, for MCP clients that speak only stdio
//! or cannot sign in with OAuth themselves.
//!
//! - [`discovery`]: from a gateway URL to its authorization server, exactly as an MCP client
//!   finds it (the 401's `resource_metadata`, RFC 9728, then RFC 8414 metadata);
//! - [`oauth`]: dynamic client registration, the code flow with PKCE S256 and `resource` on a
//!   loopback redirect, and refresh;
//! - [`store`]: the tokens, one file per gateway URL, readable only by the user;
//! - [`credentials`]: a fresh token for each request (refresh before expiry, sign in again when
//!   refresh fails);
//! - [`bridge`]: stdio ↔ the gateway's Streamable HTTP, with [`readonly`] (the `--allow-write`
//!   filter) and [`sigv4`] (request signing for MCP servers hosted on AWS);
//! - [`answer`] and [`sse`]: the messages of one HTTP answer, JSON or an event stream;
//! - [`snippets`]: the configuration of each MCP client that runs this binary.
//!
//! Rules: stdout carries only JSON-RPC messages (a stdio client reads it); everything for the
//! person goes to stderr; no token, code or verifier is ever printed or logged.

pub mod answer;
pub mod bridge;
pub mod credentials;
pub mod discovery;
pub mod error;
pub mod oauth;
pub mod readonly;
pub mod sigv4;
pub mod snippets;
pub mod sse;
pub mod store;

pub use error::ConnectError;

/// The HTTP client of every request: no redirects (an authorization server or gateway that
/// redirects a token request is misconfigured, and a bearer token must not follow a redirect).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("mcpgw-connect/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds")
}
