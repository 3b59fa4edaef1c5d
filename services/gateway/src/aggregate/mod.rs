//! The aggregated endpoint `/mcp`: one MCP server, answered by the gateway itself, in front of
//! every tool the caller may use on every routed server (the "proxy, aggregate" pattern).
//!
//! - Progressive disclosure (the default): `tools/list` holds two meta-tools,
//!   `discover_tools(query, limit)` (a BM25 search over the catalog, core's
//!   [`mcpgw_core::search`]) and `call_tool(name, arguments)`, plus the configured always-on
//!   tools, so a session starts with a few hundred tokens of tool definitions instead of every
//!   schema.
//! - Plain aggregation (`aggregate.mode = "all"` or `/mcp?mode=all`): `tools/list` holds every
//!   tool the caller may use, each named `{server}__{tool}`.
//!
//! Either way a tool is called by its exposed name, and the call runs through the typed
//! pipeline of the per-server endpoint ([`call`]). What a caller sees is decided per request ([`catalog::View`]); a
//! caller is told when that changes ([`notify`]).

pub mod call;
pub mod catalog;
pub mod endpoint;
pub mod meta;
pub mod notify;
pub mod sessions;

/// Session ids of `/mcp` are sealed for this server path, which no registered server can have
/// (`mcp` is a reserved path), so they open nowhere else and no other session opens here.
pub const SESSION_SERVER: &str = "mcp";

/// Between the server path and the tool name of an exposed name. Server paths are lowercase
/// letters, digits and single hyphens, so the first `__` always ends the server part.
pub const SEPARATOR: &str = "__";
/// Longest tool name `call_tool` accepts (a 64-character server path, `__`, a 128-character
/// tool name, with room to spare).
pub const MAX_NAME_CHARS: usize = 256;

/// What `tools/list` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The meta-tools and the always-on tools.
    Progressive,
    /// Every tool the caller may use, prefixed.
    All,
}

/// The aggregated endpoint's state in the gateway.
#[derive(Default)]
pub struct Aggregator {
    pub catalog: catalog::SharedCatalog,
    pub sessions: sessions::UpstreamSessions,
}
