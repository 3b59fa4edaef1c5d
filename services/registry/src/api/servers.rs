//! `/api/v1/servers`: the catalog of MCP servers.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use mcpgw_core::domain::{
    DeploymentStage, Lifecycle, ServerPath, ServerRecord, ServerSpec, ServerView, Tool, ToolSpec,
};
use mcpgw_core::error::ErrorBody;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Ctx;
use super::extract::{ApiJson, ApiPath, Params, encode_cursor, etag, if_match};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::Result;
use crate::service::{Page, parse_path};
use crate::store::ServerFilter;

fn respond(
    state: &AppState,
    status: StatusCode,
    record: &ServerRecord,
) -> impl IntoResponse + use<> {
    (
        status,
        [etag(record.revision)],
        Json(record.view(state.config.stage)),
    )
}

/// A page of servers.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ServerList {
    pub items: Vec<ServerView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl ServerList {
    /// A page of the catalog as the API shows it (views for this registry's stage).
    pub fn new(page: &Page<Arc<ServerRecord>>, stage: DeploymentStage) -> Self {
        ServerList {
            items: page.items.iter().map(|r| r.view(stage)).collect(),
            next_cursor: page.next.as_deref().map(encode_cursor),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToggleRequest {
    pub enabled: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// The target state.
    pub to: Lifecycle,
    /// Why (kept in the lifecycle history and the audit log).
    pub reason: String,
}

/// Tools as a `tools/list` result gives them; fields this registry does not model (`icons`,
/// `_meta`, …) are accepted and dropped.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolsRequest {
    #[schema(value_type = Vec<ToolSpec>)]
    pub tools: Vec<serde_json::Value>,
}

/// What a reviewer approves: each tool by name with the content hash they reviewed.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveToolsRequest {
    /// Tool name → the `contentHash` reviewed (its current definition is approved only if the
    /// hash is still current), or `null` to approve that an approved tool was removed. Tools
    /// not named keep their approval state.
    pub tools: std::collections::BTreeMap<String, Option<String>>,
    /// Why (kept in the audit log).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/v1/servers/{path}/tools/reject`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectToolsRequest {
    /// Tool name → the `contentHash` reviewed (`null` for a removed tool), as for approval.
    pub tools: std::collections::BTreeMap<String, Option<String>>,
    /// Why (required: the server's owner reads it in the audit log).
    pub reason: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ToolList {
    pub path: ServerPath,
    pub revision: u64,
    pub tools: Vec<Tool>,
    /// Listed tools that were not recorded, with why (discovery only; absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<mcpgw_core::domain::LeftOut>,
}

impl From<ServerRecord> for ToolList {
    fn from(record: ServerRecord) -> Self {
        ToolList {
            path: record.path,
            revision: record.revision,
            tools: record.tools,
            left_out: Vec::new(),
        }
    }
}

impl From<(ServerRecord, Vec<mcpgw_core::domain::LeftOut>)> for ToolList {
    fn from((record, left_out): (ServerRecord, Vec<mcpgw_core::domain::LeftOut>)) -> Self {
        ToolList {
            left_out,
            ..ToolList::from(record)
        }
    }
}

/// The answer of the tool endpoints: the server's tools, its revision as the `ETag`.
pub(super) fn tool_list(recorded: impl Into<ToolList>) -> impl IntoResponse {
    let list: ToolList = recorded.into();
    ([etag(list.revision)], Json(list))
}

pub const LIST_PARAMS: &[&str] = &[
    "enabled",
    "lifecycle",
    "tag",
    "owner",
    "environment",
    "q",
    "limit",
    "cursor",
];

/// Register a server. It starts in `draft`, enabled.
#[utoipa::path(post, path = "/api/v1/servers", tag = "servers",
    request_body = ServerSpec,
    responses(
        (status = 201, description = "Registered", body = ServerView),
        (status = 409, description = "The path is taken", body = ErrorBody),
        (status = 422, description = "Invalid field, or a URL the egress policy refuses", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiJson(spec): ApiJson<ServerSpec>,
) -> Result<impl IntoResponse> {
    let record = state.registry.create_server(&caller, &ctx.0, spec).await?;
    Ok(respond(&state, StatusCode::CREATED, &record))
}

/// List servers, filtered, ordered by path, in pages.
#[utoipa::path(get, path = "/api/v1/servers", tag = "servers",
    params(
        ("enabled" = Option<bool>, Query, description = "Only enabled (true) or disabled (false) servers"),
        ("lifecycle" = Option<Lifecycle>, Query, description = "Only servers in this state"),
        ("tag" = Option<String>, Query, description = "Only servers with this tag"),
        ("owner" = Option<String>, Query, description = "Only servers of this owner team (exact)"),
        ("environment" = Option<String>, Query, description = "dev, staging or prod"),
        ("q" = Option<String>, Query, description = "Case-insensitive text in path, name, description or tags"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, body = ServerList), (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse> {
    let (filter, limit, cursor) = list_query(query.as_deref())?;
    let page = state
        .registry
        .list_servers(&caller, &filter, cursor.as_deref(), limit)
        .await?;
    Ok(Json(ServerList::new(&page, state.config.stage)))
}

/// The filter, page size and cursor of a list query (`GET /api/v1/servers`, and the MCP tool
/// `list_servers`, which takes the same parameters).
pub fn list_query(query: Option<&str>) -> Result<(ServerFilter, u32, Option<String>)> {
    let p = Params::parse(query, LIST_PARAMS)?;
    let filter = ServerFilter {
        enabled: p.bool("enabled")?,
        lifecycle: p.parsed("lifecycle", parse_lifecycle)?.map(|l| vec![l]),
        tag: p.text("tag").map(|t| t.to_ascii_lowercase()),
        owner_team: p.text("owner").map(str::to_owned),
        environment: p.parsed("environment", |v| {
            serde_json::from_value(serde_json::Value::String(v.to_owned()))
                .map_err(|_| format!("must be dev, staging or prod (got {v:?})"))
        })?,
        text: p.text("q").map(str::to_owned),
        updated_since: None,
        paths: None,
    };
    let limit = p.limit("limit", 200, 50)?;
    let cursor = p.cursor("cursor")?;
    Ok((filter, limit, cursor))
}

/// A `lifecycle` query parameter (of the server and agent lists): a state by name.
pub(super) fn parse_lifecycle(v: &str) -> std::result::Result<Lifecycle, String> {
    Lifecycle::parse(v).ok_or_else(|| {
        let all: Vec<&str> = Lifecycle::ALL.iter().map(|l| l.as_str()).collect();
        format!("must be one of {} (got {v:?})", all.join(", "))
    })
}

/// Read one server. The `ETag` header carries its revision.
#[utoipa::path(get, path = "/api/v1/servers/{path}", tag = "servers",
    params(("path" = String, Path, description = "The server's path")),
    responses((status = 200, body = ServerView), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(path): ApiPath<String>,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    let record = state.registry.get_server(&caller, &path).await?;
    Ok(respond(&state, StatusCode::OK, &record))
}

/// Replace a server's writable fields. Credentials omitted are kept when their kind is
/// unchanged. Send `If-Match: "<revision>"` to refuse the update if someone changed it since.
#[utoipa::path(put, path = "/api/v1/servers/{path}", tag = "servers",
    params(("path" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected revision")),
    request_body = ServerSpec,
    responses((status = 200, body = ServerView), (status = 404, body = ErrorBody),
        (status = 409, description = "Stale revision", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn replace(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiPath(path): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(spec): ApiJson<ServerSpec>,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    let expected = if_match(&headers)?;
    let record = state
        .registry
        .replace_server(&caller, &ctx.0, &path, spec, expected)
        .await?;
    Ok(respond(&state, StatusCode::OK, &record))
}

/// Change some fields (JSON merge patch, RFC 7396).
#[utoipa::path(patch, path = "/api/v1/servers/{path}", tag = "servers",
    params(("path" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected revision")),
    request_body(content = Object, content_type = "application/merge-patch+json",
        description = "Fields of ServerSpec to change; null removes an optional field"),
    responses((status = 200, body = ServerView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiPath(path): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    let expected = if_match(&headers)?;
    let record = state
        .registry
        .patch_server(&caller, &ctx.0, &path, patch, expected)
        .await?;
    Ok(respond(&state, StatusCode::OK, &record))
}

/// Delete a server (only in draft, submitted, security_review or retired).
#[utoipa::path(delete, path = "/api/v1/servers/{path}", tag = "servers",
    params(("path" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected revision")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody),
        (status = 409, description = "Stale revision, or the server is in use", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiPath(path): ApiPath<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    let expected = if_match(&headers)?;
    state
        .registry
        .delete_server(&caller, &ctx.0, &path, expected)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enable or disable a server (idempotent).
#[utoipa::path(post, path = "/api/v1/servers/{path}/toggle", tag = "servers",
    params(("path" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected revision")),
    request_body = ToggleRequest,
    responses((status = 200, body = ServerView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn toggle(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiPath(path): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ToggleRequest>,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    let expected = if_match(&headers)?;
    let record = state
        .registry
        .set_enabled(&caller, &ctx.0, &path, body.enabled, expected)
        .await?;
    Ok(respond(&state, StatusCode::OK, &record))
}

/// Move a server through its lifecycle. Each transition needs its own permission.
#[utoipa::path(post, path = "/api/v1/servers/{path}/lifecycle", tag = "servers",
    params(("path" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected revision")),
    request_body = TransitionRequest,
    responses((status = 200, body = ServerView), (status = 403, body = ErrorBody),
        (status = 409, description = "Not an allowed transition, or stale revision", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn transition(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiPath(path): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<TransitionRequest>,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    let expected = if_match(&headers)?;
    let record = state
        .registry
        .transition(&caller, &ctx.0, &path, body.to, &body.reason, expected)
        .await?;
    Ok(respond(&state, StatusCode::OK, &record))
}

/// A server's tools, with their content hashes.
#[utoipa::path(get, path = "/api/v1/servers/{path}/tools", tag = "servers",
    params(("path" = String, Path)),
    responses((status = 200, body = ToolList), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn tools(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(path): ApiPath<String>,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    let record = state.registry.get_server(&caller, &path).await?;
    Ok(tool_list(record))
}

/// Record a server's tools (as a `tools/list` result gives them); hashes are computed here.
#[utoipa::path(put, path = "/api/v1/servers/{path}/tools", tag = "servers",
    params(("path" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected revision")),
    request_body = ToolsRequest,
    responses((status = 200, body = ToolList), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn set_tools(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiPath(path): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ToolsRequest>,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    let expected = if_match(&headers)?;
    let tools = body
        .tools
        .iter()
        .enumerate()
        .map(|(i, t)| ToolSpec::from_mcp(t).map_err(|e| e.within(&format!("tools[{i}]"))))
        .collect::<Result<Vec<_>, _>>()?;
    let record = state
        .registry
        .set_tools(&caller, &ctx.0, &path, tools, expected)
        .await?;
    Ok(tool_list(record))
}

/// Approve tool definitions: the baseline gateways serve. Each named tool must still have the
/// hash the reviewer saw. Needs `tools:approve` (not `servers:update`: owners cannot approve
/// their own changes).
#[utoipa::path(post, path = "/api/v1/servers/{path}/tools/approve", tag = "servers",
    params(("path" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected revision")),
    request_body = ApproveToolsRequest,
    responses((status = 200, body = ServerView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "A hash is not the tool's current one, or stale revision", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn approve_tools(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiPath(path): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ApproveToolsRequest>,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    let expected = if_match(&headers)?;
    let record = state
        .registry
        .approve_tools(
            &caller,
            &ctx.0,
            &path,
            &body.tools,
            body.reason.as_deref(),
            expected,
        )
        .await?;
    Ok(respond(&state, StatusCode::OK, &record))
}

/// Reject tool changes: records the decision and its reason in the audit log (action
/// `server.tools_rejected`); nothing else changes, so gateways keep withholding the changed
/// definitions. Needs `tools:approve`.
#[utoipa::path(post, path = "/api/v1/servers/{path}/tools/reject", tag = "servers",
    params(("path" = String, Path)),
    request_body = RejectToolsRequest,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "A hash is not the tool's current one", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn reject_tools(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiPath(path): ApiPath<String>,
    ApiJson(body): ApiJson<RejectToolsRequest>,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    state
        .registry
        .reject_tools(&caller, &ctx.0, &path, &body.tools, &body.reason)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
