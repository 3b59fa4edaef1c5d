//! The MCP endpoints: one POST/GET/DELETE endpoint per server (Streamable HTTP, both protocol
//! eras) and the deprecated HTTP+SSE pair.
//!
//! A POST goes through, in order: route lookup, token, body limits and JSON-RPC shape, protocol
//! era and header checks, session, policy (method, then tool and write protection), rate
//! limits, then the upstream. The answer streams back as it arrives; the final response of a
//! list or a tool call is the one message the gateway reads whole, to filter or cut it.
//!
//! This file is the per-server POST: its body taken apart (JSON-RPC shape, era, session) into
//! the typed [`pipeline::Request`]s it runs, and their [`pipeline::Answer`]s made into HTTP.
//! Each other concern has its own file: `entry` (route, token, the session of a GET or DELETE,
//! a place among open streams: what every handler of both endpoints starts with), `pipeline` (one
//! message: decide, forward, answer; also under the aggregated `/mcp`), `policy` (decide, rate
//! limits), `upstream_http` and `upstream_shared` (the upstream kinds), `reply` (the answer
//! stream and the final response), `exit` (the one exit: typed status, metric and audit
//! event), `streams` (GET and DELETE), `legacy_sse` (the 2024-11-05 transport). They are one module split by concern, so
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
use crate::jsonrpc::{self, Era, Incoming, Kind, Message};
use crate::routes::{Route, Routes, Upstream};
use crate::session::SessionState;
use crate::shared::{PendingReply, SharedUpstream};
use crate::sse;
use crate::state::Gateway;
use crate::transform;

mod entry;
mod exit;
mod legacy_sse;
pub mod pipeline;
mod policy;
mod reply;
mod streams;
mod upstream_http;
mod upstream_shared;

pub use self::entry::Refused;
pub(crate) use self::entry::{Door, enter, read_body, stream_permit};
use self::exit::*;
pub use self::legacy_sse::{MessageQuery, sse_connect, sse_message};
use self::pipeline::*;
pub use self::pipeline::{Answer, Request, open_upstream_session};
use self::policy::*;
pub(crate) use self::reply::relay;
use self::reply::*;
pub use self::reply::{Event, Streamed};
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

/// `POST /{server}/mcp`
pub async fn post(
    State(gw): State<AppState>,
    Path(server): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    request: axum::extract::Request,
) -> Result<Response, Refused> {
    let (parts, body) = request.into_parts();
    let call = enter(gw, &server, &parts.headers, request_id).await?;
    let body = read_body(body, call.gw.config.max_body_bytes)
        .await
        .map_err(|e| call.door().refuse(e, None))?;
    Ok(run_post(&Arc::new(call), &parts.headers, body)
        .await
        .into_response())
}

/// What one POST body became.
pub(crate) enum Posted {
    One {
        id: Option<Value>,
        answer: Result<Answer, ProxyError>,
    },
    /// The answers of a batch's requests, in order.
    Batch(Vec<Value>),
    /// Refused before any message ran (recorded already).
    Refused(ProxyError, Option<Value>),
}

impl Posted {
    fn into_response(self) -> Response {
        match self {
            Self::One { id, answer } => answer_response(id.as_ref(), answer),
            Self::Batch(answers) if answers.is_empty() => StatusCode::ACCEPTED.into_response(),
            Self::Batch(answers) => json_response(StatusCode::OK, &Value::Array(answers)),
            Self::Refused(e, id) => e.into_response(id.as_ref()),
        }
    }
}

/// Takes a POST body apart (size, JSON-RPC shape, era, session) and runs its messages through
/// the pipeline; the legacy SSE transport's messages come here too.
pub(crate) async fn run_post(call: &Arc<Call>, headers: &HeaderMap, body: Bytes) -> Posted {
    let (incoming, era, session) = match take_apart(call, headers, &body) {
        Ok(parts) => parts,
        Err(refusal) => {
            let (e, id) = *refusal;
            refused(&call.gw, call.server(), &call.request_id, call.started, &e);
            return Posted::Refused(e, id);
        }
    };
    let request = |message, raw| Request {
        call,
        headers,
        era: &era,
        session: session.as_ref(),
        message,
        raw,
    };
    match incoming {
        Incoming::Single(message) => {
            let id = message.id().cloned();
            Posted::One {
                id,
                answer: pipeline::run(request(message, Some(body))).await,
            }
        }
        // A JSON-RPC batch: each element is decided on its own; the answers are collected
        // into one array (batches are a 2025-03-26 feature; later clients do not send them).
        Incoming::Batch(messages) => {
            let mut answers = Vec::new();
            for message in messages {
                let id = match &message.kind {
                    Kind::Request { id, .. } => Some(id.clone()),
                    _ => None,
                };
                let answer = pipeline::run(request(message, None)).await;
                if id.is_some() {
                    answers.extend(messages_of(id.as_ref(), answer).await);
                }
            }
            Posted::Batch(answers)
        }
    }
}

type Parts = (Incoming, Era, Option<SessionState>);
/// A refusal of the whole body, with the id to answer it for (boxed: errors are large, and
/// the common path should not carry their size).
type Refusal = Box<(ProxyError, Option<Value>)>;

fn take_apart(call: &Call, headers: &HeaderMap, body: &Bytes) -> Result<Parts, Refusal> {
    let max = call.gw.config.max_body_bytes;
    if body.len() > max {
        return Err(Box::new((ProxyError::BodyTooLarge { max }, None)));
    }
    let incoming = Incoming::parse(body).map_err(|e| Box::new((ProxyError::Malformed(e), None)))?;
    let era = match jsonrpc::era_of(headers, &incoming) {
        Ok(era) => era,
        Err(problem) => {
            let id = match &incoming {
                Incoming::Single(m) => m.id().cloned(),
                Incoming::Batch(_) => None,
            };
            return Err(Box::new((ProxyError::Headers(problem), id)));
        }
    };
    if let Some(why) = &call.route.broken {
        tracing::error!(server = %call.server(), error = %why, "request to an unusable route");
        return Err(Box::new((ProxyError::RouteUnusable(why.to_string()), None)));
    }
    // The session (session era only; stateless requests ignore the header, as the spec says).
    let session = match (&era, headers.get(SESSION_HEADER)) {
        (Era::Legacy { .. }, Some(value)) => {
            let id = value.to_str().unwrap_or("");
            let opened = call
                .gw
                .sessions
                .open(id, call.server(), &call.caller.digest);
            Some(opened.map_err(|e| Box::new((ProxyError::SessionNotFound(e), None)))?)
        }
        _ => None,
    };
    Ok((incoming, era, session))
}

/// The HTTP answer to one message.
fn answer_response(id: Option<&Value>, answer: Result<Answer, ProxyError>) -> Response {
    match answer {
        Err(e) => e.into_response(id),
        Ok(Answer::Final(mut f)) => {
            let headers = std::mem::take(&mut f.headers);
            let mut r = (
                StatusCode::OK,
                [(http::header::CONTENT_TYPE, "application/json")],
                f.into_bytes(),
            )
                .into_response();
            r.headers_mut().extend(headers);
            r
        }
        Ok(Answer::Stream(s)) => stream_response(s),
        Ok(Answer::NoContent(status)) => status.into_response(),
        Ok(Answer::UpstreamStatus(u)) => {
            let mut r = Response::new(Body::from(u.body));
            *r.status_mut() = u.status;
            if let Some(ct) = u.content_type {
                r.headers_mut().insert(http::header::CONTENT_TYPE, ct);
            }
            r
        }
        Ok(Answer::Listen(stream, permit)) => relay(stream, permit),
    }
}

/// The JSON-RPC messages one message's answer puts into a body of many (a batch, the legacy
/// SSE stream): a refusal with a JSON-RPC body is one of them.
pub(crate) async fn messages_of(
    id: Option<&Value>,
    answer: Result<Answer, ProxyError>,
) -> Vec<Value> {
    match answer {
        Ok(answer) => answer.into_messages().await,
        Err(e) => match e.mapping().body {
            crate::error::Body::JsonRpc(_) => vec![e.body(id)],
            crate::error::Body::Envelope(_) => Vec::new(),
        },
    }
}
