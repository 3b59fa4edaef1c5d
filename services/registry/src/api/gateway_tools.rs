//! `POST /api/v1/gateway/tools`: the tools of a stdio server as a gateway that runs it listed
//! them (the registry cannot reach a stdio server). Recorded through the same path as the
//! registry's own discovery of an HTTP server (`crate::discovery::record_reported`).

use axum::extract::State;
use axum::response::IntoResponse;
use mcpgw_core::error::ErrorBody;
use mcpgw_core::gateway_sync::StdioToolsReport;

use super::Ctx;
use super::extract::{LargeJson, parse_json_value};
use super::servers::{ToolList, tool_list};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::Result;

/// Largest report body accepted, in bytes (or `max_body_bytes`, if larger): real servers'
/// lists are far smaller (the largest definition measured, docs/MCP-GATEWAY.md, is 24 KB, and
/// no measured server lists more than a few dozen tools).
pub const TOOLS_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Report the tools a stdio server this gateway runs listed (`gateway:sync`). Recorded as the
/// registry's own discovery records an HTTP server's: hashed, audited (`source: gateway`),
/// compared with the approved tools; a list equal to the recorded one writes nothing.
/// Answers with the server's tools as recorded.
#[utoipa::path(post, path = "/api/v1/gateway/tools", tag = "gateway",
    request_body = StdioToolsReport,
    responses(
        (status = 200, body = ToolList),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn tools(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    LargeJson(body): LargeJson<TOOLS_BODY_LIMIT>,
) -> Result<impl IntoResponse> {
    // Permission first: a caller without it learns nothing about the body's validity.
    caller.require(mcpgw_core::auth::Permission::GatewaySync)?;
    let report: StdioToolsReport = parse_json_value(body)?;
    let record =
        crate::discovery::record_reported(&state.registry, &caller, &ctx.0, &report).await?;
    Ok(tool_list(record))
}
