//! `POST/GET/DELETE /mcp`: the aggregated endpoint's MCP surface, in both protocol eras.
//!
//! The gateway is the server here: it answers `initialize`, `ping`, `server/discover`,
//! `tools/list` and `subscriptions/listen` itself, runs `discover_tools` in-process, and hands
//! every other tool call to the owning server's typed pipeline ([`super::call`]). Its refusals
//! are [`ProxyError`]s, recorded like the per-server endpoint's. Sessions are
//! sealed like the per-server ones (for the reserved server path `mcp`) and hold no state, so
//! any replica serves any request; a request without a session id is served as well.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode};
use mcpgw_core::telemetry::RequestId;
use serde_json::{Map, Value, json};

use super::SESSION_SERVER;
use super::call::Forward;
use super::catalog::{Entry, View};
pub use super::{MAX_NAME_CHARS, Mode};
use crate::caller::Caller;
use crate::error::ProxyError;
use crate::jsonrpc::{self, Era, Incoming, Kind, Message};
use crate::proxy::{self, AppState, Door, Refused};
use crate::session::SessionState;
use crate::sse;

const SESSION_HEADER: &str = "mcp-session-id";

/// `?mode=progressive|all` (the only query parameter), else the configured mode.
fn mode_of(gw: &AppState, query: Option<&str>) -> Result<Mode, String> {
    let mut mode = gw.config.aggregate.mode;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let problem = match (key, value) {
            ("mode", "progressive") => {
                mode = Mode::Progressive;
                continue;
            }
            ("mode", "all") => {
                mode = Mode::All;
                continue;
            }
            ("mode", _) => "query parameter `mode` must be `progressive` or `all`".to_owned(),
            _ => format!(
                "unknown query parameter `{}`; /mcp takes only `mode`",
                key.chars().take(64).collect::<String>()
            ),
        };
        return Err(problem);
    }
    Ok(mode)
}

/// Where the protected resource metadata of `/mcp` is (RFC 9728, path form).
fn metadata_url(gw: &AppState) -> String {
    format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        gw.public_base
    )
}

/// The entry of a request to `/mcp`: where its refusals are recorded, and its caller.
async fn enter<'a>(
    gw: &'a AppState,
    headers: &HeaderMap,
    request_id: &'a str,
) -> Result<(Door<'a>, Caller), Refused> {
    let door = Door::new(gw, SESSION_SERVER, request_id);
    let caller = door.authenticate(headers, || metadata_url(gw)).await?;
    Ok((door, caller))
}

/// Requests to `/mcp` answered by the gateway itself are counted under the server label
/// `mcp`; forwarded tool calls are counted (and audited) under their real server.
fn count(gw: &AppState, method: &str, status: &str) {
    let method = match method {
        "initialize"
        | "ping"
        | "tools/list"
        | "tools/call"
        | "server/discover"
        | "subscriptions/listen"
        | "notifications" => method,
        _ => "other",
    };
    gw.metrics
        .requests
        .with_label_values(&[SESSION_SERVER, method, "allowed", status])
        .inc();
}

/// One request to `/mcp`, authenticated.
struct Ctx {
    gw: AppState,
    caller: Caller,
    request_id: String,
    mode: Mode,
    modern: bool,
}

/// `POST /mcp`
pub async fn post(
    State(gw): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    request: axum::extract::Request,
) -> Result<Response, Refused> {
    let (parts, body) = request.into_parts();
    // A bad query is refused before the token is looked at, like an unknown server.
    let mode = mode_of(&gw, parts.uri.query()).map_err(|problem| {
        let door = Door::new(&gw, SESSION_SERVER, &request_id);
        door.refuse(ProxyError::InvalidQuery(problem), None)
    })?;
    let (door, caller) = enter(&gw, &parts.headers, &request_id).await?;
    let body = proxy::read_body(body, gw.config.max_body_bytes)
        .await
        .map_err(|e| door.refuse(e, None))?;
    let incoming =
        Incoming::parse(&body).map_err(|e| door.refuse(ProxyError::Malformed(e), None))?;
    let era = match jsonrpc::era_of(&parts.headers, &incoming) {
        Ok(era) => era,
        Err(problem) => {
            let id = match &incoming {
                Incoming::Single(m) => m.id().cloned(),
                Incoming::Batch(_) => None,
            };
            return Err(door.refuse(ProxyError::Headers(problem), id.as_ref()));
        }
    };
    // The session (session era only; stateless requests ignore the header, as the spec says).
    if let Era::Legacy { .. } = era {
        door.session(&parts.headers, &caller)?;
    }
    let ctx = Ctx {
        gw,
        caller,
        request_id,
        mode,
        modern: matches!(era, Era::Modern { .. }),
    };
    Ok(match incoming {
        Incoming::Single(message) => ctx.one(message).await,
        Incoming::Batch(messages) => {
            let mut answers = Vec::new();
            for message in messages {
                match ctx.answer(message).await {
                    Some(Answered::Message { message, .. }) => answers.push(message),
                    Some(Answered::Refused(e, id)) => {
                        if let crate::error::Body::JsonRpc(_) = e.mapping().body {
                            answers.push(e.body(Some(&id)));
                        }
                    }
                    // A stream has no place in a batch's one array.
                    Some(Answered::Stream(_)) | None => {}
                }
            }
            if answers.is_empty() {
                return Ok(StatusCode::ACCEPTED.into_response());
            }
            proxy::json_response(StatusCode::OK, &Value::Array(answers))
        }
    })
}

pub(super) fn invalid(message: String) -> ProxyError {
    ProxyError::InvalidParams(message)
}

/// What a method of `/mcp` gives.
enum Done {
    /// A result for the caller's request.
    Result(Value),
    /// A forwarded call's final response from its server (its id is the caller's: the call
    /// ran with it), a result or the server's own JSON-RPC error.
    Response(Value),
}

/// The answer to one message of `/mcp`.
enum Answered {
    /// A JSON-RPC response (with the session an `initialize` opened).
    Message {
        message: Value,
        session: Option<HeaderValue>,
    },
    /// Refused, for the request with this id.
    Refused(ProxyError, Value),
    /// A stream (`subscriptions/listen`).
    Stream(Response),
}

impl Ctx {
    async fn one(&self, message: Message) -> Response {
        match self.answer(message).await {
            None => StatusCode::ACCEPTED.into_response(),
            Some(Answered::Message { message, session }) => {
                let mut r = proxy::json_response(StatusCode::OK, &message);
                if let Some(sid) = session {
                    r.headers_mut().insert(SESSION_HEADER, sid);
                }
                r
            }
            Some(Answered::Refused(e, id)) => e.into_response(Some(&id)),
            Some(Answered::Stream(r)) => r,
        }
    }

    /// One message; `None` for notifications and responses (nothing to answer).
    async fn answer(&self, message: Message) -> Option<Answered> {
        let (id, method) = match message.kind.clone() {
            Kind::Request { id, method } => (id, method),
            // Notifications (initialized, cancelled) and responses: nothing to do; the
            // gateway sends no requests to `/mcp` clients.
            Kind::Notification { .. } | Kind::Response { .. } => {
                count(&self.gw, "notifications", "ok");
                return None;
            }
        };
        let params = message.params().cloned().unwrap_or_default();
        let result = match method.as_str() {
            "initialize" => return Some(self.initialize(&id, &params)),
            "subscriptions/listen" => return Some(Answered::Stream(self.listen(id, &params))),
            "ping" => Ok(Done::Result(json!({}))),
            "server/discover" => Ok(Done::Result(self.discover_result())),
            "tools/list" => Ok(Done::Result(self.tools_list())),
            "tools/call" => self.tools_call(&id, &params).await,
            _ => Err(ProxyError::NotOffered(format!(
                "{} is not offered by the aggregated endpoint (it serves tools; use /{{server}}/mcp for prompts and resources)",
                method.chars().take(64).collect::<String>()
            ))),
        };
        let stamp = |result: &mut Value| {
            if self.modern
                && let Some(obj) = result.as_object_mut()
            {
                obj.entry("resultType").or_insert(json!("complete"));
                if method == "tools/list" {
                    // Filtered per caller: never from a shared cache.
                    obj.insert("ttlMs".into(), json!(0));
                    obj.insert("cacheScope".into(), json!("private"));
                }
            }
        };
        let message = match result {
            Ok(Done::Result(mut result)) => {
                stamp(&mut result);
                jsonrpc::result_response(id, result)
            }
            Ok(Done::Response(mut response)) => {
                if let Some(result) = response.get_mut("result") {
                    stamp(result);
                }
                response
            }
            Err(e) => {
                count(&self.gw, &method, e.mapping().status.as_str());
                return Some(Answered::Refused(e, id));
            }
        };
        // A server's own JSON-RPC error is counted as the answer it was (HTTP 200).
        let label = if message.get("error").is_some() {
            "200"
        } else {
            "ok"
        };
        count(&self.gw, &method, label);
        Some(Answered::Message {
            message,
            session: None,
        })
    }

    fn server_info() -> Value {
        json!({"name": "mcpgw", "title": "mcpgw: all your tools", "version": env!("CARGO_PKG_VERSION")})
    }

    fn instructions(&self) -> &'static str {
        match self.mode {
            Mode::Progressive => {
                "Tools of many servers. Find the ones for a task with discover_tools, then run one with call_tool."
            }
            Mode::All => "Tools of many servers, each named server__tool.",
        }
    }

    fn initialize(&self, id: &Value, params: &Map<String, Value>) -> Answered {
        let requested = params.get("protocolVersion").and_then(Value::as_str);
        let version = jsonrpc::negotiate_legacy(requested);
        let result = json!({
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": true}},
            "serverInfo": Self::server_info(),
            "instructions": self.instructions(),
        });
        let message = jsonrpc::result_response(id.clone(), result);
        let state = SessionState {
            server: SESSION_SERVER.to_owned(),
            upstream: None,
            version: version.to_owned(),
            caller: self.caller.digest.to_string(),
            issued: chrono::Utc::now().timestamp(),
        };
        let session = self
            .gw
            .sessions
            .seal(&state)
            .ok()
            .and_then(|sid| HeaderValue::from_str(&sid).ok());
        if session.is_some() {
            self.gw.metrics.sessions_started.inc();
        }
        count(&self.gw, "initialize", "ok");
        Answered::Message { message, session }
    }

    fn discover_result(&self) -> Value {
        json!({
            "supportedVersions": jsonrpc::supported_versions(),
            "capabilities": {"tools": {"listChanged": true}},
            "serverInfo": Self::server_info(),
            "instructions": self.instructions(),
            "resultType": "complete",
            "ttlMs": 0,
            "cacheScope": "private",
        })
    }

    fn tools_list(&self) -> Value {
        let routes = self.gw.table.current();
        let view = View::new(&routes, &self.caller.identity);
        let tools = self
            .gw
            .aggregate
            .catalog
            .with(&routes, |catalog| match self.mode {
                Mode::All => catalog.all(&view),
                Mode::Progressive => {
                    let mut tools = super::meta::meta_tools(self.gw.config.aggregate.max_results);
                    tools.extend(
                        self.gw
                            .config
                            .aggregate
                            .always_on
                            .iter()
                            .filter_map(|name| catalog.get(name))
                            .filter_map(|entry| view.shown(entry)),
                    );
                    tools
                }
            });
        json!({"tools": tools})
    }

    async fn tools_call(
        &self,
        id: &Value,
        params: &Map<String, Value>,
    ) -> Result<Done, ProxyError> {
        let Some(name) = params.get("name").and_then(Value::as_str) else {
            return Err(invalid("params.name must be the name of a tool".into()));
        };
        let arguments = arguments_of(params.get("arguments"), "params.arguments")?;
        match name {
            "discover_tools" => {
                super::meta::discover(&self.gw, &self.caller.identity, &arguments).map(Done::Result)
            }
            "call_tool" => {
                let Some(target) = arguments.get("name").and_then(Value::as_str) else {
                    return Err(invalid(
                        "call_tool: `name` must be a tool name from discover_tools (server__tool)"
                            .into(),
                    ));
                };
                let inner = arguments_of(arguments.get("arguments"), "call_tool: `arguments`")?;
                self.forward(target, inner, id).await.map(Done::Response)
            }
            other => self.forward(other, arguments, id).await.map(Done::Response),
        }
    }

    /// A call by exposed name, through the owning server's pipeline.
    async fn forward(&self, name: &str, arguments: Value, id: &Value) -> Result<Value, ProxyError> {
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(invalid(format!(
                "the tool name must be 1 to {MAX_NAME_CHARS} characters"
            )));
        }
        let routes = self.gw.table.current();
        let found: Option<(Arc<Entry>, bool)> =
            self.gw.aggregate.catalog.with(&routes, |catalog| {
                let entry = catalog.get(name)?;
                let permitted = View::new(&routes, &self.caller.identity)
                    .shown(entry)
                    .is_some();
                Some((Arc::clone(entry), permitted))
            });
        let Some((entry, permitted)) = found else {
            return Err(ProxyError::UnknownTool(name.to_owned()));
        };
        let forward = Forward {
            gw: &self.gw,
            routes: &routes,
            caller: &self.caller,
            request_id: &self.request_id,
        };
        forward.call_tool(&entry, arguments, permitted, id).await
    }

    /// `subscriptions/listen` (2026-07-28): an acknowledgement, then `tools/list_changed`
    /// whenever the caller's tools change, if it asked for them.
    fn listen(&self, id: Value, params: &Map<String, Value>) -> Response {
        let permit = match proxy::stream_permit(&self.gw, &self.caller) {
            Ok(p) => p,
            Err(e) => return e.into_response(Some(&id)),
        };
        count(&self.gw, "subscriptions/listen", "ok");
        let wanted = params
            .get("notifications")
            .and_then(|n| n.get("toolsListChanged"))
            == Some(&Value::Bool(true));
        let mut honored = Map::new();
        if wanted {
            honored.insert("toolsListChanged".into(), Value::Bool(true));
        }
        let stamp = move |mut message: Value| {
            message["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] = id.clone();
            sse::Event::message(message.to_string()).encode()
        };
        let ack = stamp(json!({
            "jsonrpc": "2.0",
            "method": "notifications/subscriptions/acknowledged",
            "params": {"notifications": honored},
        }));
        let changes =
            super::notify::list_changed(Arc::clone(&self.gw), Arc::clone(&self.caller.identity))
                .filter(move |_| futures::future::ready(wanted))
                .map(stamp);
        proxy::relay(
            futures::stream::once(futures::future::ready(ack)).chain(changes),
            permit,
        )
    }
}

/// A tool call's `arguments`: an object, or absent (= `{}`).
fn arguments_of(value: Option<&Value>, field: &str) -> Result<Value, ProxyError> {
    match value {
        None | Some(Value::Null) => Ok(json!({})),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err(invalid(format!("{field} must be a JSON object"))),
    }
}

/// `GET /mcp`: the session era's stream, carrying `notifications/tools/list_changed`.
pub async fn get(
    State(gw): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    let (door, caller) = enter(&gw, &headers, &request_id).await?;
    door.get_stream(&headers)?;
    door.required_session(&headers, &caller, "the GET stream")?;
    let permit = door.stream(&caller)?;
    let changes = super::notify::list_changed(Arc::clone(&gw), Arc::clone(&caller.identity))
        .map(|n| sse::Event::message(n.to_string()).encode());
    Ok(proxy::relay(changes, permit))
}

/// `DELETE /mcp`: sessions hold no state, so ending one only needs a valid one.
pub async fn delete(
    State(gw): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    let (door, caller) = enter(&gw, &headers, &request_id).await?;
    door.required_session(&headers, &caller, "DELETE")?;
    gw.metrics.sessions_ended.inc();
    Ok(StatusCode::OK.into_response())
}
