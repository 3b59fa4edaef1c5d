//! The MCP endpoints: one POST/GET/DELETE endpoint per server (Streamable HTTP, both protocol
//! eras) and the deprecated HTTP+SSE pair.
//!
//! A POST goes through, in order: route lookup, token, body limits and JSON-RPC shape, protocol
//! era and header checks, session, policy (method, then tool and write protection), rate
//! limits, then the upstream. The answer streams back as it arrives; the final response of a
//! list or a tool call is the one message the gateway reads whole, to filter or cut it.

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

use crate::app::Gateway;
use crate::caller::{self, Caller};
use crate::error::{ProxyError, UpstreamFault};
use crate::jsonrpc::{self, Era, Incoming, Kind, Message, codes};
use crate::routes::{Route, Routes, Upstream};
use crate::session::SessionState;
use crate::shared::{PendingReply, SharedUpstream};
use crate::sse;
use crate::transform;

pub type AppState = Arc<Gateway>;

const SESSION_HEADER: &str = "mcp-session-id";
/// Methods that keep a session going rather than use the server: allowed to any caller with
/// some rule for the server, even when the scope document does not list them.
const HOUSEKEEPING: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "subscriptions/listen",
    "logging/setLevel",
];
/// Headers passed from the client to an HTTP upstream. Never `Authorization` or cookies.
const FORWARDED_HEADERS: &[&str] = &[
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "last-event-id",
    "traceparent",
    "tracestate",
    "baggage",
];

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

/// Audit and metric facts of one request, completed when its answer is known.
#[derive(Clone)]
struct Outcome {
    method: String,
    tool: Option<String>,
    decision: AuditDecision,
    reason: String,
    matched: Option<String>,
    arguments: Option<Value>,
    /// Only tool calls and denials are audited; every request is counted.
    audited: bool,
    /// A 2026-07-28 request: its results need `resultType` (and caching hints on lists).
    modern: bool,
}

impl Outcome {
    fn allowed(method: &str, tool: Option<&str>, matched: Option<String>) -> Self {
        Self {
            method: method.to_owned(),
            tool: tool.map(str::to_owned),
            decision: AuditDecision::Allowed,
            reason: DecisionReason::Allowed.as_str().to_owned(),
            matched,
            arguments: None,
            audited: method == "tools/call",
            modern: false,
        }
    }

    fn denied(method: &str, tool: Option<&str>, reason: &str) -> Self {
        Self {
            method: method.to_owned(),
            tool: tool.map(str::to_owned),
            decision: AuditDecision::Denied,
            reason: reason.to_owned(),
            matched: None,
            arguments: None,
            audited: true,
            modern: false,
        }
    }
}

fn finish(call: &Call, outcome: &Outcome, status: &str) {
    let server = call.server();
    let decision = match outcome.decision {
        AuditDecision::Allowed => "allowed",
        AuditDecision::Denied => "denied",
    };
    let latency = call.started.elapsed();
    let m = &call.gw.metrics;
    m.requests
        .with_label_values(&[server, metric_method(&outcome.method), decision, status])
        .inc();
    m.latency
        .with_label_values(&[server, metric_method(&outcome.method)])
        .observe(latency.as_secs_f64());
    if !outcome.audited {
        return;
    }
    let token = &call.caller.token;
    call.gw.audit.record(McpAuditEvent {
        id: uuid::Uuid::now_v7(),
        at: mcpgw_core::time::Timestamp::now(),
        request_id: call.request_id.clone(),
        gateway: call.gw.instance.clone(),
        server: server.to_owned(),
        method: outcome.method.clone(),
        tool: outcome.tool.clone(),
        subject: token.subject.clone(),
        user: token.username.clone(),
        client_id: token.client_id.clone(),
        issuer: token.issuer.clone(),
        decision: outcome.decision,
        reason: outcome.reason.clone(),
        matched_rule: outcome.matched.clone(),
        status: status.to_owned(),
        latency_ms: latency.as_secs_f64() * 1000.0,
        arguments: outcome.arguments.clone(),
    });
}

/// Method label values are bounded: unknown methods are counted as `other`.
fn metric_method(method: &str) -> &str {
    const KNOWN: &[&str] = &[
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "completion/complete",
        "logging/setLevel",
        "server/discover",
        "subscriptions/listen",
        "notifications",
        "response",
    ];
    if KNOWN.contains(&method) {
        method
    } else {
        "other"
    }
}

// ---------------------------------------------------------------------------------------------
// Small response helpers

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response()
}

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

fn sse_response(
    stream: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    extra: HeaderMap,
) -> Response {
    let mut response = Response::new(Body::from_stream(stream));
    let h = response.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.extend(extra);
    response
}

/// Counts a failure of the upstream (`upstream_errors`) where it is found, so failures that
/// nobody answers (a cancellation sent upstream) are counted too.
fn count_upstream(call: &Call, e: ProxyError) -> ProxyError {
    if let Some(reason) = e.mapping().upstream_reason {
        call.gw
            .metrics
            .upstream_errors
            .with_label_values(&[call.server(), reason])
            .inc();
    }
    e
}

/// The exit of a request the gateway refuses or fails itself, once it is known what the
/// request was: its metric and audit event (status from [`ProxyError::mapping`]), then the
/// answer.
fn fail(call: &Call, outcome: &Outcome, id: Option<&Value>, e: ProxyError) -> Response {
    finish(call, outcome, e.mapping().audit_status);
    e.into_response(id)
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

/// The JSON-RPC responses inside one of our own answers (JSON or SSE).
pub async fn collect_messages(response: Response, max: usize) -> Vec<Value> {
    let is_sse = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    let status = response.status();
    let mut out = Vec::new();
    let mut body = response.into_body().into_data_stream();
    if is_sse {
        let mut parser = sse::Parser::new(max);
        while let Some(Ok(chunk)) = body.next().await {
            let Ok(events) = parser.feed(&chunk) else {
                break;
            };
            for e in events.into_iter().filter(sse::Event::is_message) {
                if let Ok(v) = serde_json::from_str::<Value>(&e.data) {
                    out.push(v);
                }
            }
        }
    } else {
        let mut bytes = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > max {
                return out;
            }
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Array(items)) => out.extend(items),
            Ok(v) if v.get("jsonrpc").is_some() => out.push(v),
            _ if !status.is_success() => {}
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// One message

enum Verdict {
    Allow {
        matched: Option<String>,
    },
    /// The caller may not use this method here: 403 with the scopes that would allow it.
    Forbidden {
        reason: &'static str,
    },
    /// A tool the caller may not call: answered exactly like a tool that does not exist.
    Hidden {
        reason: &'static str,
    },
}

fn decide(call: &Call, method: &str, tool: Option<&str>) -> Verdict {
    let caller = call.routes.policy.caller(&call.caller.identity);
    let server = call.server();
    if method == "tools/call" {
        let Some(tool) = tool else {
            return Verdict::Forbidden {
                reason: DecisionReason::ToolNameMissing.as_str(),
            };
        };
        let d = caller.decide(server, method, Some(tool));
        if d.allowed {
            // New, or changed while changed tools are withheld: as if it did not exist.
            if call.route.integrity.gate(tool) == Gate::Hide {
                return Verdict::Hidden {
                    reason: "tool_not_approved",
                };
            }
            if call.route.entry.gateway.read_only
                && !call.route.is_read_only(tool)
                && !d.write_allowed
            {
                return Verdict::Hidden {
                    reason: "write_protected",
                };
            }
            return Verdict::Allow {
                matched: d.matched.map(|m| m.to_string()),
            };
        }
        return match d.reason {
            DecisionReason::ToolNotAllowed => Verdict::Hidden {
                reason: d.reason.as_str(),
            },
            other => Verdict::Forbidden {
                reason: other.as_str(),
            },
        };
    }
    let d = caller.decide(server, method, None);
    if d.allowed {
        return Verdict::Allow {
            matched: d.matched.map(|m| m.to_string()),
        };
    }
    let has_server_rule = matches!(
        d.reason,
        DecisionReason::MethodNotAllowed | DecisionReason::ToolNotAllowed
    );
    if has_server_rule && (HOUSEKEEPING.contains(&method) || method.starts_with("notifications/")) {
        return Verdict::Allow { matched: None };
    }
    Verdict::Forbidden {
        reason: d.reason.as_str(),
    }
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

fn check_rates(call: &Call, tool: &str) -> Result<(), crate::limits::RetryAfter> {
    let settings = &call.route.entry.gateway;
    let limits = &call.gw.config.limits;
    let per_server = settings.calls_per_minute.unwrap_or(limits.calls_per_minute);
    let key = format!("{}\n{}", call.caller.limit_key(), call.server());
    call.gw.rate.take(&key, per_server)?;
    let per_tool = settings
        .tool_calls_per_minute
        .get(tool)
        .copied()
        .unwrap_or(limits.tool_calls_per_minute);
    if per_tool > 0 {
        call.gw.rate.take(&format!("{key}\n{tool}"), per_tool)?;
    }
    Ok(())
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

/// An upstream answered with an error status: pass it on, except that the upstream refusing
/// the gateway's own credentials must not look like the caller's token being bad.
async fn upstream_status(call: &Call, response: reqwest::Response) -> Result<Response, ProxyError> {
    let status = response.status();
    let reason = match status.as_u16() {
        401 | 403 => None,
        404 => Some("upstream_404"),
        s if s >= 500 => Some("upstream_5xx"),
        _ => Some("upstream_4xx"),
    };
    if let Some(reason) = reason {
        call.gw
            .metrics
            .upstream_errors
            .with_label_values(&[call.server(), reason])
            .inc();
    }
    if reason.is_none() {
        // A cached OAuth token the upstream no longer takes: the next request fetches a new one.
        if status.as_u16() == 401
            && let Upstream::Http {
                credentials: Some(c),
                ..
            } = &call.route.upstream
        {
            c.invalidate();
        }
        return Err(count_upstream(call, ProxyError::UpstreamRefusedCredentials));
    }
    let content_type = response.headers().get(http::header::CONTENT_TYPE).cloned();
    let body = read_limited(response, 64 * 1024).await.unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Some(ct) = content_type {
        r.headers_mut().insert(http::header::CONTENT_TYPE, ct);
    }
    Ok(r)
}

async fn read_limited(response: reqwest::Response, max: usize) -> Option<Bytes> {
    let mut out = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        if out.len() + chunk.len() > max {
            return None;
        }
        out.extend_from_slice(&chunk);
    }
    Some(Bytes::from(out))
}

// ---------------------------------------------------------------------------------------------
// HTTP upstreams

async fn send_http(
    call: &Call,
    method: Method,
    client_headers: &HeaderMap,
    era: &Era,
    session: Option<&SessionState>,
    body: Option<Bytes>,
) -> Result<reqwest::Response, ProxyError> {
    let Upstream::Http {
        url,
        headers,
        credentials,
    } = &call.route.upstream
    else {
        unreachable!("send_http is for HTTP upstreams");
    };
    let fail = |fault: UpstreamFault, mut message: String| {
        message.push_str(&registry_health_note(call));
        count_upstream(call, ProxyError::Upstream { fault, message })
    };
    let mut out = HeaderMap::with_capacity(12);
    // The headers that mirror the body belong to the 2026-07-28 era, where `era_of` has
    // checked them against the body; the session era does not define them, so they never
    // travel there (an upstream or a proxy before it might route on them).
    let modern = matches!(era, Era::Modern { .. });
    for name in FORWARDED_HEADERS {
        if !modern && jsonrpc::MIRRORED_HEADERS.contains(name) {
            continue;
        }
        if let Some(v) = client_headers.get(*name) {
            out.insert(HeaderName::from_static(name), v.clone());
        }
    }
    for (name, value) in client_headers {
        if modern && name.as_str().starts_with("mcp-param-") {
            out.insert(name.clone(), value.clone());
        }
    }
    if let (Era::Legacy { .. }, Some(s)) = (era, session) {
        if let Some(up) = &s.upstream
            && let Ok(v) = HeaderValue::from_str(up)
        {
            out.insert(SESSION_HEADER, v);
        }
        if !out.contains_key("mcp-protocol-version")
            && let Ok(v) = HeaderValue::from_str(&s.version)
        {
            out.insert("mcp-protocol-version", v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&call.request_id) {
        out.insert(mcpgw_core::telemetry::REQUEST_ID_HEADER, v);
    }
    out.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    if body.is_some() {
        out.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    out.extend(headers.clone());
    if call.route.entry.gateway.assert_caller {
        // Set last, so neither a client nor a custom header can choose it.
        out.insert(
            mcpgw_core::auth::CALLER_ASSERTION_HEADER,
            caller::assertion(&call.caller),
        );
    }
    let mut request = call
        .gw
        .upstream_http
        .request(method.clone(), url.clone())
        .headers(out);
    if let Some(body) = body {
        request = request.body(body);
    }
    let mut request = request.build().map_err(|e| {
        fail(
            UpstreamFault::Transport,
            format!("the upstream request could not be built: {e}"),
        )
    })?;
    if let Some(credentials) = credentials {
        credentials
            .apply_to_reqwest(&mut request)
            .await
            .map_err(|e| {
                fail(
                    UpstreamFault::Credentials,
                    format!("the gateway could not get credentials for this server: {e}"),
                )
            })?;
    }
    let timeout = call.gw.config.upstream.first_byte_timeout();
    match tokio::time::timeout(timeout, call.gw.upstream_http.execute(request)).await {
        Err(_) => Err(fail(
            UpstreamFault::Timeout,
            format!(
                "the server did not answer within {} ms",
                timeout.as_millis()
            ),
        )),
        Ok(Err(e)) => {
            let reason = if e.is_connect() {
                UpstreamFault::Connect
            } else {
                UpstreamFault::Transport
            };
            Err(fail(
                reason,
                format!("the server could not be reached: {}", error_chain(&e)),
            ))
        }
        Ok(Ok(r)) => Ok(r),
    }
}

/// What the registry's health checks say of a server that failed, for the error message: the
/// gateway still tries every server (its own view may differ from the registry's), but a
/// caller learns whether the failure was already known.
fn registry_health_note(call: &Call) -> String {
    use mcpgw_core::domain::HealthStatus;
    match call.routes.health.get(call.server()) {
        Some(h) if h.status != HealthStatus::Healthy => {
            let status = h.status.as_str().replace('_', " ");
            match h.since {
                Some(since) => format!(
                    " (the registry's health checks report it {status} since {})",
                    since.to_canonical()
                ),
                None => format!(" (the registry's health checks report it {status})"),
            }
        }
        _ => String::new(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The messages of an upstream HTTP answer as events: a JSON body is one event; an SSE body
/// is parsed as it arrives, each event passed on with its id.
fn http_events(
    call: &Call,
    response: reqwest::Response,
) -> BoxStream<'static, Result<sse::Event, String>> {
    let max = call.gw.config.upstream.max_message_bytes;
    let idle = call.gw.config.upstream.idle_timeout();
    let is_sse = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    if !is_sse {
        return futures::stream::once(async move {
            let bytes = read_limited(response, max).await.ok_or_else(|| {
                format!("the server's answer is larger than {max} bytes or broke off")
            })?;
            if bytes.is_empty() {
                return Err("the server's answer is empty".to_owned());
            }
            Ok(sse::Event::message(
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        })
        .boxed();
    }
    let state = (
        response.bytes_stream().boxed(),
        sse::Parser::new(max),
        std::collections::VecDeque::<sse::Event>::new(),
    );
    futures::stream::unfold(state, move |(mut body, mut parser, mut queue)| async move {
        loop {
            if let Some(e) = queue.pop_front() {
                return Some((Ok(e), (body, parser, queue)));
            }
            match tokio::time::timeout(idle, body.next()).await {
                Err(_) => {
                    return Some((
                        Err(format!(
                            "the server sent nothing for {} ms",
                            idle.as_millis()
                        )),
                        (body, parser, queue),
                    ));
                }
                Ok(None) => return None,
                Ok(Some(Err(e))) => {
                    return Some((
                        Err(format!("the server's stream broke: {e}")),
                        (body, parser, queue),
                    ));
                }
                Ok(Some(Ok(chunk))) => match parser.feed(&chunk) {
                    Ok(events) => queue.extend(events),
                    Err(e) => return Some((Err(e.to_string()), (body, parser, queue))),
                },
            }
        }
    })
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Shared upstreams (stdio, legacy SSE)

enum SharedAnswer {
    /// The gateway answered itself (initialize, ping, server/discover).
    Direct(Value, HeaderMap),
    Pending(PendingReply),
    /// `subscriptions/listen`: streamed from the shared session's notifications.
    Listen(serde_json::Map<String, Value>),
    Failed(ProxyError),
}

async fn shared_request(
    call: &Arc<Call>,
    era: &Era,
    shared: &Arc<SharedUpstream>,
    message: Message,
    id: &Value,
) -> SharedAnswer {
    let method = message.method().unwrap_or_default().to_owned();
    let unavailable = |e: crate::shared::SharedError| {
        SharedAnswer::Failed(count_upstream(call, ProxyError::Shared(e)))
    };
    match method.as_str() {
        "initialize" => {
            let init = match shared.initialize_result().await {
                Ok(i) => i,
                Err(e) => return unavailable(e),
            };
            let requested = message
                .params()
                .and_then(|p| p.get("protocolVersion"))
                .and_then(Value::as_str);
            let version = jsonrpc::negotiate_legacy(requested);
            let mut result = init;
            result["protocolVersion"] = json!(version);
            let state = SessionState {
                server: call.server().to_owned(),
                upstream: None,
                version: version.to_owned(),
                caller: call.caller.digest.to_string(),
                issued: chrono::Utc::now().timestamp(),
            };
            let mut extra = HeaderMap::new();
            if let Ok(sid) = call.gw.sessions.seal(&state)
                && let Ok(v) = HeaderValue::from_str(&sid)
            {
                call.gw.metrics.sessions_started.inc();
                extra.insert(SESSION_HEADER, v);
            }
            SharedAnswer::Direct(jsonrpc::result_response(id.clone(), result), extra)
        }
        "ping" => SharedAnswer::Direct(
            jsonrpc::result_response(id.clone(), json!({})),
            HeaderMap::new(),
        ),
        "server/discover" => match shared.initialize_result().await {
            Ok(init) => SharedAnswer::Direct(
                jsonrpc::result_response(id.clone(), discover_result(&init)),
                HeaderMap::new(),
            ),
            Err(e) => unavailable(e),
        },
        "subscriptions/listen" => {
            let params = message.params().cloned().unwrap_or_default();
            SharedAnswer::Listen(params)
        }
        _ => {
            let mut value = message.into_value();
            if let Era::Modern { .. } = era {
                // The upstream session is in the session era: strip per-request metadata it
                // does not know.
                if let Some(meta) = value
                    .pointer_mut("/params/_meta")
                    .and_then(Value::as_object_mut)
                {
                    meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
                }
            }
            match shared.request(&call.caller.digest, value).await {
                Ok(p) => SharedAnswer::Pending(p),
                Err(e) => unavailable(e),
            }
        }
    }
}

/// `server/discover` for an upstream that spoke `initialize`.
fn discover_result(init: &Value) -> Value {
    json!({
        "supportedVersions": jsonrpc::supported_versions(),
        "capabilities": init.get("capabilities").cloned().unwrap_or(json!({})),
        "serverInfo": init.get("serverInfo").cloned().unwrap_or(json!({"name": "mcp-server", "version": "0"})),
        "instructions": init.get("instructions").cloned().unwrap_or(Value::Null),
        "resultType": "complete",
        "ttlMs": 0,
        "cacheScope": "private",
    })
}

fn pending_events(pending: PendingReply) -> BoxStream<'static, Result<sse::Event, String>> {
    futures::stream::unfold(pending, |mut p| async move {
        p.next()
            .await
            .map(|v| (Ok(sse::Event::message(v.to_string())), p))
    })
    .boxed()
}

/// `subscriptions/listen` (2026-07-28): an acknowledgement, then the upstream's notifications
/// until the client closes the stream.
fn listen(
    shared: &Arc<SharedUpstream>,
    id: Value,
    params: serde_json::Map<String, Value>,
    permit: Box<dyn std::any::Any + Send>,
) -> Response {
    let rx = shared.subscribe();
    let honored = listen_filter(&params);
    let stamp = move |mut message: Value| {
        if let Some(obj) = message.as_object_mut() {
            let params = obj.entry("params").or_insert(json!({}));
            params["_meta"]["io.modelcontextprotocol/subscriptionId"] = id.clone();
        }
        message
    };
    let ack = stamp(json!({
        "jsonrpc": "2.0",
        "method": "notifications/subscriptions/acknowledged",
        "params": {"notifications": honored.clone()},
    }));
    let wanted: Vec<&'static str> = [
        ("toolsListChanged", "notifications/tools/list_changed"),
        ("promptsListChanged", "notifications/prompts/list_changed"),
        (
            "resourcesListChanged",
            "notifications/resources/list_changed",
        ),
    ]
    .into_iter()
    .filter(|(key, _)| honored.get(*key) == Some(&Value::Bool(true)))
    .map(|(_, method)| method)
    .collect();
    let notifications = BroadcastStream::new(rx).filter_map(move |n| {
        let keep = n.ok().filter(|n| {
            let method = n.get("method").and_then(Value::as_str).unwrap_or("");
            wanted.contains(&method)
        });
        futures::future::ready(keep.map(|n| sse::Event::message(stamp(n).to_string()).encode()))
    });
    let first = futures::stream::once(futures::future::ready(
        sse::Event::message(ack.to_string()).encode(),
    ));
    relay(first.chain(notifications), permit)
}

/// The part of a listen request's `notifications` filter a shared upstream can honor: list
/// changes. Resource subscriptions are per client, which a shared session cannot keep apart.
fn listen_filter(params: &serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    let requested = params.get("notifications").and_then(Value::as_object);
    let mut honored = serde_json::Map::new();
    for key in [
        "toolsListChanged",
        "promptsListChanged",
        "resourcesListChanged",
    ] {
        if requested.and_then(|r| r.get(key)) == Some(&Value::Bool(true)) {
            honored.insert(key.to_owned(), Value::Bool(true));
        }
    }
    honored
}

/// Keep-alive comments on quiet streams, so proxies and load balancers keep them open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// An SSE response that relays `source` (encoded events) until it ends or the client goes
/// away, with keep-alive comments in quiet periods; `guard` (permits, clean-up) lives as long
/// as the stream.
pub(crate) fn relay(
    source: impl futures::Stream<Item = Bytes> + Send + 'static,
    guard: impl Send + 'static,
) -> Response {
    // The body stream itself waits on the source and the keep-alive timer: no task and no
    // channel per stream (10,000 open streams cost what their connections cost). When the
    // client goes away, hyper drops the body, and with it the source and the guard.
    let state = (Box::pin(source), guard);
    let body = futures::stream::unfold(state, |(mut source, guard)| async move {
        tokio::select! {
            item = source.next() => item.map(|bytes| (Ok::<_, std::io::Error>(bytes), (source, guard))),
            _ = tokio::time::sleep(KEEP_ALIVE) => Some((Ok(sse::keep_alive()), (source, guard))),
        }
    });
    sse_response(body, HeaderMap::new())
}

/// A body stream fed by a task; the task ends when the client goes away (sends fail).
fn async_stream_events<F, Fut>(
    producer: F,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
where
    F: FnOnce(mpsc::Sender<Bytes>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Bytes>(32);
    tokio::spawn(producer(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok)
}

// ---------------------------------------------------------------------------------------------
// The answer

/// Passes an answer to the client: a final response that comes first is sent as JSON; anything
/// else streams as SSE, event by event. The final response of a list or tool call is filtered
/// or cut on the way; the request is audited when its final response passes.
async fn respond(
    call: Arc<Call>,
    id: Value,
    outcome: Outcome,
    mut stream: BoxStream<'static, Result<sse::Event, String>>,
    extra: HeaderMap,
    abandon: Option<Abandon>,
    permit: Box<dyn std::any::Any + Send>,
) -> Response {
    let first =
        match tokio::time::timeout(call.gw.config.upstream.first_byte_timeout(), stream.next())
            .await
        {
            Err(_) => {
                if let Some(a) = abandon {
                    a.fire();
                }
                return fail(&call, &outcome, Some(&id), ProxyError::NoFirstMessage);
            }
            Ok(None) => return fail(&call, &outcome, Some(&id), ProxyError::NoResponse),
            Ok(Some(Err(e))) => {
                return fail(&call, &outcome, Some(&id), ProxyError::AnswerBroke(e));
            }
            Ok(Some(Ok(event))) => event,
        };
    if first.is_message()
        && let Ok(value) = serde_json::from_str::<Value>(&first.data)
        && is_final(&value, &id)
    {
        let body = match finalize(&call, &outcome, value, first.data.len()) {
            Some(changed) => serde_json::to_vec(&changed).unwrap_or_default(),
            // Unchanged answers go out as the upstream wrote them: no second serialization.
            None => first.data.into_bytes(),
        };
        drop(permit);
        let mut r = (
            StatusCode::OK,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        r.headers_mut().extend(extra);
        return r;
    }
    let body = async_stream_events(async move |tx: mpsc::Sender<Bytes>| {
        let _permit = permit;
        let mut next = Some(Ok(first));
        let mut finished = false;
        // Only a client that left cancels the upstream request. An upstream that ends its own
        // stream before the answer (SEP-1699 polling) is still working on it: the client
        // resumes with GET and Last-Event-ID.
        let mut client_gone = false;
        loop {
            let item = match next.take() {
                Some(i) => Some(i),
                None => tokio::select! {
                    i = stream.next() => i,
                    _ = tx.closed() => {
                        client_gone = true;
                        break;
                    }
                },
            };
            let Some(item) = item else { break };
            let event = match item {
                Ok(e) => e,
                Err(e) => {
                    let e = ProxyError::AnswerBroke(e);
                    let v = e.body(Some(&id));
                    finish(&call, &outcome, e.mapping().audit_status);
                    finished = true;
                    let _ = tx.send(sse::Event::message(v.to_string()).encode()).await;
                    break;
                }
            };
            let mut out = event.clone();
            let mut last = false;
            if event.is_message()
                && let Ok(value) = serde_json::from_str::<Value>(&event.data)
                && is_final(&value, &id)
            {
                if let Some(changed) = finalize(&call, &outcome, value, event.data.len()) {
                    out.data = changed.to_string();
                }
                finished = true;
                last = true;
            }
            if tx.send(out.encode()).await.is_err() {
                client_gone = true;
                break;
            }
            if last {
                break;
            }
        }
        if !finished {
            if client_gone {
                finish(&call, &outcome, "cancelled");
                if let Some(a) = abandon {
                    a.fire();
                }
            } else {
                finish(&call, &outcome, "stream_closed");
            }
        }
    });
    sse_response(body, extra)
}

fn is_final(value: &Value, id: &Value) -> bool {
    value.get("id") == Some(id) && (value.get("result").is_some() || value.get("error").is_some())
}

/// Filters or cuts the final response and records the outcome; `Some` when the message was
/// changed (`raw_len` is its size as received, so small tool results are not measured again).
fn finalize(call: &Call, outcome: &Outcome, mut value: Value, raw_len: usize) -> Option<Value> {
    let mut changed = false;
    let status = if value.get("error").is_some() {
        "jsonrpc_error"
    } else if value.pointer("/result/isError") == Some(&Value::Bool(true)) {
        "tool_error"
    } else {
        "ok"
    };
    if let Some(result) = value.get_mut("result") {
        match outcome.method.as_str() {
            "tools/call" => {
                let max = call
                    .route
                    .entry
                    .gateway
                    .max_result_bytes
                    .unwrap_or(call.gw.config.upstream.max_result_bytes)
                    as usize;
                if raw_len > max
                    && let Some(size) = transform::cap_tool_result(result, max)
                {
                    changed = true;
                    tracing::info!(server = %call.server(), tool = ?outcome.tool, size, max, "tool result cut to the server's limit");
                }
            }
            "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" => {
                changed = true;
                if outcome.method == "tools/list" {
                    call.route.integrity.apply_to_list(result);
                }
                let caller = call.routes.policy.caller(&call.caller.identity);
                let filter = caller.tool_filter(call.server());
                let read_only_server = call.route.entry.gateway.read_only;
                let visible = |name: &str, read_only: bool| {
                    filter.allows(name)
                        && (!read_only_server || read_only || filter.allows_write(name))
                };
                let server = call.server();
                let hints = transform::filter_list(
                    &outcome.method,
                    result,
                    &transform::ListFilter {
                        tool_visible: &visible,
                        prompts_visible: caller.decide(server, "prompts/get", None).allowed,
                        resources_visible: caller.decide(server, "resources/read", None).allowed,
                    },
                );
                if !hints.is_empty() {
                    call.route.learn_read_only(hints);
                }
            }
            _ => {}
        }
        if outcome.modern {
            changed |= stateless_result_fields(&outcome.method, result);
        }
    }
    finish(call, outcome, status);
    changed.then_some(value)
}

/// 2026-07-28 results carry `resultType`, and list and read results caching hints. An upstream
/// of the session era leaves them out, so the gateway adds them. Lists it filtered per caller
/// are always `private`: a shared cache must never hand one caller's view to another.
fn stateless_result_fields(method: &str, result: &mut Value) -> bool {
    let Some(obj) = result.as_object_mut() else {
        return false;
    };
    let before = obj.len();
    obj.entry("resultType").or_insert(json!("complete"));
    let cacheable = matches!(
        method,
        "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
    );
    if cacheable {
        obj.entry("ttlMs").or_insert(json!(0));
        let filtered = method != "resources/read";
        if filtered || !obj.contains_key("cacheScope") {
            obj.insert("cacheScope".into(), json!("private"));
            return true;
        }
    }
    obj.len() != before
}

// ---------------------------------------------------------------------------------------------
// GET and DELETE on the MCP endpoint

/// `GET /{server}/mcp`: the session era's stream of server-initiated messages (resumable with
/// `Last-Event-ID` when the upstream supports it).
pub async fn get(
    State(gw): State<AppState>,
    Path(server): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let (routes, route, caller) = match begin(&gw, &server, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let modern = headers
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v >= jsonrpc::LATEST_MODERN);
    if modern {
        return ProxyError::MethodNotAllowed(
            "the 2026-07-28 protocol has no GET stream; use subscriptions/listen",
        )
        .into_response(None);
    }
    let session = match required_session(&gw, &headers, &server, &caller, "the GET stream") {
        Ok(s) => s,
        Err(e) => return e.into_response(None),
    };
    let Some(permit) = gw.streams.acquire(
        caller.limit_key(),
        gw.config.limits.streams_per_caller,
        &gw.metrics.open_streams,
    ) else {
        return ProxyError::TooManyStreams.into_response(None);
    };
    let call = Arc::new(Call {
        gw,
        routes,
        route,
        caller,
        request_id,
        started,
    });
    match &call.route.upstream {
        Upstream::Http { .. } => {
            let era = Era::Legacy {
                version: Some(session.version.clone()),
            };
            let response =
                match send_http(&call, Method::GET, &headers, &era, Some(&session), None).await {
                    Ok(r) => r,
                    Err(e) => return e.into_response(None),
                };
            if !response.status().is_success() {
                let status = StatusCode::from_u16(response.status().as_u16())
                    .unwrap_or(StatusCode::BAD_GATEWAY);
                return status.into_response();
            }
            let events = http_events_no_idle(&call, response)
                .take_while(|e| futures::future::ready(e.is_ok()))
                .filter_map(|e| futures::future::ready(e.ok().map(|e| e.encode())));
            relay(events, permit)
        }
        Upstream::Shared(shared) => {
            let notifications = BroadcastStream::new(shared.subscribe()).filter_map(|n| {
                futures::future::ready(n.ok().map(|n| sse::Event::message(n.to_string()).encode()))
            });
            relay(notifications, permit)
        }
    }
}

/// Like [`http_events`] without the idle limit: a listening stream may be quiet for hours.
fn http_events_no_idle(
    call: &Call,
    response: reqwest::Response,
) -> BoxStream<'static, Result<sse::Event, String>> {
    let max = call.gw.config.upstream.max_message_bytes;
    let state = (
        response.bytes_stream().boxed(),
        sse::Parser::new(max),
        std::collections::VecDeque::<sse::Event>::new(),
    );
    futures::stream::unfold(state, move |(mut body, mut parser, mut queue)| async move {
        loop {
            if let Some(e) = queue.pop_front() {
                return Some((Ok(e), (body, parser, queue)));
            }
            match body.next().await {
                None | Some(Err(_)) => return None,
                Some(Ok(chunk)) => match parser.feed(&chunk) {
                    Ok(events) => queue.extend(events),
                    Err(e) => return Some((Err(e.to_string()), (body, parser, queue))),
                },
            }
        }
    })
    .boxed()
}

/// `DELETE /{server}/mcp`: ends the session (and the upstream's).
pub async fn delete(
    State(gw): State<AppState>,
    Path(server): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let (routes, route, caller) = match begin(&gw, &server, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let session = match required_session(&gw, &headers, &server, &caller, "DELETE") {
        Ok(s) => s,
        Err(e) => return e.into_response(None),
    };
    gw.metrics.sessions_ended.inc();
    let call = Arc::new(Call {
        gw,
        routes,
        route,
        caller,
        request_id,
        started,
    });
    match &call.route.upstream {
        Upstream::Http { .. } if session.upstream.is_some() => {
            let era = Era::Legacy {
                version: Some(session.version.clone()),
            };
            match send_http(&call, Method::DELETE, &headers, &era, Some(&session), None).await {
                // Clients expect 200 for a session that ended, whatever 2xx the upstream chose.
                Ok(r) if r.status().is_success() => StatusCode::OK.into_response(),
                Ok(r) => StatusCode::from_u16(r.status().as_u16())
                    .unwrap_or(StatusCode::BAD_GATEWAY)
                    .into_response(),
                Err(e) => e.into_response(None),
            }
        }
        _ => StatusCode::OK.into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// The deprecated HTTP+SSE transport (2024-11-05) towards clients

#[derive(serde::Deserialize)]
pub struct MessageQuery {
    #[serde(rename = "sessionId")]
    session_id: String,
}

/// `GET /{server}/sse`: opens the event stream; its first event names where to POST.
pub async fn sse_connect(
    State(gw): State<AppState>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (_, _, caller) = match begin(&gw, &server, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(permit) = gw.streams.acquire(
        caller.limit_key(),
        gw.config.limits.streams_per_caller,
        &gw.metrics.open_streams,
    ) else {
        return ProxyError::TooManyStreams.into_response(None);
    };
    let (tx, rx) = mpsc::channel::<Value>(256);
    let id = uuid::Uuid::new_v4().simple().to_string();
    gw.legacy.insert(
        id.clone(),
        crate::app::LegacyConnection {
            server: server.clone(),
            caller: caller.digest.to_string(),
            tx,
            session: std::sync::Mutex::new(None),
        },
    );
    gw.metrics.open_sessions.inc();
    let endpoint = format!("/{server}/message?sessionId={id}");
    let legacy = Arc::clone(&gw.legacy);
    let metrics = gw.metrics.clone();
    let cleanup = scopeguard(move || {
        legacy.remove(&id);
        metrics.open_sessions.dec();
    });
    let first = sse::Event {
        event: Some("endpoint".into()),
        data: endpoint,
        ..Default::default()
    };
    let messages = tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(|m| sse::Event::message(m.to_string()).encode());
    relay(
        futures::stream::once(futures::future::ready(first.encode())).chain(messages),
        (permit, cleanup),
    )
}

struct ScopeGuard<F: FnOnce()>(Option<F>);
impl<F: FnOnce()> Drop for ScopeGuard<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}
fn scopeguard<F: FnOnce()>(f: F) -> ScopeGuard<F> {
    ScopeGuard(Some(f))
}

/// `POST /{server}/message?sessionId=…`: a message of a legacy SSE client; its answers go
/// onto that client's event stream.
pub async fn sse_message(
    State(gw): State<AppState>,
    Path(server): Path<String>,
    Query(query): Query<MessageQuery>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    request: axum::extract::Request,
) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let (routes, route, caller) = match begin(&gw, &server, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = match read_body(body, gw.config.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some((tx, session)) = gw.legacy.lookup(&query.session_id, &server, &caller.digest) else {
        return ProxyError::LegacyStreamNotFound.into_response(None);
    };
    let mut inner = HeaderMap::new();
    if let Some(sid) = &session
        && let Ok(v) = HeaderValue::from_str(sid)
    {
        inner.insert(SESSION_HEADER, v);
    }
    let call = Arc::new(Call {
        gw: Arc::clone(&gw),
        routes,
        route,
        caller,
        request_id,
        started,
    });
    let max = gw.config.upstream.max_message_bytes;
    let legacy = Arc::clone(&gw.legacy);
    let session_key = query.session_id.clone();
    tokio::spawn(async move {
        let response = handle_post(call, inner, body).await;
        if let Some(sid) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            legacy.set_session(&session_key, sid.to_owned());
        }
        for message in collect_messages(response, max).await {
            if tx.send(message).await.is_err() {
                break;
            }
        }
    });
    StatusCode::ACCEPTED.into_response()
}
