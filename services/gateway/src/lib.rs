//! mcpgw gateway: the MCP data plane.
//!
//! One endpoint per registered server (`/{server}/mcp`, both protocol eras, and the deprecated
//! HTTP+SSE pair), with token validation, policy, limits and audit in-process, and routes from
//! the registry applied without a restart. See `README.md` beside this crate for the design.

pub mod aggregate;
pub mod app;
pub mod audit;
pub mod caller;
pub mod config;
pub mod error;
pub mod jsonrpc;
pub mod limits;
pub mod metrics;
pub mod proxy;
pub mod routes;
pub mod session;
pub mod shared;
pub mod sse;
pub mod state;
pub mod stdio_health;
pub mod stdio_sandbox;
pub mod stdio_tools;
pub mod sync;
pub mod transform;
pub mod upstream_client;
