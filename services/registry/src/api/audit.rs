//! `/api/v1/audit`: the audit trail of every mutation and of every MCP request the gateways
//! report; a count of matching records, and an export as CSV or JSON Lines.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::IntoResponse;
use mcpgw_core::error::ErrorBody;
use mcpgw_core::input::InputError;
use mcpgw_core::validate::FieldError;
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

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuditCount {
    pub count: u64,
}

/// The query parameters every audit endpoint filters by.
const FILTERS: [&str; 8] = [
    "actor",
    "action",
    "resource_type",
    "resource_id",
    "tool",
    "decision",
    "since",
    "until",
];

/// Reads the filter parameters (see [`FILTERS`]).
fn filter_of(p: &Params) -> Result<AuditFilter> {
    let (action, action_prefix) = match p.text("action") {
        Some(a) => match a.strip_suffix('*') {
            Some(prefix) => (None, Some(prefix.to_owned())),
            None => (Some(a.to_owned()), None),
        },
        None => (None, None),
    };
    let decision = match p.text("decision") {
        None => None,
        Some(d @ ("allowed" | "denied")) => Some(d.to_owned()),
        Some(_) => {
            return Err(InputError::InvalidQuery(FieldError::new(
                "decision",
                "must be allowed or denied",
            ))
            .into());
        }
    };
    Ok(AuditFilter {
        actor: p.text("actor").map(str::to_owned),
        action,
        action_prefix,
        resource_type: p.text("resource_type").map(str::to_owned),
        resource_id: p.text("resource_id").map(str::to_owned),
        tool: p.text("tool").map(str::to_owned),
        decision,
        since: p.timestamp("since")?,
        until: p.timestamp("until")?,
    })
}

fn params(query: Option<&str>, extra: &[&'static str]) -> Result<Params> {
    let names: Vec<&str> = FILTERS.iter().chain(extra).copied().collect();
    Ok(Params::parse(query, &names)?)
}

/// Audit records, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(
        ("actor" = Option<String>, Query, description = "Principal subject, e.g. api_key:bootstrap"),
        ("action" = Option<String>, Query, description = "E.g. server.create, mcp.tool_call; a trailing * matches a prefix (mcp.*)"),
        ("resource_type" = Option<String>, Query),
        ("resource_id" = Option<String>, Query, description = "E.g. a server path"),
        ("tool" = Option<String>, Query, description = "Gateway-reported records of this tool"),
        ("decision" = Option<String>, Query, description = "Gateway-reported records: allowed or denied"),
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
    let p = params(query.as_deref(), &["limit", "cursor"])?;
    let filter = filter_of(&p)?;
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

/// How many audit records match the filters (the same as `GET /api/v1/audit`).
#[utoipa::path(get, path = "/api/v1/audit/count", tag = "audit",
    params(
        ("actor" = Option<String>, Query), ("action" = Option<String>, Query),
        ("resource_type" = Option<String>, Query), ("resource_id" = Option<String>, Query),
        ("tool" = Option<String>, Query), ("decision" = Option<String>, Query),
        ("since" = Option<String>, Query), ("until" = Option<String>, Query),
    ),
    responses((status = 200, body = AuditCount), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn count(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<AuditCount>> {
    let filter = filter_of(&params(query.as_deref(), &[])?)?;
    let count = state.registry.count_audit(&caller, &filter).await?;
    Ok(Json(AuditCount { count }))
}

/// Most records one export holds; the answer says when there were more
/// (`X-Export-Truncated: true`): narrow the time range and export again.
pub const MAX_EXPORT: usize = 50_000;

/// The matching records, newest first, as a file: `format=csv` (one row per record, `details`
/// as JSON in the last column) or `format=jsonl` (one JSON record per line).
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit",
    params(
        ("format" = String, Query, description = "csv or jsonl"),
        ("actor" = Option<String>, Query), ("action" = Option<String>, Query),
        ("resource_type" = Option<String>, Query), ("resource_id" = Option<String>, Query),
        ("tool" = Option<String>, Query), ("decision" = Option<String>, Query),
        ("since" = Option<String>, Query), ("until" = Option<String>, Query),
    ),
    responses((status = 200, description = "text/csv or application/jsonl, as an attachment"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn export(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse> {
    let p = params(query.as_deref(), &["format"])?;
    let csv = match p.text("format") {
        Some("csv") => true,
        Some("jsonl") => false,
        _ => {
            return Err(InputError::InvalidQuery(FieldError::new(
                "format",
                "must be csv or jsonl",
            ))
            .into());
        }
    };
    let filter = filter_of(&p)?;
    let mut out = String::new();
    if csv {
        out.push_str(CSV_HEADER);
    }
    let mut cursor: Option<String> = None;
    let mut written = 0;
    let mut truncated = false;
    loop {
        let page = state
            .registry
            .list_audit(&caller, &filter, cursor.as_deref(), 500)
            .await?;
        for record in &page.items {
            if written == MAX_EXPORT {
                truncated = true;
                break;
            }
            if csv {
                csv_row(&mut out, record);
            } else {
                out.push_str(&serde_json::to_string(record).unwrap_or_default());
                out.push('\n');
            }
            written += 1;
        }
        match page.next {
            Some(next) if !truncated => cursor = Some(next),
            _ => break,
        }
    }
    let (content_type, extension) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/jsonl; charset=utf-8", "jsonl")
    };
    let stamp = mcpgw_core::time::Timestamp::now()
        .to_canonical()
        .replace([':', '.'], "-");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"mcpgw-audit-{stamp}.{extension}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (
                header::HeaderName::from_static("x-export-truncated"),
                truncated.to_string(),
            ),
        ],
        out,
    ))
}

const CSV_HEADER: &str = "id,at,actor,actor_kind,action,resource_type,resource_id,request_id,revision_before,revision_after,details\r\n";

/// One RFC 4180 row.
fn csv_row(out: &mut String, r: &AuditRecord) {
    let kind = serde_json::to_value(r.actor_kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let cells = [
        r.id.clone(),
        r.at.to_canonical(),
        r.actor.clone(),
        kind,
        r.action.clone(),
        r.resource_type.clone(),
        r.resource_id.clone(),
        r.request_id.clone().unwrap_or_default(),
        r.revision_before.map(|v| v.to_string()).unwrap_or_default(),
        r.revision_after.map(|v| v.to_string()).unwrap_or_default(),
        r.details.to_string(),
    ];
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&csv_cell(cell));
    }
    out.push_str("\r\n");
}

/// Quotes a cell when needed, and defuses text a spreadsheet would run as a formula (a cell
/// starting with `=`, `+`, `-`, `@`, tab or carriage return gets a leading `'`): audit
/// records carry text callers chose (tool names, reasons).
fn csv_cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
    }
}
