//! `/api/v1/agents`: the catalog of A2A agents (rules and permissions in `crate::agents`).

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use mcpgw_core::domain::{AgentRecord, AgentSpec, AgentView, Lifecycle};
use mcpgw_core::error::ErrorBody;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Ctx;
use super::extract::{ApiJson, ApiPath, Params, encode_cursor, etag, if_match};
use super::servers::{ToggleRequest, TransitionRequest, parse_lifecycle};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::Result;
use crate::service::parse_path;
use crate::store::AgentFilter;

fn respond(status: StatusCode, record: &AgentRecord) -> impl IntoResponse + use<> {
    (status, [etag(record.revision)], Json(record.view()))
}

/// A page of agents.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AgentList {
    pub items: Vec<AgentView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What a reviewer approves: the card by the content hash they reviewed.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveCardRequest {
    /// The `card_hash` reviewed; refused unless it is still the current one.
    pub card_hash: String,
}

const LIST_PARAMS: &[&str] = &[
    "enabled",
    "lifecycle",
    "tag",
    "owner",
    "q",
    "limit",
    "cursor",
];

fn list_query(query: Option<&str>) -> Result<(AgentFilter, u32, Option<String>)> {
    let p = Params::parse(query, LIST_PARAMS)?;
    let filter = AgentFilter {
        enabled: p.bool("enabled")?,
        lifecycle: p.parsed("lifecycle", parse_lifecycle)?,
        tag: p.text("tag").map(|t| t.to_ascii_lowercase()),
        owner_team: p.text("owner").map(str::to_owned),
        text: p.text("q").map(str::to_owned),
    };
    Ok((filter, p.limit("limit", 200, 50)?, p.cursor("cursor")?))
}

/// Register an agent: with its card, or with `card_url` alone (the registry fetches the card
/// through the egress policy, 1 MiB at most, and validates it). It starts in `draft`, enabled.
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents",
    request_body = AgentSpec,
    responses(
        (status = 201, description = "Registered", body = AgentView),
        (status = 409, description = "The path is taken", body = ErrorBody),
        (status = 422, description = "Invalid field, a URL the egress policy refuses, or a card that could not be fetched", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiJson(spec): ApiJson<AgentSpec>,
) -> Result<impl IntoResponse> {
    let record = state.registry.create_agent(&caller, &ctx.0, spec).await?;
    Ok(respond(StatusCode::CREATED, &record))
}

/// List agents, filtered, ordered by path, in pages.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents",
    params(
        ("enabled" = Option<bool>, Query, description = "Only enabled (true) or disabled (false) agents"),
        ("lifecycle" = Option<Lifecycle>, Query, description = "Only agents in this state"),
        ("tag" = Option<String>, Query, description = "Only agents with this tag"),
        ("owner" = Option<String>, Query, description = "Only agents of this owner team (exact)"),
        ("q" = Option<String>, Query, description = "Case-insensitive text in path, name, description, tags or skill names"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, body = AgentList), (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse> {
    let (filter, limit, cursor) = list_query(query.as_deref())?;
    let page = state
        .registry
        .list_agents(&caller, &filter, cursor.as_deref(), limit)
        .await?;
    Ok(Json(AgentList {
        items: page.items.iter().map(AgentRecord::view).collect(),
        next_cursor: page.next.as_deref().map(encode_cursor),
    }))
}

/// Read one agent. The `ETag` header carries its revision.
#[utoipa::path(get, path = "/api/v1/agents/{path}", tag = "agents",
    params(("path" = String, Path, description = "The agent's path")),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(path): ApiPath<String>,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    let record = state.registry.get_agent(&caller, &path).await?;
    Ok(respond(StatusCode::OK, &record))
}

/// Replace an agent's writable fields (card, card_url, tags, governance).
#[utoipa::path(put, path = "/api/v1/agents/{path}", tag = "agents",
    params(("path" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected revision")),
    request_body = AgentSpec,
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody),
        (status = 409, description = "Stale revision", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn replace(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiPath(path): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(spec): ApiJson<AgentSpec>,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    let expected = if_match(&headers)?;
    let record = state
        .registry
        .replace_agent(&caller, &ctx.0, &path, spec, expected)
        .await?;
    Ok(respond(StatusCode::OK, &record))
}

/// Change some fields (JSON merge patch, RFC 7396).
#[utoipa::path(patch, path = "/api/v1/agents/{path}", tag = "agents",
    params(("path" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected revision")),
    request_body(content = Object, content_type = "application/merge-patch+json",
        description = "Fields of AgentSpec to change; null removes an optional field"),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody),
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
        .patch_agent(&caller, &ctx.0, &path, patch, expected)
        .await?;
    Ok(respond(StatusCode::OK, &record))
}

/// Delete an agent (only in draft, submitted, security_review or retired).
#[utoipa::path(delete, path = "/api/v1/agents/{path}", tag = "agents",
    params(("path" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected revision")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody),
        (status = 409, description = "Stale revision, or the agent is in use", body = ErrorBody)),
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
        .delete_agent(&caller, &ctx.0, &path, expected)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enable or disable an agent (idempotent).
#[utoipa::path(post, path = "/api/v1/agents/{path}/toggle", tag = "agents",
    params(("path" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected revision")),
    request_body = ToggleRequest,
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
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
        .set_agent_enabled(&caller, &ctx.0, &path, body.enabled, expected)
        .await?;
    Ok(respond(StatusCode::OK, &record))
}

/// Move an agent through its lifecycle (the servers' states, transitions and permissions).
#[utoipa::path(post, path = "/api/v1/agents/{path}/lifecycle", tag = "agents",
    params(("path" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected revision")),
    request_body = TransitionRequest,
    responses((status = 200, body = AgentView), (status = 403, body = ErrorBody),
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
        .transition_agent(&caller, &ctx.0, &path, body.to, &body.reason, expected)
        .await?;
    Ok(respond(StatusCode::OK, &record))
}

/// Approve the current card after a change (needs `tools:approve`).
#[utoipa::path(post, path = "/api/v1/agents/{path}/card/approve", tag = "agents",
    params(("path" = String, Path), ("If-Match" = Option<String>, Header, description = "Expected revision")),
    request_body = ApproveCardRequest,
    responses((status = 200, body = AgentView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The hash is not the card's current one, or stale revision", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn approve_card(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiPath(path): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ApproveCardRequest>,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    let expected = if_match(&headers)?;
    let record = state
        .registry
        .approve_agent_card(&caller, &ctx.0, &path, &body.card_hash, expected)
        .await?;
    Ok(respond(StatusCode::OK, &record))
}

/// Fetch the agent's card URL now (egress policy, 5 s, 1 MiB) and store the result as its
/// health; a served card that differs from the approved one shows `changed_needs_review`.
/// Needs `servers:update`.
#[utoipa::path(post, path = "/api/v1/agents/{path}/health", tag = "agents",
    params(("path" = String, Path)),
    responses((status = 200, body = AgentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn check_health(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(path): ApiPath<String>,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    let record = state.registry.check_agent_health(&caller, &path).await?;
    Ok(respond(StatusCode::OK, &record))
}
