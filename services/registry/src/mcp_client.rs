//! A small MCP client for the registry's own calls to registered servers: health probes and
//! tool discovery.
//!
//! Why not rmcp's client: every request must carry the server's upstream credentials, and
//! some kinds are per request (SigV4 signs each body, OAuth tokens are refreshed), which
//! rmcp's transport cannot inject; and rmcp has no legacy HTTP+SSE client. This speaks just
//! what the registry needs: `server/discover` (2026-07-28), else `initialize` +
//! `notifications/initialized` (session era), then requests, then `DELETE` of the session.
//! Every URL goes through the egress policy exactly as in the gateway: the client resolves
//! names with core's `EgressResolver` (see [`mcpgw_core::egress::client_builder`]) and literal
//! IPs are checked with [`check_literal_ip`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use mcpgw_core::domain::{Endpoint, ServerRecord};
use mcpgw_core::egress::{EgressPolicy, check_literal_ip};
use mcpgw_core::secrets::Keyring;
use mcpgw_core::sse::Parser;
use mcpgw_core::upstream_auth::{UpstreamAuthContext, UpstreamCredentials};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use url::Url;

/// The session-era version offered in `initialize`.
pub const SESSION_VERSION: &str = "2025-11-25";
/// The stateless-era version tried first with `server/discover`.
pub const MODERN_VERSION: &str = "2026-07-28";
/// Largest answer read from a server (a full `tools/list` page fits).
const MAX_ANSWER_BYTES: usize = 8 << 20;
/// Most `tools/list` pages followed.
const MAX_PAGES: usize = 20;

/// Why a call to a server failed, in the words a health result uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("timeout")]
    Timeout,
    #[error("connection_refused")]
    Refused,
    #[error("connect_error: {0}")]
    Connect(String),
    /// 401 or 403.
    #[error("auth_failed: http_status {0}")]
    Auth(u16),
    #[error("http_status {0}")]
    Http(u16),
    /// 404 to a request carrying our session id: the server forgot the session (restart,
    /// expiry); the spec's answer is a new `initialize`.
    #[error("session_gone")]
    SessionGone,
    #[error("jsonrpc_error {code}: {message}")]
    JsonRpc { code: i64, message: String },
    #[error("protocol_error: {0}")]
    Protocol(String),
    #[error("egress_denied: {0}")]
    Egress(String),
    /// The server could not be set up (a credential that does not open, stdio, …).
    #[error("unusable: {0}")]
    Unusable(String),
}

/// The HTTP client for registered servers, agent cards and the embeddings provider: core's
/// egress client (no redirects, no proxy, every connected address checked at connect time).
pub fn http_client(egress: Arc<EgressPolicy>, connect_timeout: Duration) -> reqwest::Client {
    mcpgw_core::egress::client_builder(egress)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("mcpgw-registry/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a reqwest client with these settings builds")
}

/// Where and how to reach one server.
pub struct Target {
    pub url: Url,
    pub legacy_sse: bool,
    pub headers: HeaderMap,
    pub credentials: Option<UpstreamCredentials>,
}

impl Target {
    /// The target of a stored server, its secrets opened; stdio servers have none here (they
    /// run inside gateways).
    pub fn of(
        record: &ServerRecord,
        keyring: &Keyring,
        auth: &UpstreamAuthContext,
        egress: &EgressPolicy,
    ) -> Result<Target, Failure> {
        let (url, legacy_sse) = match &record.endpoint {
            Endpoint::StreamableHttp { url } => (url, false),
            Endpoint::Sse { url } => (url, true),
            Endpoint::Stdio { .. } => {
                return Err(Failure::Unusable(
                    "stdio servers run inside gateways; the registry cannot reach them".into(),
                ));
            }
        };
        let url = Url::parse(url).map_err(|e| Failure::Unusable(format!("endpoint.url: {e}")))?;
        check_literal_ip(egress, &url).map_err(Failure::Egress)?;
        let mut headers = HeaderMap::new();
        for (name, sealed) in &record.custom_headers {
            let field = format!("custom_headers.{name}");
            // Refused at registration; skipped here too for records stored before that rule.
            if mcpgw_core::domain::is_platform_header(name) {
                continue;
            }
            let value = record
                .open_secret(keyring, &field, sealed)
                .map_err(|e| Failure::Unusable(format!("{field}: {e}")))?;
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Failure::Unusable(format!("{field}: not a valid header name")))?;
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| Failure::Unusable(format!("{field}: not a valid header value")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let credentials = UpstreamCredentials::from_record(record, keyring, auth)
            .map_err(|e| Failure::Unusable(format!("upstream_auth: {e}")))?;
        Ok(Target {
            url,
            legacy_sse,
            headers,
            credentials: Some(credentials),
        })
    }
}

pub(crate) fn send_error(e: &reqwest::Error) -> Failure {
    if e.is_timeout() {
        return Failure::Timeout;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Failure::Refused;
        }
        text = s.to_string();
        source = s.source();
    }
    if text.contains("egress policy") {
        return Failure::Egress(text);
    }
    Failure::Connect(text)
}

fn status_error(status: StatusCode) -> Failure {
    match status.as_u16() {
        s @ (401 | 403) => Failure::Auth(s),
        s => Failure::Http(s),
    }
}

/// The result of a JSON-RPC response, or its error.
fn result_of(message: Value) -> Result<Value, Failure> {
    if let Some(error) = message.get("error") {
        return Err(Failure::JsonRpc {
            code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect(),
        });
    }
    message
        .get("result")
        .cloned()
        .ok_or_else(|| Failure::Protocol("a response without result or error".into()))
}

enum Mode {
    /// 2026-07-28: every request stands alone.
    Modern,
    /// Session era over Streamable HTTP.
    Session { id: Option<String>, version: String },
    /// Legacy HTTP+SSE: requests are POSTed to `post_url`, answers arrive on the stream.
    Sse {
        post_url: Url,
        inbox: mpsc::Receiver<Value>,
        reader: tokio::task::JoinHandle<()>,
        version: String,
    },
}

/// An open conversation with one server.
pub struct Session<'a> {
    http: &'a reqwest::Client,
    target: &'a Target,
    mode: Mode,
    next_id: u64,
    /// The `server/discover` or `initialize` result.
    pub server: Value,
}

impl<'a> Session<'a> {
    /// Connects and completes the handshake.
    pub async fn open(http: &'a reqwest::Client, target: &'a Target) -> Result<Self, Failure> {
        let mut session = Session {
            http,
            target,
            mode: Mode::Modern,
            next_id: 0,
            server: Value::Null,
        };
        if target.legacy_sse {
            session.open_sse().await?;
            return Ok(session);
        }
        match session.request("server/discover", json!({})).await {
            Ok(result) => {
                session.server = result;
                return Ok(session);
            }
            // A session-era server refuses the stateless request (400/404/405, or a
            // JSON-RPC error); anything about reachability or credentials is final.
            Err(Failure::Http(_) | Failure::JsonRpc { .. } | Failure::Protocol(_)) => {}
            Err(e) => return Err(e),
        }
        session.mode = Mode::Session {
            id: None,
            version: SESSION_VERSION.to_owned(),
        };
        session.initialize().await?;
        Ok(session)
    }

    /// The protocol version in use.
    pub fn protocol(&self) -> &str {
        match &self.mode {
            Mode::Modern => MODERN_VERSION,
            Mode::Session { version, .. } | Mode::Sse { version, .. } => version,
        }
    }

    async fn initialize(&mut self) -> Result<(), Failure> {
        let result = self
            .request_once(
                "initialize",
                json!({"protocolVersion": SESSION_VERSION, "capabilities": {},
                       "clientInfo": {"name": "mcpgw-registry", "version": env!("CARGO_PKG_VERSION")}}),
            )
            .await?;
        let negotiated = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or(SESSION_VERSION)
            .chars()
            .take(32)
            .collect::<String>();
        match &mut self.mode {
            Mode::Session { version, .. } | Mode::Sse { version, .. } => *version = negotiated,
            Mode::Modern => {}
        }
        self.server = result;
        self.notify("notifications/initialized").await
    }

    /// Sends a request and waits for its answer; if the server forgot our session, opens a new
    /// one once and repeats the request.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, Failure> {
        match self.request_once(method, params.clone()).await {
            Err(Failure::SessionGone) => {
                if let Mode::Session { id, .. } = &mut self.mode {
                    *id = None;
                }
                self.initialize().await?;
                self.request_once(method, params).await
            }
            other => other,
        }
    }

    async fn request_once(&mut self, method: &str, mut params: Value) -> Result<Value, Failure> {
        self.next_id += 1;
        let id = self.next_id;
        if matches!(self.mode, Mode::Modern) {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                "io.modelcontextprotocol/clientCapabilities": {},
            });
        }
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        if let Mode::Sse { .. } = self.mode {
            self.post(&message, method).await?;
            return self.await_sse_answer(id).await;
        }
        let response = self.post(&message, method).await?;
        if let Mode::Session { id: session, .. } = &mut self.mode
            && session.is_none()
            && let Some(s) = response.headers().get("mcp-session-id")
        {
            *session = s.to_str().ok().map(str::to_owned);
        }
        let answer = read_answer(response, id).await?;
        result_of(answer)
    }

    async fn notify(&mut self, method: &str) -> Result<(), Failure> {
        let message = json!({"jsonrpc": "2.0", "method": method});
        self.post(&message, method).await.map(drop)
    }

    /// POSTs one message with the headers of the current mode and the server's credentials.
    async fn post(&self, message: &Value, method: &str) -> Result<reqwest::Response, Failure> {
        let url = match &self.mode {
            Mode::Sse { post_url, .. } => post_url.clone(),
            _ => self.target.url.clone(),
        };
        let mut builder = self
            .http
            .post(url)
            .headers(self.target.headers.clone())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(serde_json::to_vec(message).expect("JSON serializes"));
        match &self.mode {
            Mode::Modern => {
                builder = builder
                    .header("mcp-protocol-version", MODERN_VERSION)
                    .header("mcp-method", method);
            }
            Mode::Session { id, version } => {
                if method != "initialize" {
                    builder = builder.header("mcp-protocol-version", version.as_str());
                }
                if let Some(id) = id {
                    builder = builder.header("mcp-session-id", id.as_str());
                }
            }
            Mode::Sse { .. } => {}
        }
        let response = self.send(builder).await?;
        if response.status() == StatusCode::NOT_FOUND
            && matches!(self.mode, Mode::Session { id: Some(_), .. })
        {
            return Err(Failure::SessionGone);
        }
        if !response.status().is_success() {
            return Err(status_error(response.status()));
        }
        Ok(response)
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> Result<reqwest::Response, Failure> {
        let mut request = builder
            .build()
            .map_err(|e| Failure::Unusable(e.to_string()))?;
        if let Some(c) = &self.target.credentials {
            c.apply_to_reqwest(&mut request)
                .await
                .map_err(|e| Failure::Unusable(format!("upstream_auth: {e}")))?;
        }
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| send_error(&e))?;
        if matches!(response.status().as_u16(), 401 | 403)
            && let Some(c) = &self.target.credentials
        {
            // A refused cached token is not reused by the next check.
            c.invalidate();
        }
        Ok(response)
    }

    /// Legacy HTTP+SSE: opens the stream, waits for the `endpoint` event, then initializes.
    async fn open_sse(&mut self) -> Result<(), Failure> {
        let builder = self
            .http
            .get(self.target.url.clone())
            .headers(self.target.headers.clone())
            .header("accept", "text/event-stream");
        let response = self.send(builder).await?;
        if !response.status().is_success() {
            return Err(status_error(response.status()));
        }
        let (endpoint_tx, mut endpoint_rx) = mpsc::channel::<String>(1);
        let (inbox_tx, inbox) = mpsc::channel::<Value>(64);
        let reader = tokio::spawn(async move {
            let mut parser = Parser::new(MAX_ANSWER_BYTES);
            let mut body = response.bytes_stream();
            while let Some(Ok(chunk)) = body.next().await {
                let chunk: bytes::Bytes = chunk;
                let Ok(events) = parser.feed(&chunk) else {
                    return;
                };
                for event in events {
                    if event.event.as_deref() == Some("endpoint") {
                        let _ = endpoint_tx.try_send(event.data);
                    } else if event.is_message()
                        && let Ok(message) = serde_json::from_str::<Value>(&event.data)
                        && inbox_tx.send(message).await.is_err()
                    {
                        return;
                    }
                }
            }
        });
        let Some(endpoint) = endpoint_rx.recv().await else {
            reader.abort();
            return Err(Failure::Protocol(
                "the SSE stream ended before an endpoint event".into(),
            ));
        };
        let post_url = self
            .target
            .url
            .join(endpoint.trim())
            .map_err(|e| Failure::Protocol(format!("endpoint event: {e}")))?;
        // The message endpoint must stay on the registered origin (else the server could send
        // our credentials elsewhere).
        if post_url.origin() != self.target.url.origin() {
            reader.abort();
            return Err(Failure::Protocol(
                "the endpoint event names another origin".into(),
            ));
        }
        self.mode = Mode::Sse {
            post_url,
            inbox,
            reader,
            version: SESSION_VERSION.to_owned(),
        };
        self.initialize().await
    }

    async fn await_sse_answer(&mut self, id: u64) -> Result<Value, Failure> {
        let Mode::Sse { inbox, .. } = &mut self.mode else {
            unreachable!("only in SSE mode")
        };
        while let Some(message) = inbox.recv().await {
            if message.get("id").and_then(Value::as_u64) == Some(id)
                && message.get("method").is_none()
            {
                return result_of(message);
            }
        }
        Err(Failure::Protocol("the SSE stream ended".into()))
    }

    /// Every tool the server lists (following `nextCursor`, up to a page limit).
    pub async fn list_tools(&mut self) -> Result<Vec<Value>, Failure> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let result = self.request("tools/list", params).await?;
            match result.get("tools").and_then(Value::as_array) {
                Some(page) => tools.extend(page.iter().cloned()),
                None => return Err(Failure::Protocol("tools/list without tools".into())),
            }
            cursor = result
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                return Ok(tools);
            }
        }
        Err(Failure::Protocol(format!(
            "tools/list has more than {MAX_PAGES} pages"
        )))
    }

    /// Whether the server declared `capabilities.tools.listChanged` (in its `server/discover`
    /// or `initialize` result).
    pub fn announces_tool_changes(&self) -> bool {
        self.server
            .pointer("/capabilities/tools/listChanged")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Opens the stream on which the server sends notifications: `subscriptions/listen` for
    /// tool-list changes (2026-07-28), the session's `GET` stream (session era), or the legacy
    /// SSE stream already open. The stream lives until the server ends it or [`close`](Self::close).
    pub async fn notifications(&mut self) -> Result<Notifications, Failure> {
        let response = match &mut self.mode {
            Mode::Sse { inbox, .. } => {
                // Answers to requests would arrive here too; this session sends none after.
                let inbox = std::mem::replace(inbox, mpsc::channel(1).1);
                return Ok(Notifications::from_inbox(inbox));
            }
            Mode::Modern => {
                self.next_id += 1;
                let message = json!({"jsonrpc": "2.0", "id": self.next_id,
                    "method": "subscriptions/listen",
                    "params": {"notifications": {"toolsListChanged": true},
                               "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                                         "io.modelcontextprotocol/clientCapabilities": {}}}});
                self.post(&message, "subscriptions/listen").await?
            }
            Mode::Session { id, version } => {
                let mut builder = self
                    .http
                    .get(self.target.url.clone())
                    .headers(self.target.headers.clone())
                    .header("accept", "text/event-stream")
                    .header("mcp-protocol-version", version.as_str());
                if let Some(id) = id {
                    builder = builder.header("mcp-session-id", id.as_str());
                }
                let response = self.send(builder).await?;
                if !response.status().is_success() {
                    // 405: the server offers no stream.
                    return Err(status_error(response.status()));
                }
                response
            }
        };
        let is_sse = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if !is_sse {
            return Err(Failure::Protocol(
                "the notification stream is not text/event-stream".into(),
            ));
        }
        Ok(Notifications {
            source: Source::Body(response.bytes_stream().boxed()),
            parser: Parser::new(MAX_ANSWER_BYTES),
            ready: std::collections::VecDeque::new(),
        })
    }

    /// Ends the session: `DELETE` for a session-era server (a refusal is fine: the spec lets
    /// servers answer 405), closing the stream for SSE.
    pub async fn close(self) {
        match &self.mode {
            Mode::Session { id: Some(id), .. } => {
                let builder = self
                    .http
                    .delete(self.target.url.clone())
                    .headers(self.target.headers.clone())
                    .header("mcp-session-id", id.as_str());
                let _ = self.send(builder).await;
            }
            Mode::Sse { reader, .. } => reader.abort(),
            _ => {}
        }
    }
}

/// Reads the answer with `id` from a JSON body or an SSE-framed one (skipping the server's
/// notifications and requests), within [`MAX_ANSWER_BYTES`].
async fn read_answer(response: reqwest::Response, id: u64) -> Result<Value, Failure> {
    let is_sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    let mut body = response.bytes_stream();
    let mut parser = Parser::new(MAX_ANSWER_BYTES);
    let mut json_body = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| send_error(&e))?;
        if !is_sse {
            if json_body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Failure::Protocol("answer too large".into()));
            }
            json_body.extend_from_slice(&chunk);
            continue;
        }
        let events = parser
            .feed(&chunk)
            .map_err(|e| Failure::Protocol(format!("SSE: {e}")))?;
        for event in events.into_iter().filter(|e| e.is_message()) {
            if let Ok(message) = serde_json::from_str::<Value>(&event.data)
                && message.get("id").and_then(Value::as_u64) == Some(id)
                && message.get("method").is_none()
            {
                return Ok(message);
            }
        }
    }
    if is_sse {
        return Err(Failure::Protocol(
            "the stream ended without an answer".into(),
        ));
    }
    serde_json::from_slice(&json_body).map_err(|e| Failure::Protocol(format!("not JSON: {e}")))
}

/// The server's notifications (messages with a `method`), from [`Session::notifications`].
pub struct Notifications {
    source: Source,
    parser: Parser,
    ready: std::collections::VecDeque<Value>,
}

enum Source {
    Body(futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>),
    Inbox(mpsc::Receiver<Value>),
}

impl Notifications {
    fn from_inbox(inbox: mpsc::Receiver<Value>) -> Self {
        Self {
            source: Source::Inbox(inbox),
            parser: Parser::new(MAX_ANSWER_BYTES),
            ready: std::collections::VecDeque::new(),
        }
    }

    /// The next notification; `Err` when the stream ended or broke (an event above
    /// [`MAX_ANSWER_BYTES`] breaks it).
    pub async fn next(&mut self) -> Result<Value, Failure> {
        loop {
            if let Some(message) = self.ready.pop_front() {
                return Ok(message);
            }
            let body = match &mut self.source {
                Source::Inbox(inbox) => {
                    let message = inbox.recv().await.ok_or_else(ended)?;
                    if message.get("method").is_some() {
                        return Ok(message);
                    }
                    continue;
                }
                Source::Body(body) => body,
            };
            let chunk = body
                .next()
                .await
                .ok_or_else(ended)?
                .map_err(|e| send_error(&e))?;
            let events = self
                .parser
                .feed(&chunk)
                .map_err(|e| Failure::Protocol(format!("SSE: {e}")))?;
            self.ready.extend(
                events
                    .into_iter()
                    .filter(|e| e.is_message())
                    .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
                    .filter(|m| m.get("method").is_some()),
            );
        }
    }
}

fn ended() -> Failure {
    Failure::Protocol("the notification stream ended".into())
}
