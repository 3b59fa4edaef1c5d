//! `call_tool` (and a call by exposed name): the owning server's `tools/call`, run through the
//! same typed pipeline as `POST /{server}/mcp` ([`pipeline::run`]), so policy, write
//! protection, tool integrity, rate limits, the concurrency limit, the result cap, upstream
//! credentials, metrics and the audit event (naming the real server and tool) are exactly
//! those of the per-server endpoint. No HTTP inside the process: the answer comes back typed.
//!
//! Upstreams that keep sessions need one: the pipeline opens it for the gateway's own use
//! ([`pipeline::open_upstream_session`], neither audited nor counted as a request), once per
//! caller and server, and it is kept until the route changes or the upstream forgets it (then
//! it is opened again, once).

use std::sync::Arc;
use std::time::Instant;

use http::HeaderMap;
use serde_json::{Value, json};

use crate::caller::Caller;
use crate::error::ProxyError;
use crate::jsonrpc::{Era, Message, codes};
use crate::proxy::pipeline::{self, Answer, Request};
use crate::proxy::{AppState, Call};
use crate::routes::{Route, Routes};

use super::catalog::Entry;

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

    /// Calls `entry` with `arguments`: the server's final response (its id is `id`).
    /// `permitted` is whether the caller's view shows the tool (when not, no upstream session
    /// is opened: the pipeline refuses and audits the call first).
    pub async fn call_tool(
        &self,
        entry: &Entry,
        arguments: Value,
        permitted: bool,
        id: &Value,
    ) -> Result<Value, ProxyError> {
        let unknown = || ProxyError::UnknownTool(entry.exposed.clone());
        let Some(route) = self.routes.get(&entry.server).cloned() else {
            return Err(unknown());
        };
        let sessions = &self.gw.aggregate.sessions;
        let mut message = Some(
            Message::from_value(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": entry.tool, "arguments": arguments}}))
            .expect("a tools/call request is a JSON-RPC request"),
        );
        let no_headers = HeaderMap::new();
        let era = Era::Legacy { version: None };
        let mut first = true;
        while let Some(this) = message.take() {
            let call = self.call(&route);
            let remembered = if permitted {
                sessions.get(self.caller, &route)
            } else {
                Some(None)
            };
            let session = match remembered {
                Some(s) => s,
                None => {
                    let s = pipeline::open_upstream_session(&call).await?;
                    sessions.put(self.caller, &route, s.clone());
                    s
                }
            };
            // A session the upstream may forget: keep the request for one more try on a new one.
            if session.is_some() && std::mem::take(&mut first) {
                message = Some(this.clone());
            }
            let request = Request {
                call: &call,
                headers: &no_headers,
                era: &era,
                session: session.as_ref(),
                message: this,
                raw: None,
            };
            match pipeline::run(request).await {
                Ok(Answer::UpstreamStatus(u)) if u.session_lost => {
                    sessions.forget(self.caller, &route);
                }
                answer => return final_response(answer, entry).await,
            }
        }
        Err(ProxyError::UpstreamSessionLost(entry.server.clone()))
    }
}

/// The server's final response to the forwarded call, or why there is none.
async fn final_response(
    answer: Result<Answer, ProxyError>,
    entry: &Entry,
) -> Result<Value, ProxyError> {
    match answer {
        Ok(Answer::Final(f)) => Ok(f.into_value()),
        Ok(Answer::Stream(s)) => s.final_message().await,
        Ok(Answer::UpstreamStatus(u)) => {
            let error = serde_json::from_slice::<Value>(&u.body)
                .ok()
                .and_then(|v| v.get("error").cloned());
            let code = error
                .as_ref()
                .and_then(|e| e.get("code"))
                .and_then(Value::as_i64);
            let message = error
                .as_ref()
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str);
            Err(ProxyError::UpstreamAnswered {
                status: u.status,
                code: code.unwrap_or(codes::INTERNAL_ERROR),
                message: match message {
                    Some(m) => m.to_owned(),
                    None => format!(
                        "the server {} gave no answer (HTTP {})",
                        entry.server, u.status
                    ),
                },
            })
        }
        Ok(Answer::NoContent(_) | Answer::Listen(..)) => Err(ProxyError::NoResponse),
        // To this caller a tool it may not use does not exist, whatever the server calls it.
        Err(ProxyError::UnknownTool(_) | ProxyError::InsufficientScope { .. }) => {
            Err(ProxyError::UnknownTool(entry.exposed.clone()))
        }
        Err(e) => Err(e),
    }
}
