//! The tools of the registry's MCP server: their definitions (schemas with limits, read-only
//! hints) and what each calls. A tool is a thin adapter: it parses its arguments with the
//! REST API's parsers and calls the REST handler's `Registry` method.

use std::sync::{Arc, OnceLock};

use mcpgw_core::auth::Principal;
use mcpgw_core::domain::{Lifecycle, ServerRecord, ServerSpec, limits};
use mcpgw_core::input::parse_json_value;
use mcpgw_core::validate::FieldError;
use rmcp::model::{Tool, ToolAnnotations};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::health::HealthReport;
use crate::api::servers::{ServerList, ToolList, list_query};
use crate::app::AppState;
use crate::error::Result;
use crate::search::SearchRequest;
use crate::service::{RequestContext, parse_path};

/// The longest server path a schema admits (paths are validated by `ServerPath::parse`).
const PATH_MAX: usize = 64;

fn path_property() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": PATH_MAX,
           "description": "The server's path, e.g. \"weather\" (served by gateways at /weather/mcp)"})
}

fn revision_property() -> Value {
    json!({"type": "integer", "minimum": 1,
           "description": "The revision you read (get_server); the change is refused if the server changed since. Omit to change whatever is current."})
}

fn object(properties: Value, required: &[&str]) -> Arc<serde_json::Map<String, Value>> {
    let schema = json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    });
    match schema {
        Value::Object(map) => Arc::new(map),
        _ => unreachable!("a JSON object"),
    }
}

fn tool(
    name: &'static str,
    description: &'static str,
    read_only: bool,
    schema: Arc<serde_json::Map<String, Value>>,
) -> Tool {
    let annotations = ToolAnnotations::new()
        .read_only(read_only)
        .destructive(false)
        .open_world(false);
    Tool::new(name, description, schema).with_annotations(annotations)
}

/// Every tool, in the order `tools/list` gives them.
pub fn definitions() -> &'static [Tool] {
    static TOOLS: OnceLock<Vec<Tool>> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let lifecycles: Vec<&str> = Lifecycle::ALL.iter().map(|l| l.as_str()).collect();
        vec![
            tool(
                "list_servers",
                "List the registered MCP servers you may read, ordered by path, in pages (the parameters of GET /api/v1/servers).",
                true,
                object(
                    json!({
                        "enabled": {"type": "boolean", "description": "Only enabled (true) or disabled (false) servers"},
                        "lifecycle": {"type": "string", "enum": lifecycles, "description": "Only servers in this state"},
                        "tag": {"type": "string", "maxLength": limits::TAG, "description": "Only servers with this tag"},
                        "owner": {"type": "string", "maxLength": limits::NAME, "description": "Only servers of this owner team (exact)"},
                        "environment": {"type": "string", "enum": ["dev", "staging", "prod"]},
                        "q": {"type": "string", "maxLength": 256, "description": "Case-insensitive text in path, name, description or tags"},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 200, "description": "Page size (default 50)"},
                        "cursor": {"type": "string", "maxLength": 512, "description": "next_cursor of the previous page"},
                    }),
                    &[],
                ),
            ),
            tool(
                "get_server",
                "Read one server: endpoint, governance, lifecycle, tools, health and its revision.",
                true,
                object(json!({"path": path_property()}), &["path"]),
            ),
            tool(
                "search",
                "Search servers and tools by what they do, best first (POST /api/v1/search). Only servers you may read appear, and of their tools only those you may call.",
                true,
                object(
                    json!({
                        "query": {"type": "string", "minLength": 1, "maxLength": 512, "description": "What you are looking for, in words"},
                        "kinds": {"type": "array", "maxItems": 3, "items": {"type": "string", "enum": ["server", "tool", "agent"]}, "description": "Only these kinds (default all)"},
                        "tags": {"type": "array", "maxItems": limits::TAGS, "items": {"type": "string", "maxLength": limits::TAG}, "description": "Only servers carrying every one of these tags"},
                        "lifecycle": {"type": "array", "maxItems": lifecycles.len(), "items": {"type": "string", "enum": lifecycles}, "description": "Only servers in these states (default all but retired)"},
                        "server": {"type": "string", "maxLength": PATH_MAX, "description": "Only this server and its tools"},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "Most results (default 10)"},
                    }),
                    &["query"],
                ),
            ),
            tool(
                "health",
                "A server's health: the damped status and the latest checks, newest first.",
                true,
                object(json!({"path": path_property()}), &["path"]),
            ),
            tool(
                "register_server",
                "Register an MCP server (the body of POST /api/v1/servers; see docs/API.md). It starts in draft, enabled. Needs servers:create.",
                false,
                object(
                    json!({
                        "path": {"type": "string", "minLength": 1, "maxLength": PATH_MAX, "description": "Lowercase letters, digits and '-'; gateways serve it at /<path>/mcp"},
                        "name": {"type": "string", "minLength": 1, "maxLength": limits::NAME},
                        "description": {"type": "string", "maxLength": limits::DESCRIPTION},
                        "tags": {"type": "array", "maxItems": limits::TAGS, "items": {"type": "string", "maxLength": limits::TAG}},
                        "endpoint": {"type": "object", "description": "{\"transport\": \"streamable-http\" | \"sse\", \"url\": …} or {\"transport\": \"stdio\", \"command\", \"args\", \"env\"}; URLs must pass the egress policy"},
                        "upstream_auth": {"type": "object", "description": "How gateways authenticate to the server: {\"kind\": \"none\" | \"bearer\" | \"api_key\" | \"oauth2_client_credentials\" | \"aws_sigv4\", …}; secrets are sealed and never returned"},
                        "custom_headers": {"type": "object", "maxProperties": limits::HEADERS, "additionalProperties": {"type": "string", "maxLength": limits::HEADER_VALUE}},
                        "governance": {"type": "object", "description": "owner_team (required), risk_level, data_classification, environment, required_scopes, …"},
                        "gateway": {"type": "object", "description": "read_only, log_arguments, rate and size limits, tool_integrity"},
                    }),
                    &["path", "name", "endpoint", "governance"],
                ),
            ),
            tool(
                "update_server",
                "Change some fields of a server (a JSON merge patch of the registration, as PATCH /api/v1/servers/{path}); null removes an optional field. Needs servers:update.",
                false,
                object(
                    json!({
                        "path": path_property(),
                        "patch": {"type": "object", "description": "Fields of the registration to change"},
                        "revision": revision_property(),
                    }),
                    &["path", "patch"],
                ),
            ),
            tool(
                "toggle_server",
                "Enable or disable a server (idempotent). Needs servers:toggle.",
                false,
                object(
                    json!({
                        "path": path_property(),
                        "enabled": {"type": "boolean"},
                        "revision": revision_property(),
                    }),
                    &["path", "enabled"],
                ),
            ),
            tool(
                "transition_lifecycle",
                "Move a server through its lifecycle (draft → submitted → security_review → approved_dev → approved_prod → deprecated → retired). Each step needs its own permission.",
                false,
                object(
                    json!({
                        "path": path_property(),
                        "to": {"type": "string", "enum": lifecycles, "description": "The target state"},
                        "reason": {"type": "string", "minLength": 1, "maxLength": limits::REASON, "description": "Why (kept in the lifecycle history and the audit log)"},
                        "revision": revision_property(),
                    }),
                    &["path", "to", "reason"],
                ),
            ),
            tool(
                "refresh_tools",
                "List the server's tools now (tools/list with its credentials) and record them; changed tools await approval. Needs servers:update.",
                false,
                object(json!({"path": path_property()}), &["path"]),
            ),
        ]
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathArgs {
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateArgs {
    path: String,
    patch: Value,
    #[serde(default)]
    revision: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToggleArgs {
    path: String,
    enabled: bool,
    #[serde(default)]
    revision: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionArgs {
    path: String,
    to: Lifecycle,
    reason: String,
    #[serde(default)]
    revision: Option<u64>,
}

fn view(state: &AppState, record: &ServerRecord) -> Value {
    serde_json::to_value(record.view(state.config.stage)).unwrap_or_default()
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// `list_servers` takes GET /api/v1/servers' parameters; they are parsed by the same code, as
/// the query string they would be.
fn list_arguments(args: &Value) -> Result<String> {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in args.as_object().into_iter().flatten() {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Bool(_) | Value::Number(_) => value.to_string(),
            Value::Null => continue,
            _ => {
                return Err(
                    FieldError::new(name.clone(), "must be a string, number or boolean").into(),
                );
            }
        };
        query.append_pair(name, &text);
    }
    Ok(query.finish())
}

/// Runs tool `name` for `caller`; the answer is the REST API's body for the same call.
pub async fn call(
    state: &AppState,
    caller: &Principal,
    ctx: &RequestContext,
    name: &str,
    args: Value,
) -> Result<Value> {
    let registry = &state.registry;
    match name {
        "list_servers" => {
            let query = list_arguments(&args)?;
            let (filter, limit, cursor) = list_query(Some(&query))?;
            let page = registry
                .list_servers(caller, &filter, cursor.as_deref(), limit)
                .await?;
            Ok(to_value(&ServerList::new(&page, state.config.stage)))
        }
        "get_server" => {
            let a: PathArgs = parse_json_value(args)?;
            let record = registry.get_server(caller, &parse_path(&a.path)?).await?;
            Ok(view(state, &record))
        }
        "search" => {
            let req: SearchRequest = parse_json_value(args)?;
            Ok(to_value(&registry.search(caller, &req).await?))
        }
        "health" => {
            let a: PathArgs = parse_json_value(args)?;
            let record = registry.get_server(caller, &parse_path(&a.path)?).await?;
            Ok(to_value(&HealthReport {
                path: record.path,
                health: record.health,
            }))
        }
        "register_server" => {
            let spec: ServerSpec = parse_json_value(args)?;
            let record = registry.create_server(caller, ctx, spec).await?;
            Ok(view(state, &record))
        }
        "update_server" => {
            let a: UpdateArgs = parse_json_value(args)?;
            let path = parse_path(&a.path)?;
            let record = registry
                .patch_server(caller, ctx, &path, a.patch, a.revision)
                .await?;
            Ok(view(state, &record))
        }
        "toggle_server" => {
            let a: ToggleArgs = parse_json_value(args)?;
            let path = parse_path(&a.path)?;
            let record = registry
                .set_enabled(caller, ctx, &path, a.enabled, a.revision)
                .await?;
            Ok(view(state, &record))
        }
        "transition_lifecycle" => {
            let a: TransitionArgs = parse_json_value(args)?;
            let path = parse_path(&a.path)?;
            let record = registry
                .transition(caller, ctx, &path, a.to, &a.reason, a.revision)
                .await?;
            Ok(view(state, &record))
        }
        "refresh_tools" => {
            let a: PathArgs = parse_json_value(args)?;
            let path = parse_path(&a.path)?;
            let record =
                crate::discovery::refresh(registry, &state.health, caller, ctx, &path).await?;
            Ok(to_value(&ToolList::from(record)))
        }
        other => Err(FieldError::new("name", format!("no tool is named {other:?}")).into()),
    }
}
