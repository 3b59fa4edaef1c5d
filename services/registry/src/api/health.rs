//! `/api/v1/servers/{path}/health` (the latest checks, and a check now) and
//! `/api/v1/servers/{path}/tools/refresh` (tool discovery now).

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use mcpgw_core::auth::Permission;
use mcpgw_core::domain::{Health, ServerPath};
use mcpgw_core::error::ErrorBody;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Ctx;
use super::extract::ApiPath;
use super::servers::{ToolList, tool_list};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::Result;
use crate::service::parse_path;

/// A server's health: the damped status, and the latest checks (newest first) in `history`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct HealthReport {
    pub path: ServerPath,
    pub health: Health,
}

/// A server's health with the latest checks.
#[utoipa::path(get, path = "/api/v1/servers/{path}/health", tag = "servers",
    params(("path" = String, Path)),
    responses((status = 200, body = HealthReport), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(path): ApiPath<String>,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    let record = state.registry.get_server(&caller, &path).await?;
    Ok(Json(HealthReport {
        path: record.path,
        health: record.health,
    }))
}

/// Check a server now; the result applies at once (no damping) and is answered. Needs
/// `servers:update` on the server: a check makes the registry call the server with its
/// credentials, which is as much as an owner can cause.
#[utoipa::path(post, path = "/api/v1/servers/{path}/health", tag = "servers",
    params(("path" = String, Path)),
    responses((status = 200, body = HealthReport), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn check(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(path): ApiPath<String>,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    caller.require_for(Permission::ServersUpdate, path.as_str())?;
    let record = state.registry.get_server(&caller, &path).await?;
    let health = state.health.check_now(&state.registry, &record).await?;
    Ok(Json(HealthReport {
        path: record.path,
        health,
    }))
}

/// List the server's tools now (`tools/list` with its upstream credentials) and record them
/// as `PUT .../tools` does (hashes, audit, integrity review). Answers with the tools.
#[utoipa::path(post, path = "/api/v1/servers/{path}/tools/refresh", tag = "servers",
    params(("path" = String, Path)),
    responses((status = 200, body = ToolList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 502, description = "The server did not answer tools/list", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn refresh_tools(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiPath(path): ApiPath<String>,
) -> Result<impl IntoResponse> {
    let path = parse_path(&path)?;
    let record =
        crate::discovery::refresh(&state.registry, &state.health, &caller, &ctx.0, &path).await?;
    Ok(tool_list(record))
}
