//! The policy engine: who may call which server, method and tool, and what they may do in the
//! registry UI.
//!
//! The policy is a set of scope documents in the anchor system's format (see [`document`]), so
//! its users can import their files unchanged ([`import`]). The registry stores the documents and
//! serves them as a versioned [`PolicySnapshot`]; each gateway compiles the snapshot into a
//! [`CompiledPolicy`] and swaps it in behind an `Arc`.
//!
//! ```text
//!  JSON/YAML file ──parse_json/parse_yaml──▶ Vec<ScopeDocument> ──store──▶ registry
//!  registry ──PolicySnapshot{version, documents}──▶ gateway ──compile──▶ Arc<CompiledPolicy>
//!  request: Identity{groups, scopes} + server + method + tool ──decide──▶ Decision
//! ```
//!
//! Rules of the engine (the `README.md` beside this file has the reasoning):
//! - Deny by default: no identity, no known scope, no matching rule → deny.
//! - A token's groups map to scopes through `group_mappings`; a token's scopes name documents
//!   directly. Unknown names are ignored.
//! - `server` matches exactly after trimming slashes, or `*`. `methods` and `tools` take names or
//!   the wildcards `*` and `all`.
//! - `tools/call` is allowed when one rule both permits `tools/call` in `methods` (by name or
//!   wildcard) and lists the tool (or a wildcard) in `tools`. Other methods need only `methods`.
//! - A decision reports the rule that allowed it: the first scope in name order, the lowest rule
//!   index within it.

pub mod compiled;
pub mod document;
pub mod import;

pub use compiled::{
    Caller, CompiledPolicy, Decision, DecisionReason, Identity, MatchedRule, PolicySnapshot,
    PolicyStats, ToolFilter, UiGrant,
};
pub use document::{
    AccessEntry, PolicyNote, ScopeDocument, ServerRule, TOOLS_CALL, UI_ACTIONS, is_wildcard,
    limits, normalize_server,
};
pub use import::{
    Import, ImportShape, MAX_DOCUMENTS, MAX_IMPORT_BYTES, PolicyError, SourceFormat, from_value,
    parse_json, parse_yaml,
};

#[cfg(test)]
mod tests;
