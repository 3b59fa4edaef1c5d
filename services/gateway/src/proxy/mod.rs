//! The MCP endpoints: one POST/GET/DELETE endpoint per server (Streamable HTTP, both protocol
//! eras) and the deprecated HTTP+SSE pair.
//!
//! A POST goes through, in order: route lookup, token, body limits and JSON-RPC shape, protocol
//! era and header checks, session, policy (method, then tool and write protection), rate
//! limits, then the upstream. The answer streams back as it arrives; the final response of a
//! list or a tool call is the one message the gateway reads whole, to filter or cut it.
//!
//! This file holds the POST pipeline (entry, JSON-RPC, era, session, one message, forwarding);
//! each other concern has its own file: `policy` (decide, rate limits), `upstream_http` and
//! `upstream_shared` (the upstream kinds), `reply` (the answer stream and the final
//! response), `exit` (the outcome's metric and audit event, `fail`), `streams` (GET and
//! DELETE), `legacy_sse` (the 2024-11-05 transport). They are one module split by concern, so
//! each starts with `use super::*` and shares the imports and private items here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use mcpgw_core::domain::integrity::Gate;
use mcpgw_core::gateway_sync::{AuditDecision, McpAuditEvent};
use mcpgw_core::policy::DecisionReason;
use mcpgw_core::telemetry::RequestId;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::BroadcastStream;

use crate::caller::{self, Caller};
use crate::error::{ProxyError, UpstreamFault};
use crate::jsonrpc::{self, Era, Incoming, Kind, Message, codes};
use crate::routes::{Route, Routes, Upstream};
use crate::session::SessionState;
use crate::shared::{PendingReply, SharedUpstream};
use crate::sse;
use crate::state::Gateway;
use crate::transform;

mod exit;
mod legacy_sse;
mod policy;
mod reply;
mod streams;
mod upstream_http;
mod upstream_shared;

use self::exit::*;
pub use self::legacy_sse::{MessageQuery, sse_connect, sse_message};
use self::policy::*;
pub use self::reply::collect_messages;
pub(crate) use self::reply::relay;
use self::reply::*;
pub use self::streams::{delete, get};
use self::upstream_http::*;
use self::upstream_shared::*;

pub type AppState = Arc<Gateway>;

const SESSION_HEADER: &str = "mcp-session-id";
/// Everything known about one MCP request while it is handled.
pub struct Call {
    pub gw: AppState,
    pub routes: Arc<Routes>,
    pub route: Arc<Route>,
    pub caller: Caller,
    pub request_id: String,
    pub started: Instant,
}

impl Call {
    fn server(&self) -> &str {
        self.route.path()
    }

    fn metadata_url(&self) -> String {
        caller::resource_metadata_url(&self.gw.public_base, Some(self.server()))
    }
}

pub(crate) use crate::error::json_response;

pub(crate) fn rpc_error(
    status: StatusCode,
    id: Option<&Value>,
    code: i64,
    message: &str,
) -> Response {
    json_response(
        status,
        &jsonrpc::error_response(id.cloned().unwrap_or(Value::Null), code, message),
    )
}

/// The answer for a tool the caller may not use: the same as for a tool that does not exist.
fn unknown_tool(id: &Value, tool: &str) -> Value {
    jsonrpc::error_response(
        id.clone(),
        codes::INVALID_PARAMS,
        &format!("Unknown tool: {tool}"),
    )
}

// ---------------------------------------------------------------------------------------------
// Entry: authentication and route

async fn begin(
    gw: &AppState,
    server: &str,
    headers: &HeaderMap,
) -> Result<(Arc<Routes>, Arc<Route>, Caller), Response> {
    let routes = gw.table.current();
    let Some(route) = routes.get(server).cloned() else {
        return Err(ProxyError::ServerNotFound(server.to_owned()).into_response(None));
    };
    let caller = gw.auth.authenticate(headers).await.map_err(|failure| {
        gw.metrics
            .requests
            .with_label_values(&[server, "unauthenticated", "denied", "401"])
            .inc();
        caller::unauthorized(
            &failure,
            &caller::resource_metadata_url(&gw.public_base, Some(server)),
        )
    })?;
    Ok((routes, route, caller))
}

/// Reads a body of at most `max` bytes; larger bodies get a JSON-RPC 413 (read only after
/// the caller is authenticated, so strangers cannot make the gateway read megabytes).
pub(crate) async fn read_body(body: Body, max: usize) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, max)
        .await
        .map_err(|_| ProxyError::BodyTooLarge { max }.into_response(None))
}

/// `POST /{server}/mcp`
pub async fn post(
    State(gw): State<AppState>,
    Path(server): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    request: axum::extract::Request,
) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (routes, route, caller) = match begin(&gw, &server, &parts.headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = match read_body(body, gw.config.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let call = Arc::new(Call {
        gw,
        routes,
        route,
        caller,
        request_id,
        started,
    });
    handle_post(call, parts.headers, body).await
}

/// Handles a POST body for an authenticated caller (also used by the legacy SSE transport).
pub async fn handle_post(call: Arc<Call>, headers: HeaderMap, body: Bytes) -> Response {
    let max = call.gw.config.max_body_bytes;
    if body.len() > max {
        return ProxyError::BodyTooLarge { max }.into_response(None);
    }
    let incoming = match Incoming::parse(&body) {
        Ok(i) => i,
        Err(e) => return ProxyError::Malformed(e).into_response(None),
    };
    let era = match jsonrpc::era_of(&headers, &incoming) {
        Ok(era) => era,
        Err(problem) => {
            let id = match &incoming {
                Incoming::Single(m) => m.id().cloned(),
                Incoming::Batch(_) => None,
            };
            return ProxyError::Headers(problem).into_response(id.as_ref());
        }
    };
    if let Some(why) = &call.route.broken {
        tracing::error!(server = %call.server(), error = %why, "request to an unusable route");
        return ProxyError::RouteUnusable(why.to_string()).into_response(None);
    }
    // The session (session era only; stateless requests ignore the header, as the spec says).
    let session = match (&era, headers.get(SESSION_HEADER)) {
        (Era::Legacy { .. }, Some(value)) => {
            let id = value.to_str().unwrap_or("");
            match call
                .gw
                .sessions
                .open(id, call.server(), &call.caller.digest)
            {
                Ok(s) => Some(s),
                Err(e) => return ProxyError::SessionNotFound(e).into_response(None),
            }
        }
        _ => None,
    };
    match incoming {
        Incoming::Single(message) => {
            handle_message(&call, &headers, &era, session.as_ref(), message, Some(body)).await
        }
        Incoming::Batch(messages) => {
            handle_batch(&call, &headers, &era, session.as_ref(), messages).await
        }
    }
}

/// The session a GET or DELETE names: it must be there, and open for this server and caller.
pub(crate) fn required_session(
    gw: &Gateway,
    headers: &HeaderMap,
    server: &str,
    caller: &Caller,
    what: &'static str,
) -> Result<SessionState, ProxyError> {
    let Some(sid) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(ProxyError::SessionRequired(what));
    };
    gw.sessions
        .open(sid, server, &caller.digest)
        .map_err(ProxyError::SessionNotFound)
}

/// A JSON-RPC batch: each element is decided on its own; the answers are collected into one
/// array (batches are a 2025-03-26 feature; later clients do not send them).
async fn handle_batch(
    call: &Arc<Call>,
    headers: &HeaderMap,
    era: &Era,
    session: Option<&SessionState>,
    messages: Vec<Message>,
) -> Response {
    let mut answers = Vec::new();
    for message in messages {
        let is_request = matches!(message.kind, Kind::Request { .. });
        let response = handle_message(call, headers, era, session, message, None).await;
        if !is_request {
            continue;
        }
        answers.extend(collect_messages(response, call.gw.config.upstream.max_message_bytes).await);
    }
    if answers.is_empty() {
        return StatusCode::ACCEPTED.into_response();
    }
    json_response(StatusCode::OK, &Value::Array(answers))
}

async fn handle_message(
    call: &Arc<Call>,
    headers: &HeaderMap,
    era: &Era,
    session: Option<&SessionState>,
    message: Message,
    raw: Option<Bytes>,
) -> Response {
    match message.kind.clone() {
        Kind::Response { .. } => forward_one_way(call, headers, era, session, message, raw).await,
        Kind::Notification { method } => {
            if let Verdict::Forbidden { .. } = decide(call, &method, None) {
                return StatusCode::FORBIDDEN.into_response();
            }
            forward_one_way(call, headers, era, session, message, raw).await
        }
        Kind::Request { id, method } => {
            let tool = message.target_name().map(str::to_owned);
            let tool = if method == "tools/call" { tool } else { None };
            match decide(call, &method, tool.as_deref()) {
                Verdict::Forbidden { reason } => {
                    finish(
                        call,
                        &Outcome::denied(&method, tool.as_deref(), reason),
                        "denied",
                    );
                    let policy = call.routes.policy.caller(&call.caller.identity);
                    let scopes = policy.scopes_granting(
                        call.server(),
                        &method,
                        tool.as_deref(),
                        caller::MAX_CHALLENGE_SCOPES,
                    );
                    caller::insufficient_scope(
                        &scopes,
                        &call.metadata_url(),
                        &if method == "tools/call" && tool.is_none() {
                            "tools/call needs the tool's name in params.name".to_owned()
                        } else if scopes.is_empty() {
                            format!(
                                "your token does not allow {method} here and no scope would; ask the server's owner for access"
                            )
                        } else {
                            format!(
                                "your token does not allow {method} on this server; a token with one of the scopes named in WWW-Authenticate would"
                            )
                        },
                        Some(&id),
                    )
                }
                Verdict::Hidden { reason } => {
                    let tool = tool.unwrap_or_default();
                    finish(
                        call,
                        &Outcome::denied(&method, Some(&tool), reason),
                        "denied",
                    );
                    json_response(StatusCode::OK, &unknown_tool(&id, &tool))
                }
                Verdict::Allow { matched } => {
                    let mut outcome = Outcome::allowed(&method, tool.as_deref(), matched);
                    outcome.modern = matches!(era, Era::Modern { .. });
                    if let Some(tool) = &tool {
                        if let Err(r) = check_rates(call, tool) {
                            let mut denied = Outcome::denied(&method, Some(tool), "rate_limited");
                            denied.matched = outcome.matched.clone();
                            return fail(
                                call,
                                &denied,
                                Some(&id),
                                ProxyError::RateLimited(r.seconds()),
                            );
                        }
                        if call.route.entry.gateway.log_arguments {
                            outcome.arguments =
                                message.params().and_then(|p| p.get("arguments")).cloned();
                        }
                    }
                    forward_request(call, headers, era, session, message, raw, id, outcome).await
                }
            }
        }
    }
}

/// Notifications and responses from the client: to an HTTP upstream they go as they are; a
/// shared upstream gets cancellations and ignores the rest (it has no request to answer).
async fn forward_one_way(
    call: &Arc<Call>,
    headers: &HeaderMap,
    era: &Era,
    session: Option<&SessionState>,
    message: Message,
    raw: Option<Bytes>,
) -> Response {
    finish(
        call,
        &Outcome::allowed(
            if matches!(message.kind, Kind::Response { .. }) {
                "response"
            } else {
                "notifications"
            },
            None,
            None,
        ),
        "ok",
    );
    match &call.route.upstream {
        Upstream::Http { .. } => {
            let body = raw.unwrap_or_else(|| {
                Bytes::from(serde_json::to_vec(&message.into_value()).unwrap_or_default())
            });
            match send_http(call, Method::POST, headers, era, session, Some(body)).await {
                Ok(r) => StatusCode::from_u16(r.status().as_u16())
                    .unwrap_or(StatusCode::ACCEPTED)
                    .into_response(),
                Err(e) => e.into_response(None),
            }
        }
        Upstream::Shared(shared) => {
            // Cancellations are the one client notification a shared session passes on (mapped
            // to the gateway's id); the session is the gateway's, so the rest stay here.
            if message.method() == Some("notifications/cancelled")
                && let Some(params) = message.params()
                && let Some(request_id) = params.get("requestId")
            {
                shared
                    .cancel(&call.caller.digest, request_id, params.get("reason"))
                    .await;
            }
            StatusCode::ACCEPTED.into_response()
        }
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one request that the steps before have already taken apart"
)]
async fn forward_request(
    call: &Arc<Call>,
    headers: &HeaderMap,
    era: &Era,
    session: Option<&SessionState>,
    message: Message,
    raw: Option<Bytes>,
    id: Value,
    outcome: Outcome,
) -> Response {
    // A listening stream lives as long as the client wants: it counts against the caller's
    // streams, not against the server's requests in flight.
    let listening = outcome.method == "subscriptions/listen";
    let permit: Box<dyn std::any::Any + Send> = if listening {
        match call.gw.streams.acquire(
            call.caller.limit_key(),
            call.gw.config.limits.streams_per_caller,
            &call.gw.metrics.open_streams,
        ) {
            Some(p) => Box::new(p),
            None => return fail(call, &outcome, Some(&id), ProxyError::TooManyStreams),
        }
    } else {
        match tokio::time::timeout(
            Duration::from_secs(5),
            Arc::clone(&call.route.in_flight).acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => Box::new(p),
            _ => return fail(call, &outcome, Some(&id), ProxyError::Busy),
        }
    };
    let method = outcome.method.clone();
    let (stream, extra_headers, abandon): (
        BoxStream<'static, Result<sse::Event, String>>,
        HeaderMap,
        Option<Abandon>,
    ) = match &call.route.upstream {
        Upstream::Http { .. } => {
            let body = raw.unwrap_or_else(|| {
                Bytes::from(serde_json::to_vec(&message.clone().into_value()).unwrap_or_default())
            });
            let response =
                match send_http(call, Method::POST, headers, era, session, Some(body)).await {
                    Ok(r) => r,
                    Err(e) => return fail(call, &outcome, Some(&id), e),
                };
            let status = response.status();
            let mut extra = HeaderMap::new();
            if method == "initialize" && status.is_success() {
                match new_session(call, &message, response.headers()) {
                    Ok(Some(sid)) => {
                        extra.insert(SESSION_HEADER, sid);
                    }
                    Ok(None) => {}
                    Err(e) => return fail(call, &outcome, None, e),
                }
            }
            if !status.is_success() {
                return match upstream_status(call, response).await {
                    Ok(passed_on) => {
                        finish(call, &outcome, "upstream_error");
                        passed_on
                    }
                    Err(e) => fail(call, &outcome, Some(&id), e),
                };
            }
            let abandon = match (era, session) {
                (Era::Legacy { .. }, Some(s)) => Some(Abandon {
                    call: Arc::clone(call),
                    session: s.clone(),
                    id: id.clone(),
                }),
                _ => None,
            };
            let events = if listening {
                http_events_no_idle(call, response)
            } else {
                http_events(call, response)
            };
            (events, extra, abandon)
        }
        Upstream::Shared(shared) => match shared_request(call, era, shared, message, &id).await {
            SharedAnswer::Direct(value, extra) => {
                finish(call, &outcome, "ok");
                let mut r = json_response(StatusCode::OK, &value);
                r.headers_mut().extend(extra);
                return r;
            }
            SharedAnswer::Failed(e) => return fail(call, &outcome, Some(&id), e),
            SharedAnswer::Pending(pending) => (pending_events(pending), HeaderMap::new(), None),
            SharedAnswer::Listen(params) => {
                finish(call, &outcome, "ok");
                return listen(shared, id, params, permit);
            }
        },
    };
    respond(
        Arc::clone(call),
        id,
        outcome,
        stream,
        extra_headers,
        abandon,
        permit,
    )
    .await
}

/// Sends `notifications/cancelled` upstream when a session-era client leaves before its
/// answer (2026-07-28 servers take the closed connection itself as the cancellation).
struct Abandon {
    call: Arc<Call>,
    session: SessionState,
    id: Value,
}

impl Abandon {
    fn fire(self) {
        tokio::spawn(async move {
            let body = json!({
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": self.id, "reason": "the client went away"}
            });
            let era = Era::Legacy {
                version: Some(self.session.version.clone()),
            };
            let _ = send_http(
                &self.call,
                Method::POST,
                &HeaderMap::new(),
                &era,
                Some(&self.session),
                Some(Bytes::from(body.to_string())),
            )
            .await;
        });
    }
}

fn new_session(
    call: &Call,
    message: &Message,
    upstream_headers: &HeaderMap,
) -> Result<Option<HeaderValue>, ProxyError> {
    let Some(upstream) = upstream_headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let requested = message
        .params()
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str);
    let state = SessionState {
        server: call.server().to_owned(),
        upstream: Some(upstream.to_owned()),
        version: jsonrpc::negotiate_legacy(requested).to_owned(),
        caller: call.caller.digest.to_string(),
        issued: chrono::Utc::now().timestamp(),
    };
    match call.gw.sessions.seal(&state) {
        Ok(id) => {
            call.gw.metrics.sessions_started.inc();
            Ok(HeaderValue::from_str(&id).ok())
        }
        Err(e) => Err(ProxyError::SessionNotCarried(e.to_string())),
    }
}
