//! `/api/v1/gateway`: what gateway processes use (permission `gateway:sync`): the routing
//! snapshot, long-polled, the audit events they report, and the health of their stdio
//! servers.

use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpgw_core::error::ErrorBody;
use mcpgw_core::gateway_sync::{McpAuditBatch, StdioHealthBatch};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{LargeBody, LargeJson, Params, parse_json_bytes, parse_json_value};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::Result;
use crate::gateway::{AUDIT_BODY_LIMIT, MAX_WAIT_SECONDS, Poll, check_batch_size};
use crate::health::gateway_reports::{self, HEALTH_BODY_LIMIT};

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuditAccepted {
    /// Events stored by this request.
    pub accepted: usize,
    /// Events whose id was already stored (a batch sent again); not stored twice.
    pub duplicates: usize,
}

/// The versions named by `If-None-Match` (`"v"`, `W/"v"` or a bare `v`; a list is allowed).
fn if_none_match(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| {
            let tag = tag.trim();
            tag.strip_prefix("W/")
                .unwrap_or(tag)
                .trim_matches('"')
                .to_owned()
        })
        .filter(|tag| !tag.is_empty())
        .collect()
}

fn tagged(status: StatusCode, version: &str) -> Response {
    let mut response = status.into_response();
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{version}\"")) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The routing snapshot: every routable server (credentials sealed) and the policy. With
/// `If-None-Match: "<version>"` and `wait`, answers when the version changes, or `304` when
/// `wait` seconds pass without a change.
#[utoipa::path(get, path = "/api/v1/gateway/snapshot", tag = "gateway",
    params(
        ("wait" = Option<u32>, Query, description = "Seconds to wait for a change when If-None-Match names the current version, 0–60 (default 0)"),
        ("If-None-Match" = Option<String>, Header, description = "The version (ETag) the gateway holds"),
    ),
    responses(
        (status = 200, description = "The snapshot (mcpgw_core::gateway_sync::GatewaySnapshot); ETag is its version",
            body = Object, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "Unchanged during the wait", headers(("ETag" = String))),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn snapshot(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    let p = Params::parse(query.as_deref(), &["wait"])?;
    let wait = p
        .parsed("wait", |v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n <= MAX_WAIT_SECONDS)
                .ok_or_else(|| {
                    format!(
                        "must be a whole number of seconds from 0 to {MAX_WAIT_SECONDS} (got {v:?})"
                    )
                })
        })?
        .unwrap_or(0);
    let known = if_none_match(&headers);
    let poll = state
        .registry
        .gateway_snapshot(&caller, &known, Duration::from_secs(wait))
        .await?;
    Ok(match poll {
        Poll::Changed(built) => {
            let mut response = tagged(StatusCode::OK, &built.snapshot.version);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            *response.body_mut() = axum::body::Body::from(built.json.clone());
            response
        }
        Poll::NotModified(version) => tagged(StatusCode::NOT_MODIFIED, &version),
    })
}

/// Store the MCP audit events a gateway decided on (at most 1000 per batch, body at most
/// 4 MiB). Each event id is stored once, so a batch sent again after a lost answer adds
/// nothing; the answer comes after the write is durable.
#[utoipa::path(post, path = "/api/v1/gateway/audit", tag = "gateway",
    request_body = McpAuditBatch,
    responses(
        (status = 200, body = AuditAccepted),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn audit(
    State(state): State<AppState>,
    Caller(caller): Caller,
    LargeBody(body): LargeBody<AUDIT_BODY_LIMIT>,
) -> Result<impl IntoResponse> {
    let batch = parse_audit_batch(&body)?;
    let (accepted, duplicates) = state
        .registry
        .record_gateway_audit(&caller, batch.events)
        .await?;
    Ok(Json(AuditAccepted {
        accepted,
        duplicates,
    }))
}

/// The batch, read from the body in one pass straight into its type (a JSON value per event
/// cost more CPU than the rest of the intake). A body this pass refuses is read again the
/// general way (a JSON value, its size, then its shape), so that every refusal is the one it
/// always was: 400 for bad syntax or a body that is not an object, 422 naming `events` for
/// more than 1000 of them (before any event's shape), else 422 naming the first field at fault.
fn parse_audit_batch(body: &[u8]) -> Result<McpAuditBatch> {
    // Only an object: a typed read would take an array's items as the fields, in order.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        let mut json = serde_json::Deserializer::from_slice(body);
        if let Ok(batch) = McpAuditBatch::deserialize(&mut json)
            && json.end().is_ok()
        {
            check_batch_size(batch.events.len())?;
            return Ok(batch);
        }
    }
    let value: serde_json::Value = parse_json_bytes(body)?;
    let events = value.get("events").and_then(serde_json::Value::as_array);
    check_batch_size(events.map_or(0, Vec::len))?;
    Ok(parse_json_value(value)?)
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct HealthAccepted {
    /// Reports applied to their server's health.
    pub applied: usize,
    /// Reports on servers the registry does not know (deleted since the gateway's snapshot).
    pub ignored: usize,
}

/// Report the health of stdio servers this gateway runs (at most 1000 reports, body at most
/// 1 MiB). Each report is one check, damped and kept in the server's history like the
/// registry's own checks (`trigger` = `gateway:<gateway>`). A report on a server that is not
/// stdio refuses the batch (422); one on an unknown server is ignored.
#[utoipa::path(post, path = "/api/v1/gateway/health", tag = "gateway",
    request_body = StdioHealthBatch,
    responses(
        (status = 200, body = HealthAccepted),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn health(
    State(state): State<AppState>,
    Caller(caller): Caller,
    LargeJson(body): LargeJson<HEALTH_BODY_LIMIT>,
) -> Result<impl IntoResponse> {
    // Permission first: a caller without it learns nothing about the body's validity.
    caller.require(mcpgw_core::auth::Permission::GatewaySync)?;
    gateway_reports::check_batch_size(&body)?;
    let batch: StdioHealthBatch = parse_json_value(body)?;
    let (applied, ignored) =
        gateway_reports::record(&state.registry, &state.health, &caller, &batch).await?;
    Ok(Json(HealthAccepted { applied, ignored }))
}
