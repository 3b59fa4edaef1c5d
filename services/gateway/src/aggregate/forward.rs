//! `call_tool` (and a call by exposed name): the owning server's `tools/call`, run through the
//! per-server pipeline itself ([`proxy::handle_post`]), so policy, write protection, tool
//! integrity, rate limits, the concurrency limit, the result cap, upstream credentials,
//! metrics and the audit event (naming the real server and tool) are exactly those of
//! `POST /{server}/mcp`.
//!
//! Upstreams that keep sessions need one: the gateway opens it with `initialize` through the
//! same pipeline, once per caller and server, and keeps the sealed id (bound to that caller and
//! server, as any client's is) until the route changes or the upstream forgets it.

use std::sync::Arc;
use std::time::Instant;

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::caller::Caller;
use crate::jsonrpc::{self, codes};
use crate::proxy::{self, AppState, Call};
use crate::routes::{Route, Routes};

use super::catalog::Entry;

const SESSION_HEADER: &str = "mcp-session-id";

/// Why a call did not produce a result: the HTTP status and JSON-RPC error to answer with.
pub struct Refused {
    pub status: StatusCode,
    pub code: i64,
    pub message: String,
    /// `Retry-After` of a rate limit or a busy server, passed on.
    pub retry_after: Option<HeaderValue>,
}

impl Refused {
    /// What a tool the caller may not use gets: the same as one that does not exist.
    pub fn unknown_tool(name: &str) -> Self {
        Self {
            status: StatusCode::OK,
            code: codes::INVALID_PARAMS,
            message: format!("Unknown tool: {name}"),
            retry_after: None,
        }
    }

    fn upstream(message: String) -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            code: codes::INTERNAL_ERROR,
            message,
            retry_after: None,
        }
    }
}

/// What one forwarded call needs.
pub struct Forward<'a> {
    pub gw: &'a AppState,
    pub routes: &'a Arc<Routes>,
    pub caller: &'a Caller,
    pub request_id: &'a str,
}

impl Forward<'_> {
    fn call(&self, route: &Arc<Route>) -> Arc<Call> {
        Arc::new(Call {
            gw: Arc::clone(self.gw),
            routes: Arc::clone(self.routes),
            route: Arc::clone(route),
            caller: self.caller.clone(),
            request_id: self.request_id.to_owned(),
            started: Instant::now(),
        })
    }

    /// Calls `entry` with `arguments`; `permitted` is whether the caller's view shows it (when
    /// not, no upstream session is opened: the pipeline refuses and audits the call first).
    pub async fn call_tool(
        &self,
        entry: &Entry,
        arguments: Value,
        permitted: bool,
        id: &Value,
    ) -> Result<Value, Refused> {
        let Some(route) = self.routes.get(&entry.server).cloned() else {
            return Err(Refused::unknown_tool(&entry.exposed));
        };
        let sessions = &self.gw.aggregate.sessions;
        let body = Bytes::from(
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                   "params": {"name": entry.tool, "arguments": arguments}})
            .to_string(),
        );
        for attempt in 0..2 {
            let session = if !permitted {
                None
            } else if let Some(s) = sessions.get(self.caller, &route) {
                s
            } else {
                let s = self.open_session(&route).await?;
                sessions.put(self.caller, &route, s.clone());
                s
            };
            let mut headers = HeaderMap::new();
            if let Some(s) = &session
                && let Ok(v) = HeaderValue::from_str(s)
            {
                headers.insert(SESSION_HEADER, v);
            }
            let response = proxy::handle_post(self.call(&route), headers, body.clone()).await;
            let status = response.status();
            // The upstream (or the seal) no longer knows the session: open a new one, once.
            if status == StatusCode::NOT_FOUND && session.is_some() && attempt == 0 {
                sessions.forget(self.caller, &route);
                continue;
            }
            return self.answer(response, entry, id).await;
        }
        Err(Refused::upstream(
            "the server lost the gateway's session twice".into(),
        ))
    }

    /// Reads the pipeline's answer to the forwarded `tools/call`.
    async fn answer(
        &self,
        response: Response,
        entry: &Entry,
        id: &Value,
    ) -> Result<Value, Refused> {
        let status = response.status();
        // No rule grants tools/call there: to this caller the tool does not exist.
        if status == StatusCode::FORBIDDEN {
            return Err(Refused::unknown_tool(&entry.exposed));
        }
        let retry_after = response.headers().get(http::header::RETRY_AFTER).cloned();
        let max = self.gw.config.upstream.max_message_bytes;
        let messages = proxy::collect_messages(response, max).await;
        let last = messages.into_iter().rev().find(|m| {
            m.get("id") == Some(id) || (!status.is_success() && m.get("error").is_some())
        });
        let Some(mut last) = last else {
            return Err(Refused {
                status: if status.is_success() {
                    StatusCode::BAD_GATEWAY
                } else {
                    status_of(status)
                },
                code: codes::INTERNAL_ERROR,
                message: format!("the server {} gave no answer (HTTP {status})", entry.server),
                retry_after,
            });
        };
        if let Some(result) = last.get_mut("result") {
            return Ok(result.take());
        }
        let code = last
            .pointer("/error/code")
            .and_then(Value::as_i64)
            .unwrap_or(codes::INTERNAL_ERROR);
        let message = last
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("the server's answer was not understood")
            .to_owned();
        if code == codes::INVALID_PARAMS && message == format!("Unknown tool: {}", entry.tool) {
            return Err(Refused::unknown_tool(&entry.exposed));
        }
        Err(Refused {
            status: status_of(status),
            code,
            message,
            retry_after,
        })
    }

    /// `initialize` + `notifications/initialized` through the pipeline; the sealed session id
    /// (none when the upstream keeps no sessions, or the gateway owns the upstream session).
    async fn open_session(&self, route: &Arc<Route>) -> Result<Option<String>, Refused> {
        let init = json!({"jsonrpc": "2.0", "id": "mcpgw-aggregate", "method": "initialize",
            "params": {"protocolVersion": jsonrpc::LATEST_LEGACY, "capabilities": {},
                       "clientInfo": {"name": "mcpgw-aggregate", "version": env!("CARGO_PKG_VERSION")}}});
        let response = proxy::handle_post(
            self.call(route),
            HeaderMap::new(),
            Bytes::from(init.to_string()),
        )
        .await;
        let status = response.status();
        let session = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let messages =
            proxy::collect_messages(response, self.gw.config.upstream.max_message_bytes).await;
        let version = messages
            .iter()
            .find_map(|m| m.pointer("/result/protocolVersion").and_then(Value::as_str))
            .map(str::to_owned);
        let Some(version) = version.filter(|_| status.is_success()) else {
            let why = messages
                .iter()
                .find_map(|m| m.pointer("/error/message").and_then(Value::as_str))
                .unwrap_or("no initialize result");
            return Err(Refused::upstream(format!(
                "the server {} did not start a session for the gateway (HTTP {status}: {why})",
                route.path()
            )));
        };
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&version) {
            headers.insert("mcp-protocol-version", v);
        }
        if let Some(s) = &session
            && let Ok(v) = HeaderValue::from_str(s)
        {
            headers.insert(SESSION_HEADER, v);
        }
        let initialized =
            Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        let _ = proxy::handle_post(self.call(route), headers, initialized).await;
        Ok(session)
    }
}

/// The status to answer with: limits and upstream failures keep theirs (429 with its
/// Retry-After, 503, 502, 504); any other refusal of the internal request is the upstream's
/// doing, never something the `/mcp` client can fix (a 404 would even end its session).
fn status_of(status: StatusCode) -> StatusCode {
    match status.as_u16() {
        200..=299 => StatusCode::OK,
        429 | 502 | 503 | 504 => status,
        _ => StatusCode::BAD_GATEWAY,
    }
}
