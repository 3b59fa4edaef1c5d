//! Upstreams the gateway holds one session with and shares among its clients: stdio servers it
//! runs as child processes, and servers on the deprecated HTTP+SSE transport.
//!
//! The gateway is the one MCP client of such an upstream (per gateway process). Client request
//! ids are replaced by the gateway's own (and progress tokens likewise), answers are routed back
//! by id, and notifications that belong to no request are fanned out to every listening client
//! of the server. A client that goes away before its answer cancels the upstream work with
//! `notifications/cancelled`. The connection is started on first use and restarted with a
//! doubling delay when it ends; a stdio server's stderr goes to the gateway's log.
//!
//! A stdio child is started through the sandbox (`stdio_sandbox.rs`: allow-listed command, its
//! own user, directory, limits and process group); when its connection ends, its whole process
//! group is killed.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http::HeaderMap;
use mcpgw_core::upstream_auth::UpstreamCredentials;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{broadcast, mpsc};

use crate::jsonrpc;
use crate::metrics::Metrics;
use crate::sse;

/// Settings every shared upstream of a process uses.
#[derive(Clone)]
pub struct SharedSettings {
    pub http: reqwest::Client,
    pub restart_min: Duration,
    pub restart_max: Duration,
    pub start_timeout: Duration,
    pub max_message_bytes: usize,
    pub metrics: Metrics,
    /// How stdio children are checked and started.
    pub sandbox: Arc<crate::stdio_sandbox::StdioSandbox>,
}

enum Transport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: Vec<(String, SecretString)>,
    },
    Sse {
        url: url::Url,
        headers: HeaderMap,
        credentials: Option<Arc<UpstreamCredentials>>,
    },
}

/// Why a request could not be passed to a shared upstream.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SharedError {
    #[error("the server is not running: {0}")]
    Unavailable(String),
    #[error("the server's connection ended before it answered")]
    Lost,
}

pub struct SharedUpstream {
    server: String,
    transport: Transport,
    settings: SharedSettings,
    live: tokio::sync::Mutex<Option<Arc<Connection>>>,
    restart: Mutex<Backoff>,
    notifications: broadcast::Sender<Value>,
    /// Counts the sessions started: a new one may list other tools (`stdio_tools.rs`).
    starts: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct Backoff {
    failures: u32,
    not_before: Option<Instant>,
    last_error: String,
}

/// One live session with the upstream.
struct Connection {
    outgoing: mpsc::Sender<Value>,
    pending: Mutex<HashMap<u64, PendingEntry>>,
    next_id: AtomicU64,
    initialize: Value,
    /// Set when the writer side ends (the child exited, the stream closed).
    closed: tokio::sync::watch::Receiver<bool>,
    /// Cleared when the reader side ends (stdout closed, a message over the limit): the
    /// connection is then replaced even if the process still runs.
    alive: std::sync::atomic::AtomicBool,
    started: Instant,
    /// Ends the child process / SSE stream when the connection is dropped.
    _guard: tokio::sync::oneshot::Sender<()>,
}

struct PendingEntry {
    /// The caller's digest: a client may cancel only its own requests.
    owner: String,
    client_id: Value,
    client_progress: Option<Value>,
    tx: mpsc::UnboundedSender<Value>,
}

/// The messages of one request: progress notifications, then the answer (with the client's
/// id). Dropping it before the answer cancels the request upstream.
pub struct PendingReply {
    pub rx: mpsc::UnboundedReceiver<Value>,
    connection: Weak<Connection>,
    id: u64,
    done: bool,
}

impl PendingReply {
    pub async fn next(&mut self) -> Option<Value> {
        let message = self.rx.recv().await;
        match &message {
            Some(m) if m.get("result").is_some() || m.get("error").is_some() => self.done = true,
            None => self.done = true,
            _ => {}
        }
        message
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(conn) = self.connection.upgrade() {
            conn.pending.lock().expect("pending").remove(&self.id);
            let _ = conn.outgoing.try_send(json!({
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": self.id, "reason": "the client went away"}
            }));
        }
    }
}

impl SharedUpstream {
    pub fn stdio(
        server: &str,
        command: String,
        args: Vec<String>,
        env: Vec<(String, SecretString)>,
        settings: &SharedSettings,
    ) -> Arc<Self> {
        Self::new(server, Transport::Stdio { command, args, env }, settings)
    }

    pub fn sse(
        server: &str,
        url: url::Url,
        headers: HeaderMap,
        credentials: Option<Arc<UpstreamCredentials>>,
        settings: &SharedSettings,
    ) -> Arc<Self> {
        Self::new(
            server,
            Transport::Sse {
                url,
                headers,
                credentials,
            },
            settings,
        )
    }

    fn new(server: &str, transport: Transport, settings: &SharedSettings) -> Arc<Self> {
        Arc::new(Self {
            server: server.to_owned(),
            transport,
            settings: settings.clone(),
            live: tokio::sync::Mutex::new(None),
            restart: Mutex::new(Backoff::default()),
            notifications: broadcast::channel(256).0,
            starts: tokio::sync::watch::channel(0).0,
        })
    }

    /// Whether this is a stdio child process (not an HTTP+SSE upstream).
    pub fn is_stdio(&self) -> bool {
        matches!(self.transport, Transport::Stdio { .. })
    }

    /// Starts in a row that failed or ended within seconds (cleared once a connection has
    /// lived a while): how a crash loop shows.
    pub fn failed_starts(&self) -> u32 {
        self.restart.lock().expect("backoff").failures
    }

    /// Notifications that belong to no request (list changes, resource updates, logs).
    pub fn subscribe(&self) -> broadcast::Receiver<Value> {
        self.notifications.subscribe()
    }

    /// The number of sessions started so far, changing with each new one; ends (an error
    /// from `changed`) when this upstream is dropped.
    pub fn starts(&self) -> tokio::sync::watch::Receiver<u64> {
        self.starts.subscribe()
    }

    /// The upstream's `initialize` result, starting the connection if needed.
    pub async fn initialize_result(&self) -> Result<Value, SharedError> {
        Ok(self.connection().await?.initialize.clone())
    }

    /// Sends a request; the reply carries its messages.
    /// Sends a request of `owner` (the caller's digest); the reply carries its messages.
    pub async fn request(
        &self,
        owner: &str,
        mut message: Value,
    ) -> Result<PendingReply, SharedError> {
        let conn = self.connection().await?;
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        let client_id = message.get("id").cloned().unwrap_or(Value::Null);
        message["id"] = json!(id);
        let client_progress = message
            .pointer_mut("/params/_meta/progressToken")
            .map(|t| std::mem::replace(t, json!(format!("mcpgw-{id}"))));
        let (tx, rx) = mpsc::unbounded_channel();
        conn.pending.lock().expect("pending").insert(
            id,
            PendingEntry {
                owner: owner.to_owned(),
                client_id,
                client_progress,
                tx,
            },
        );
        if conn.outgoing.send(message).await.is_err() {
            conn.pending.lock().expect("pending").remove(&id);
            return Err(SharedError::Lost);
        }
        Ok(PendingReply {
            rx,
            connection: Arc::downgrade(&conn),
            id,
            done: false,
        })
    }

    /// A client's `notifications/cancelled` for its request `client_id`: passed on with the
    /// gateway's id for it; nothing happens when no such request of `owner` is waiting.
    pub async fn cancel(&self, owner: &str, client_id: &Value, reason: Option<&Value>) {
        let conn = match self.live.lock().await.as_ref() {
            Some(c) => Arc::clone(c),
            None => return,
        };
        let id = {
            let mut pending = conn.pending.lock().expect("pending");
            let found = pending
                .iter()
                .find(|(_, e)| e.owner == owner && &e.client_id == client_id)
                .map(|(id, _)| *id);
            if let Some(id) = found {
                pending.remove(&id);
            }
            found
        };
        if let Some(id) = id {
            let mut params = json!({"requestId": id});
            if let Some(r) = reason {
                params["reason"] = r.clone();
            }
            let _ = conn
                .outgoing
                .send(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}))
                .await;
        }
    }

    async fn connection(&self) -> Result<Arc<Connection>, SharedError> {
        let mut live = self.live.lock().await;
        if let Some(conn) = live.as_ref()
            && !*conn.closed.borrow()
            && conn.alive.load(Ordering::Relaxed)
        {
            return Ok(Arc::clone(conn));
        }
        if let Some(dead) = live.take() {
            self.settings
                .metrics
                .stdio_restarts
                .with_label_values(&[self.server.as_str()])
                .inc();
            // A server that dies soon after it started is restarted with the same doubling
            // delay as one that fails to start; one that ran a while starts again at once.
            let mut backoff = self.restart.lock().expect("backoff");
            if dead.started.elapsed() < Duration::from_secs(10) {
                backoff.failures += 1;
                backoff.not_before = Some(Instant::now() + self.delay(backoff.failures));
                backoff.last_error = "the server exited soon after it started".to_owned();
            } else {
                *backoff = Backoff::default();
            }
        }
        {
            let backoff = self.restart.lock().expect("backoff");
            if let Some(at) = backoff.not_before
                && Instant::now() < at
            {
                return Err(SharedError::Unavailable(format!(
                    "{} (next start in {} ms)",
                    backoff.last_error,
                    at.duration_since(Instant::now()).as_millis()
                )));
            }
        }
        match tokio::time::timeout(self.settings.start_timeout, self.connect()).await {
            Ok(Ok(conn)) => {
                // The failure count stays until a connection has lived a while (see above), so
                // a server that crashes right after every start backs off further each time.
                self.restart.lock().expect("backoff").not_before = None;
                *live = Some(Arc::clone(&conn));
                self.starts.send_modify(|n| *n += 1);
                Ok(conn)
            }
            result => {
                let error = match result {
                    Ok(Err(e)) => e,
                    Err(_) => format!(
                        "no answer to initialize within {} ms",
                        self.settings.start_timeout.as_millis()
                    ),
                    Ok(Ok(_)) => unreachable!(),
                };
                let mut backoff = self.restart.lock().expect("backoff");
                backoff.failures += 1;
                let delay = self.delay(backoff.failures);
                backoff.not_before = Some(Instant::now() + delay);
                backoff.last_error = error.clone();
                tracing::warn!(server = %self.server, error = %error, retry_in_ms = delay.as_millis() as u64, "starting the upstream failed");
                Err(SharedError::Unavailable(error))
            }
        }
    }

    /// `restart_min` doubled for each failure after the first, at most `restart_max`.
    fn delay(&self, failures: u32) -> Duration {
        self.settings
            .restart_min
            .saturating_mul(1 << failures.min(16).saturating_sub(1))
            .min(self.settings.restart_max)
    }

    async fn connect(&self) -> Result<Arc<Connection>, String> {
        let (out_tx, out_rx) = mpsc::channel::<Value>(256);
        let (in_tx, in_rx) = mpsc::channel::<Value>(256);
        let (guard_tx, guard_rx) = tokio::sync::oneshot::channel::<()>();
        let (closed_tx, closed_rx) = tokio::sync::watch::channel(false);
        let stderr_tail = match &self.transport {
            Transport::Stdio { command, args, env } => {
                Some(self.spawn_stdio(command, args, env, out_rx, in_tx, guard_rx, closed_tx)?)
            }
            Transport::Sse {
                url,
                headers,
                credentials,
            } => {
                self.spawn_sse(
                    url.clone(),
                    headers.clone(),
                    credentials.clone(),
                    out_rx,
                    in_tx,
                    guard_rx,
                    closed_tx,
                )
                .await?;
                None
            }
        };
        // Handshake before any client request is let through.
        let mut in_rx = in_rx;
        let version = match self.transport {
            Transport::Sse { .. } => "2024-11-05",
            Transport::Stdio { .. } => jsonrpc::LATEST_LEGACY,
        };
        out_tx
            .send(json!({
                "jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {
                    "protocolVersion": version,
                    "capabilities": {},
                    "clientInfo": {"name": "mcpgw-gateway", "version": env!("CARGO_PKG_VERSION")}
                }
            }))
            .await
            .map_err(|_| "the connection closed before initialize".to_owned())?;
        let initialize = loop {
            let Some(message) = in_rx.recv().await else {
                let said = match &stderr_tail {
                    Some(tail) => tail.last_line().await,
                    None => String::new(),
                };
                return Err(if said.is_empty() {
                    "the server exited before answering initialize".to_owned()
                } else {
                    format!("the server exited before answering initialize; its last words: {said}")
                });
            };
            if message.get("id") == Some(&json!(0)) {
                if let Some(result) = message.get("result") {
                    break result.clone();
                }
                return Err(format!(
                    "the server refused initialize: {}",
                    message.get("error").cloned().unwrap_or_default()
                ));
            }
        };
        out_tx
            .send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await
            .map_err(|_| "the connection closed after initialize".to_owned())?;
        let conn = Arc::new(Connection {
            outgoing: out_tx,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            initialize,
            closed: closed_rx,
            alive: std::sync::atomic::AtomicBool::new(true),
            started: Instant::now(),
            _guard: guard_tx,
        });
        tokio::spawn(dispatch(
            Arc::downgrade(&conn),
            in_rx,
            self.notifications.clone(),
            self.server.clone(),
        ));
        tracing::info!(server = %self.server, "upstream session started");
        Ok(conn)
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "what starts the child plus the four channel ends of its session, passed once"
    )]
    fn spawn_stdio(
        &self,
        command: &str,
        args: &[String],
        env: &[(String, SecretString)],
        mut out_rx: mpsc::Receiver<Value>,
        in_tx: mpsc::Sender<Value>,
        guard_rx: tokio::sync::oneshot::Receiver<()>,
        closed_tx: tokio::sync::watch::Sender<bool>,
    ) -> Result<StderrTail, String> {
        // Refused commands are never started; the reason goes to the caller and the health
        // report (through the start error) and to the log.
        let prepared = self
            .settings
            .sandbox
            .prepare(&self.server, command, args, env)
            .map_err(|e| e.to_string())?;
        let spec_line = prepared.spec_line;
        let mut cmd = prepared.command;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting the stdio sandbox for {command:?}: {e}"))?;
        // The leader of its own process group: the group id is its pid.
        let group = child.id().map(ProcessGroup);
        let mut stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let server = self.server.clone();
        let max = self.settings.max_message_bytes;
        // stderr → log, line by line; the last line is kept to explain a failed start.
        let log_server = server.clone();
        let (done_tx, done_rx) = tokio::sync::watch::channel(false);
        let tail = StderrTail {
            last: Arc::new(Mutex::new(String::new())),
            done: done_rx,
        };
        let last = Arc::clone(&tail.last);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let line = line.chars().take(4096).collect::<String>();
                tracing::info!(target: "mcpgw::stdio", server = %log_server, "{line}");
                *last.lock().expect("stderr tail") = line;
            }
            let _ = done_tx.send(true);
        });
        // stdout → messages.
        let read_server = server.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = match (&mut reader)
                    .take(max as u64 + 1)
                    .read_until(b'\n', &mut line)
                    .await
                {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(server = %read_server, error = %e, "reading from the stdio server failed");
                        break;
                    }
                };
                if n == 0 {
                    break;
                }
                if line.len() > max {
                    tracing::warn!(server = %read_server, max, "the stdio server wrote a message over the size limit; restarting it");
                    break;
                }
                match serde_json::from_slice::<Value>(&line) {
                    Ok(v) => {
                        if in_tx.send(v).await.is_err() {
                            break;
                        }
                    }
                    Err(_) if line.iter().all(u8::is_ascii_whitespace) => {}
                    Err(e) => {
                        tracing::warn!(server = %read_server, error = %e, "the stdio server wrote a line that is not JSON")
                    }
                }
            }
        });
        // messages → stdin; ends (and kills the child) when the connection is dropped or the
        // child exits.
        tokio::spawn(async move {
            // Dropped when this task ends or is dropped (the runtime stops): the group goes.
            let _group = group;
            let mut guard_rx = guard_rx;
            // The sandbox's instructions come first, then the MCP stream.
            if stdin
                .write_all(spec_line.expose_secret().as_bytes())
                .await
                .is_err()
            {
                tracing::warn!(server = %server, "the stdio sandbox helper closed its stdin at start");
            }
            drop(spec_line);
            loop {
                tokio::select! {
                    message = out_rx.recv() => {
                        let Some(message) = message else { break };
                        let mut bytes = serde_json::to_vec(&message).expect("json");
                        bytes.push(b'\n');
                        if stdin.write_all(&bytes).await.is_err() || stdin.flush().await.is_err() {
                            break;
                        }
                    }
                    status = child.wait() => {
                        tracing::warn!(server = %server, status = ?status.ok(), "the stdio server exited");
                        break;
                    }
                    _ = &mut guard_rx => break,
                }
            }
            let _ = child.start_kill();
            let _ = closed_tx.send(true);
        });
        Ok(tail)
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "what opens the stream plus the four channel ends of its session, passed once"
    )]
    async fn spawn_sse(
        &self,
        url: url::Url,
        headers: HeaderMap,
        credentials: Option<Arc<UpstreamCredentials>>,
        mut out_rx: mpsc::Receiver<Value>,
        in_tx: mpsc::Sender<Value>,
        guard_rx: tokio::sync::oneshot::Receiver<()>,
        closed_tx: tokio::sync::watch::Sender<bool>,
    ) -> Result<(), String> {
        let http = self.settings.http.clone();
        let mut request = http
            .get(url.clone())
            .headers(headers.clone())
            .header(http::header::ACCEPT, "text/event-stream")
            .build()
            .map_err(|e| e.to_string())?;
        if let Some(c) = &credentials {
            c.apply_to_reqwest(&mut request)
                .await
                .map_err(|e| e.to_string())?;
        }
        let response = http
            .execute(request)
            .await
            .map_err(|e| format!("connecting to {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url} answered {}", response.status()));
        }
        let mut body = response.bytes_stream();
        let mut parser = sse::Parser::new(self.settings.max_message_bytes);
        // The first event names where messages are posted.
        let endpoint = loop {
            use futures::StreamExt;
            let Some(chunk) = body.next().await else {
                return Err("the SSE stream ended before its endpoint event".to_owned());
            };
            let chunk = chunk.map_err(|e| e.to_string())?;
            let events = parser.feed(&chunk).map_err(|e| e.to_string())?;
            if let Some(e) = events
                .into_iter()
                .find(|e| e.event.as_deref() == Some("endpoint"))
            {
                let endpoint = url
                    .join(e.data.trim())
                    .map_err(|e| format!("the endpoint event is not a URL: {e}"))?;
                // Messages must go back to the server that was registered, nowhere else.
                if endpoint.origin() != url.origin() {
                    return Err(format!(
                        "the endpoint event points at another origin ({}); refused",
                        endpoint.origin().ascii_serialization()
                    ));
                }
                break endpoint;
            }
        };
        let server = self.server.clone();
        // stream → messages
        tokio::spawn(async move {
            use futures::StreamExt;
            let mut guard_rx = guard_rx;
            loop {
                tokio::select! {
                    chunk = body.next() => {
                        let Some(Ok(chunk)) = chunk else { break };
                        let Ok(events) = parser.feed(&chunk) else { break };
                        for event in events.into_iter().filter(sse::Event::is_message) {
                            if let Ok(v) = serde_json::from_str::<Value>(&event.data)
                                && in_tx.send(v).await.is_err()
                            {
                                break;
                            }
                        }
                    }
                    _ = &mut guard_rx => break,
                }
            }
            tracing::warn!(server = %server, "the SSE upstream stream ended");
            let _ = closed_tx.send(true);
        });
        // messages → POSTs
        tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                let bytes = serde_json::to_vec(&message).expect("json");
                let Ok(mut request) = http
                    .post(endpoint.clone())
                    .headers(headers.clone())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(bytes)
                    .build()
                else {
                    continue;
                };
                if let Some(c) = &credentials
                    && let Err(e) = c.apply_to_reqwest(&mut request).await
                {
                    tracing::warn!(error = %e, "upstream credentials failed");
                    continue;
                }
                match http.execute(request).await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => {
                        tracing::warn!(status = %r.status(), "the SSE upstream refused a message")
                    }
                    Err(e) => tracing::warn!(error = %e, "posting to the SSE upstream failed"),
                }
            }
        });
        Ok(())
    }
}

/// A stdio child's process group, killed when this is dropped: grandchildren (the Python
/// `uvx` starts, the node `npx` starts) end with the child.
struct ProcessGroup(u32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        crate::stdio_sandbox::kill_group(self.0);
    }
}

/// The last line a stdio child wrote to stderr (the sandbox helper's reason when it refuses).
struct StderrTail {
    last: Arc<Mutex<String>>,
    /// Set when stderr has ended.
    done: tokio::sync::watch::Receiver<bool>,
}

impl StderrTail {
    /// The last line, once stderr has ended (or after 500 ms: a grandchild may hold it open).
    async fn last_line(&self) -> String {
        let mut done = self.done.clone();
        let _ = tokio::time::timeout(Duration::from_millis(500), done.wait_for(|d| *d)).await;
        self.last.lock().expect("stderr tail").clone()
    }
}

/// Routes what the upstream sends: answers to their requests, progress to its request,
/// the rest to every listener; server-to-client requests are answered here.
async fn dispatch(
    conn: Weak<Connection>,
    mut in_rx: mpsc::Receiver<Value>,
    notifications: broadcast::Sender<Value>,
    server: String,
) {
    while let Some(mut message) = in_rx.recv().await {
        let Some(conn) = conn.upgrade() else { break };
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let id = message.get("id").cloned();
        match (method.as_deref(), id) {
            // An answer to one of ours.
            (None, Some(id)) => {
                let Some(gid) = id.as_u64() else { continue };
                let entry = conn.pending.lock().expect("pending").remove(&gid);
                if let Some(entry) = entry {
                    message["id"] = entry.client_id;
                    let _ = entry.tx.send(message);
                }
            }
            // A request from the server: the shared session has no single client to ask.
            (Some(method), Some(id)) => {
                let answer = if method == "ping" {
                    jsonrpc::result_response(id, json!({}))
                } else {
                    jsonrpc::error_response(
                        id,
                        jsonrpc::codes::METHOD_NOT_FOUND,
                        "the gateway shares this session among clients and cannot forward server requests",
                    )
                };
                let _ = conn.outgoing.send(answer).await;
            }
            (Some("notifications/progress"), None) => {
                let token = message
                    .pointer("/params/progressToken")
                    .and_then(Value::as_str)
                    .and_then(|t| t.strip_prefix("mcpgw-"))
                    .and_then(|t| t.parse::<u64>().ok());
                if let Some(gid) = token {
                    let pending = conn.pending.lock().expect("pending");
                    if let Some(entry) = pending.get(&gid) {
                        if let Some(original) = &entry.client_progress {
                            message["params"]["progressToken"] = original.clone();
                        }
                        let _ = entry.tx.send(message);
                    }
                }
            }
            (Some(_), None) => {
                let _ = notifications.send(message);
            }
            (None, None) => {}
        }
    }
    // The upstream is gone: requests still waiting get no answer from it; dropping their
    // senders ends their replies at once (the client gets an error, not a hang).
    if let Some(conn) = conn.upgrade() {
        conn.alive.store(false, Ordering::Relaxed);
        conn.pending.lock().expect("pending").clear();
    }
    tracing::debug!(server = %server, "upstream dispatch ended");
}
