//! The meta-tools of progressive disclosure: their definitions, and `discover_tools`, run
//! in-process over the catalog (what the caller may use only).

use mcpgw_core::policy::Identity;
use serde_json::{Value, json};

use super::catalog::View;
use super::endpoint::invalid;
use crate::error::ProxyError;
use crate::state::Gateway;

/// Longest `discover_tools` query, in characters.
pub const MAX_QUERY_CHARS: usize = 1000;
/// Tools `discover_tools` returns when the caller does not say.
const DEFAULT_LIMIT: u64 = 5;

/// `discover_tools`: the best matches the caller may use, as a tool result whose text is
/// `{"tools": [definitions]}`.
pub fn discover(gw: &Gateway, identity: &Identity, arguments: &Value) -> Result<Value, ProxyError> {
    let max = gw.config.aggregate.max_results;
    let query = arguments
        .get("query")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("");
    let chars = query.chars().count();
    if chars == 0 || chars > MAX_QUERY_CHARS {
        return Err(invalid(format!(
            "discover_tools: `query` must be a text of 1 to {MAX_QUERY_CHARS} characters saying what the tool should do"
        )));
    }
    let limit = match arguments.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT.min(max as u64),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=max as u64).contains(&n) => n,
            _ => {
                return Err(invalid(format!(
                    "discover_tools: `limit` must be an integer from 1 to {max}"
                )));
            }
        },
    } as usize;
    let routes = gw.table.current();
    let view = View::new(&routes, identity);
    let tools = gw
        .aggregate
        .catalog
        .with(&routes, |catalog| catalog.search(&view, query, limit));
    let text = json!({"tools": tools}).to_string();
    Ok(json!({"content": [{"type": "text", "text": text}], "isError": false}))
}

/// The two tools of progressive disclosure. Kept short: they are what every session pays for.
pub fn meta_tools(max_results: usize) -> Vec<Value> {
    vec![
        json!({
            "name": "discover_tools",
            "description": "Find tools for a task among all tools available to you. Returns the best matches with their input schemas; run one with call_tool.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What you want to do"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": max_results, "description": "How many tools (default 5)"}
                },
                "required": ["query"]
            },
            "annotations": {"readOnlyHint": true}
        }),
        json!({
            "name": "call_tool",
            "description": "Run a tool found with discover_tools.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The tool's name (server__tool)"},
                    "arguments": {"type": "object", "description": "Arguments matching its input schema"}
                },
                "required": ["name"]
            }
        }),
    ]
}
