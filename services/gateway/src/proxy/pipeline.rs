//! The typed pipeline under both MCP endpoints: one message for one server, taken apart by the
//! edge that received it ([`Request`]), decided (policy, rate limits, concurrency), forwarded,
//! and answered as an [`Answer`]. No HTTP or JSON-RPC error shape is made here: the edges
//! (`proxy::post` for `/{server}/mcp`, `aggregate::endpoint` for `/mcp`) make them.
//!
//! Every request whose method is known leaves through one [`Exit`]: [`run`] closes it at its
//! single return point with the answer's status, or hands it to the [`Streamed`] answer, which
//! closes it when the final response passes (or the stream ends, or the client leaves).

use super::*;

/// One JSON-RPC message for one server.
pub struct Request<'a> {
    pub call: &'a Arc<Call>,
    /// The client's headers (the ones `FORWARDED_HEADERS` names go to an HTTP upstream).
    pub headers: &'a HeaderMap,
    pub era: &'a Era,
    /// The opened session (session era only).
    pub session: Option<&'a SessionState>,
    pub message: Message,
    /// The bytes as received, when the message is forwarded as it is.
    pub raw: Option<Bytes>,
}

/// What a request became.
pub enum Answer {
    /// The final response, filtered or cut.
    Final(Final),
    /// Events that end with the final response, still to be read ([`Streamed::next`]).
    /// (Boxed: it is large, and answers move through a few frames.)
    Stream(Box<Streamed>),
    /// Nothing to answer but this status (a notification or response taken: 202 or the
    /// upstream's status; a notification the caller may not send: 403).
    NoContent(StatusCode),
    /// The upstream answered with an error status; passed on as it is.
    UpstreamStatus(UpstreamStatus),
    /// A stream that lives as long as the client wants (`subscriptions/listen` on a shared
    /// upstream), with what must live as long as it.
    Listen(BoxStream<'static, Bytes>, Permit),
}

/// The final response; at least one of `value` and `raw` is set.
pub struct Final {
    /// The message, when the gateway read it whole (to change it, or to answer in its place).
    pub value: Option<Value>,
    /// The upstream's bytes, when the message was not changed (sent as they are).
    pub raw: Option<Bytes>,
    /// Headers of the answer (a new session's `Mcp-Session-Id`).
    pub headers: HeaderMap,
    pub(super) status: Status<'static>,
}

pub struct UpstreamStatus {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
    /// A 404 to the upstream session the request carried: the upstream no longer knows it.
    pub session_lost: bool,
}

/// Permits and clean-up that live as long as an answer.
pub type Permit = Box<dyn std::any::Any + Send>;

impl Final {
    /// The message as a value (read from the upstream's bytes when it was only looked into).
    pub fn into_value(self) -> Value {
        match (self.value, self.raw) {
            (Some(value), _) => value,
            (None, Some(raw)) => serde_json::from_slice(&raw).unwrap_or(Value::Null),
            (None, None) => Value::Null,
        }
    }

    /// The message as it goes out.
    pub fn into_bytes(self) -> Bytes {
        match (self.raw, self.value) {
            (Some(raw), _) => raw,
            (None, value) => Bytes::from(serde_json::to_vec(&value).unwrap_or_default()),
        }
    }
}

impl Answer {
    fn status(&self) -> Status<'static> {
        match self {
            Self::Final(f) => f.status,
            Self::UpstreamStatus(_) => Status::UpstreamError,
            Self::Stream(_) | Self::NoContent(_) | Self::Listen(..) => Status::Ok,
        }
    }

    /// The JSON-RPC messages of this answer, for the answers that go into one body (batches,
    /// the legacy SSE transport): the final response, every message of a stream, the messages
    /// of an upstream's error body.
    pub(crate) async fn into_messages(self) -> Vec<Value> {
        match self {
            Self::Final(f) => vec![f.into_value()],
            Self::Stream(mut s) => {
                let mut out = Vec::new();
                while let Some(e) = s.next().await {
                    match e {
                        Event::Final { value, .. } => out.push(value),
                        Event::Passed(e) => {
                            if e.is_message()
                                && let Ok(v) = serde_json::from_str(&e.data)
                            {
                                out.push(v);
                            }
                        }
                    }
                }
                out
            }
            Self::UpstreamStatus(u) => match serde_json::from_slice::<Value>(&u.body) {
                Ok(Value::Array(items)) => items,
                Ok(v) if v.get("jsonrpc").is_some() => vec![v],
                _ => Vec::new(),
            },
            Self::NoContent(_) | Self::Listen(..) => Vec::new(),
        }
    }
}

/// Runs one message through the pipeline; every request is recorded once (module comment).
pub async fn run(req: Request<'_>) -> Result<Answer, ProxyError> {
    let call = req.call;
    let (id, method) = match &req.message.kind {
        Kind::Request { id, method } => (id.clone(), method.clone()),
        Kind::Response { .. } => return forward_one_way(req, "response").await,
        Kind::Notification { method } => {
            if let Verdict::Forbidden { reason } = decide(call, method, None) {
                let outcome = Outcome {
                    audited: false,
                    ..Outcome::denied("notifications", None, reason)
                };
                Exit::new(call, outcome).close(Status::Denied);
                return Ok(Answer::NoContent(StatusCode::FORBIDDEN));
            }
            return forward_one_way(req, "notifications").await;
        }
    };
    let tool = if method == "tools/call" {
        req.message.target_name().map(str::to_owned)
    } else {
        None
    };
    let outcome = match decide(call, &method, tool.as_deref()) {
        Verdict::Forbidden { reason } => {
            let exit = Exit::new(call, Outcome::denied(&method, tool.as_deref(), reason));
            exit.close(Status::Denied);
            return Err(insufficient_scope(call, &method, tool.as_deref()));
        }
        Verdict::Hidden { reason } => {
            let tool = tool.unwrap_or_default();
            Exit::new(call, Outcome::denied(&method, Some(&tool), reason)).close(Status::Denied);
            return Err(ProxyError::UnknownTool(tool));
        }
        Verdict::Allow { matched } => {
            let mut outcome = Outcome::allowed(&method, tool.as_deref(), matched);
            outcome.modern = matches!(req.era, Era::Modern { .. });
            outcome
        }
    };
    if let Some(tool) = &tool
        && let Err(r) = check_rates(call, tool)
    {
        let mut denied = Outcome::denied(&method, Some(tool), "rate_limited");
        denied.matched = outcome.matched;
        return Err(Exit::new(call, denied).fail(ProxyError::RateLimited(r.seconds())));
    }
    let mut outcome = outcome;
    if tool.is_some() && call.route.entry.gateway.log_arguments {
        outcome.arguments = req
            .message
            .params()
            .and_then(|p| p.get("arguments"))
            .cloned();
    }
    let exit = Exit::new(call, outcome);
    // The single return point: the exit closes with the answer, or goes with the stream.
    match forward_request(req, &id, exit.outcome()).await {
        Err(e) => Err(exit.fail(e)),
        Ok(Answer::Stream(mut s)) => {
            s.exit = Some(exit);
            Ok(Answer::Stream(s))
        }
        Ok(answer) => {
            exit.close(answer.status());
            Ok(answer)
        }
    }
}

/// The 403 for a method the caller may not use, naming only the scopes that would allow it.
pub(super) fn insufficient_scope(call: &Call, method: &str, tool: Option<&str>) -> ProxyError {
    let policy = call.routes.policy.caller(&call.caller.identity);
    let scopes = policy.scopes_granting(call.server(), method, tool, caller::MAX_CHALLENGE_SCOPES);
    let detail = if method == "tools/call" && tool.is_none() {
        "tools/call needs the tool's name in params.name".to_owned()
    } else if scopes.is_empty() {
        format!(
            "your token does not allow {method} here and no scope would; ask the server's owner for access"
        )
    } else {
        format!(
            "your token does not allow {method} on this server; a token with one of the scopes named in WWW-Authenticate would"
        )
    };
    ProxyError::InsufficientScope {
        scopes: scopes.into_iter().map(str::to_owned).collect(),
        metadata_url: call.metadata_url(),
        detail,
    }
}

/// Notifications and responses from the client: to an HTTP upstream they go as they are; a
/// shared upstream gets cancellations and ignores the rest (it has no request to answer).
async fn forward_one_way(req: Request<'_>, label: &'static str) -> Result<Answer, ProxyError> {
    let (call, message) = (req.call, req.message);
    let exit = Exit::new(call, Outcome::allowed(label, None, None));
    let answer = match &call.route.upstream {
        Upstream::Http { .. } => {
            let body = req.raw.unwrap_or_else(|| {
                Bytes::from(serde_json::to_vec(&message.into_value()).unwrap_or_default())
            });
            // Counted when taken, whatever the upstream makes of it.
            exit.close(Status::Ok);
            let (headers, era, session) = (req.headers, req.era, req.session);
            let r = send_http(call, Method::POST, headers, era, session, Some(body)).await?;
            StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::ACCEPTED)
        }
        Upstream::Shared(shared) => {
            exit.close(Status::Ok);
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
            StatusCode::ACCEPTED
        }
    };
    Ok(Answer::NoContent(answer))
}

async fn forward_request(
    req: Request<'_>,
    id: &Value,
    outcome: &Outcome,
) -> Result<Answer, ProxyError> {
    let Request {
        call,
        headers,
        era,
        session,
        message,
        raw,
    } = req;
    // A listening stream lives as long as the client wants: it counts against the caller's
    // streams, not against the server's requests in flight.
    let listening = outcome.method == "subscriptions/listen";
    let permit: Permit = if listening {
        match call.gw.streams.acquire(
            call.caller.limit_key(),
            call.gw.config.limits.streams_per_caller,
            &call.gw.metrics.open_streams,
        ) {
            Some(p) => Box::new(p),
            None => return Err(ProxyError::TooManyStreams),
        }
    } else {
        match tokio::time::timeout(
            Duration::from_secs(5),
            Arc::clone(&call.route.in_flight).acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => Box::new(p),
            _ => return Err(ProxyError::Busy),
        }
    };
    let (events, headers, abandon) = match &call.route.upstream {
        Upstream::Http { .. } => {
            let initialize = outcome.method == "initialize";
            let (body, requested) = match raw {
                Some(raw) if !initialize => (raw, None),
                raw => {
                    let requested = initialize
                        .then(|| requested_version(&message))
                        .flatten()
                        .map(str::to_owned);
                    let body = raw.unwrap_or_else(|| {
                        Bytes::from(serde_json::to_vec(&message.into_value()).unwrap_or_default())
                    });
                    (body, requested)
                }
            };
            let response = send_http(call, Method::POST, headers, era, session, Some(body)).await?;
            let status = response.status();
            let mut extra = HeaderMap::new();
            if initialize
                && status.is_success()
                && let Some(sid) = new_session(call, requested.as_deref(), response.headers())?
            {
                extra.insert(SESSION_HEADER, sid);
            }
            if !status.is_success() {
                let carried = session.is_some_and(|s| s.upstream.is_some());
                let mut passed = upstream_status(call, response).await?;
                passed.session_lost = carried && passed.status == StatusCode::NOT_FOUND;
                return Ok(Answer::UpstreamStatus(passed));
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
        // Boxed: the shared-upstream future is ~15 KB; inline, every HTTP call would carry it.
        Upstream::Shared(shared) => {
            match Box::pin(shared_request(call, era, shared, message, id)).await {
                SharedAnswer::Direct(value, headers) => {
                    return Ok(Answer::Final(Final {
                        value: Some(value),
                        raw: None,
                        headers,
                        status: Status::Ok,
                    }));
                }
                SharedAnswer::Failed(e) => return Err(e),
                SharedAnswer::Pending(pending) => (pending_events(pending), HeaderMap::new(), None),
                SharedAnswer::Listen(params) => {
                    return Ok(Answer::Listen(listen(shared, id.clone(), params), permit));
                }
            }
        }
    };
    first_answer(call, id, outcome, events, headers, abandon, permit).await
}

fn requested_version(message: &Message) -> Option<&str> {
    message
        .params()
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str)
}

/// Sends `notifications/cancelled` upstream when a session-era client leaves before its
/// answer (2026-07-28 servers take the closed connection itself as the cancellation).
pub(super) struct Abandon {
    call: Arc<Call>,
    session: SessionState,
    id: Value,
}

impl Abandon {
    pub(super) fn fire(self) {
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

fn session_state(call: &Call, upstream: &str, version: &str) -> SessionState {
    SessionState {
        server: call.server().to_owned(),
        upstream: Some(upstream.to_owned()),
        version: version.to_owned(),
        caller: call.caller.digest.to_string(),
        issued: chrono::Utc::now().timestamp(),
    }
}

fn new_session(
    call: &Call,
    requested: Option<&str>,
    upstream_headers: &HeaderMap,
) -> Result<Option<HeaderValue>, ProxyError> {
    let Some(upstream) = upstream_headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let state = session_state(call, upstream, jsonrpc::negotiate_legacy(requested));
    match call.gw.sessions.seal(&state) {
        Ok(id) => {
            call.gw.metrics.sessions_started.inc();
            Ok(HeaderValue::from_str(&id).ok())
        }
        Err(e) => Err(ProxyError::SessionNotCarried(e.to_string())),
    }
}

/// The upstream session the aggregated endpoint needs on a server: `initialize` and
/// `notifications/initialized`, sent by the gateway for its own use. A step inside the
/// pipeline, not a client request: no policy, no metric, no audit event (the client's
/// `tools/call` that needs it is all of those). `None`: the upstream keeps no sessions (or,
/// for stdio and legacy SSE, the gateway holds the one session itself).
pub async fn open_upstream_session(call: &Arc<Call>) -> Result<Option<SessionState>, ProxyError> {
    if let Upstream::Shared(_) = &call.route.upstream {
        return Ok(None);
    }
    let init = json!({"jsonrpc": "2.0", "id": "mcpgw-aggregate", "method": "initialize",
        "params": {"protocolVersion": jsonrpc::LATEST_LEGACY, "capabilities": {},
                   "clientInfo": {"name": "mcpgw-aggregate", "version": env!("CARGO_PKG_VERSION")}}});
    let era = Era::Legacy { version: None };
    let none = HeaderMap::new();
    let body = Bytes::from(init.to_string());
    let response = send_http(call, Method::POST, &none, &era, None, Some(body)).await?;
    let status = response.status();
    if !status.is_success() {
        return Err(ProxyError::SessionNotCarried(format!(
            "the server answered the gateway's initialize with HTTP {status}"
        )));
    }
    let upstream = response
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut events = http_events(call, response);
    let mut version = None;
    while let Some(event) = events.next().await {
        let event = event.map_err(ProxyError::AnswerBroke)?;
        if let Ok(v) = serde_json::from_str::<Value>(&event.data)
            && v.get("id") == Some(&json!("mcpgw-aggregate"))
        {
            version = v
                .pointer("/result/protocolVersion")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if version.is_none() {
                return Err(ProxyError::SessionNotCarried(
                    "the server's initialize gave no result".into(),
                ));
            }
            break;
        }
    }
    let Some(version) = version else {
        return Err(ProxyError::NoResponse);
    };
    let Some(upstream) = upstream else {
        return Ok(None);
    };
    let state = session_state(call, &upstream, &version);
    let era = Era::Legacy {
        version: Some(version),
    };
    let initialized =
        Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    let _ = send_http(
        call,
        Method::POST,
        &none,
        &era,
        Some(&state),
        Some(initialized),
    )
    .await;
    Ok(Some(state))
}
