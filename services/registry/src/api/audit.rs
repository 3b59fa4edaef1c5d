//! `/api/v1/audit`: the audit trail of every mutation.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::IntoResponse;
use mcpgw_core::error::ErrorBody;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Params, encode_cursor};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::Result;
use crate::store::{AuditFilter, AuditRecord};

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Audit records, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(
        ("actor" = Option<String>, Query, description = "Principal subject, e.g. api_key:bootstrap"),
        ("action" = Option<String>, Query, description = "E.g. server.create, mcp.tool_call; a trailing * matches a prefix (mcp.*)"),
        ("resource_type" = Option<String>, Query),
        ("resource_id" = Option<String>, Query, description = "E.g. a server path"),
        ("since" = Option<String>, Query, description = "RFC 3339, inclusive"),
        ("until" = Option<String>, Query, description = "RFC 3339, exclusive"),
        ("limit" = Option<u32>, Query, description = "1–500 (default 100)"),
        ("cursor" = Option<String>, Query),
    ),
    responses((status = 200, body = AuditList), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse> {
    let p = Params::parse(
        query.as_deref(),
        &[
            "actor",
            "action",
            "resource_type",
            "resource_id",
            "since",
            "until",
            "limit",
            "cursor",
        ],
    )?;
    let (action, action_prefix) = match p.text("action") {
        Some(a) => match a.strip_suffix('*') {
            Some(prefix) => (None, Some(prefix.to_owned())),
            None => (Some(a.to_owned()), None),
        },
        None => (None, None),
    };
    let filter = AuditFilter {
        actor: p.text("actor").map(str::to_owned),
        action,
        action_prefix,
        resource_type: p.text("resource_type").map(str::to_owned),
        resource_id: p.text("resource_id").map(str::to_owned),
        since: p.timestamp("since")?,
        until: p.timestamp("until")?,
    };
    let limit = p.limit("limit", 500, 100)?;
    let cursor = p.cursor("cursor")?;
    let page = state
        .registry
        .list_audit(&caller, &filter, cursor.as_deref(), limit)
        .await?;
    Ok(Json(AuditList {
        items: page.items,
        next_cursor: page.next.as_deref().map(encode_cursor),
    }))
}
