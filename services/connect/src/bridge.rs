//! stdio ↔ the gateway's Streamable HTTP: what a stdio MCP client writes on our stdin goes to
//! the gateway URL, and what the gateway answers comes out on our stdout, one JSON-RPC message
//! per line.
//!
//! Rules:
//! - every message is a `POST`; the answer is `202` (nothing to write), `application/json`
//!   (one message or a batch) or `text/event-stream` (written event by event as it arrives;
//!   a stream that ends before the response, after giving event ids, is resumed with `GET` and
//!   `Last-Event-ID`, SEP-1699). Requests run concurrently, so a long call never holds up a
//!   `ping` or a `notifications/cancelled`; `initialize` and `notifications/initialized` are
//!   sent in order, as what follows needs the session;
//! - both protocol eras as the gateway serves them: the session era keeps the `Mcp-Session-Id`
//!   of `initialize` and sends it with the negotiated `MCP-Protocol-Version`; a 2026-07-28
//!   message (its `_meta` names the version) is stateless and gets that version and the
//!   mirrored `Mcp-Method`/`Mcp-Name` headers;
//! - after `notifications/initialized` (session era) the `GET` stream of server-initiated
//!   messages is opened if the server offers one (`405` means it does not), and resumed when it
//!   ends;
//! - `notifications/cancelled` is forwarded, and the bridge drops its own connection of that
//!   request (the gateway then cancels upstream too);
//! - a `401` on a request: the token is renewed ([`Credentials::rejected`]) and the request
//!   sent again once;
//! - a failure with no JSON-RPC answer from the gateway becomes a JSON-RPC error for the
//!   request (`-32603`, the message says what happened and what to do), never a silent drop;
//! - stdin closed: in-flight requests are dropped, the session is ended with `DELETE`, and the
//!   process exits 0.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use reqwest::{Client, Method, Response, StatusCode, header};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use url::Url;

use crate::answer::{Messages, content_type};
use crate::credentials::Credentials;
use crate::error::{ConnectError, chain};
use crate::readonly::{Filter, REFUSED, Verdict, error_response};
use crate::sigv4::Signer;

/// The JSON-RPC code of a request the gateway could not be asked or did not answer.
pub const BRIDGE_ERROR: i64 = -32603;
/// The first version of the stateless era.
const STATELESS_ERA: &str = "2026-07-28";
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// Resumptions of one answer's stream (SEP-1699 polling) before giving up.
const MAX_RESUMES: usize = 20;

/// How requests prove who sends them.
pub enum Auth {
    /// No credentials (a gateway URL that needs none).
    None,
    /// The OAuth token of the URL.
    OAuth(Arc<Credentials>),
    /// SigV4 from the local AWS credential chain.
    SigV4(Signer),
}

/// The bridge of one URL.
pub struct Bridge {
    http: Client,
    url: Url,
    aggregated: bool,
    allow_write: bool,
    auth: Auth,
    session: Mutex<Option<String>>,
    version: Mutex<Option<String>>,
    filter: Mutex<Filter>,
    in_flight: Mutex<HashMap<String, AbortHandle>>,
    next_id: AtomicU64,
    out: mpsc::UnboundedSender<Value>,
}

/// Runs the bridge until stdin closes.
pub async fn run(http: Client, url: Url, allow_write: bool, auth: Auth) -> std::io::Result<()> {
    let (out, mut rx) = mpsc::unbounded_channel::<Value>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(message) = rx.recv().await {
            let mut line = message.to_string();
            line.push('\n');
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let aggregated = url.path().trim_end_matches('/') == "/mcp";
    let bridge = Arc::new(Bridge {
        http,
        url,
        aggregated,
        allow_write,
        auth,
        session: Mutex::new(None),
        version: Mutex::new(None),
        filter: Mutex::new(Filter::new(aggregated)),
        in_flight: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        out,
    });
    let mut tasks = JoinSet::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let messages = match serde_json::from_str::<Value>(&line) {
            Ok(Value::Array(items)) => items,
            Ok(message) => vec![message],
            Err(e) => {
                bridge.emit(error_response(
                    &Value::Null,
                    -32700,
                    &format!("mcpgw-connect: not JSON ({e})"),
                ));
                continue;
            }
        };
        for message in messages {
            match method_of(&message) {
                Some("initialize") => bridge.forward(message).await,
                Some("notifications/initialized") => {
                    bridge.forward(message).await;
                    if bridge.session_id().is_some() {
                        let b = Arc::clone(&bridge);
                        tasks.spawn(async move { b.listen().await });
                    }
                }
                Some("notifications/cancelled") => {
                    bridge.cancel(&message);
                    let b = Arc::clone(&bridge);
                    tasks.spawn(async move { b.forward(message).await });
                }
                _ => {
                    let key = message
                        .get("id")
                        .filter(|_| is_request(&message))
                        .map(id_key);
                    let b = Arc::clone(&bridge);
                    let handle = tasks.spawn(async move { b.forward(message).await });
                    if let Some(key) = key {
                        bridge.in_flight.lock().expect("lock").insert(key, handle);
                    }
                }
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    tasks.shutdown().await;
    bridge.close().await;
    drop(bridge);
    let _ = writer.await;
    Ok(())
}

fn method_of(message: &Value) -> Option<&str> {
    message.get("method").and_then(Value::as_str)
}

fn is_request(message: &Value) -> bool {
    method_of(message).is_some() && message.get("id").is_some()
}

fn id_key(id: &Value) -> String {
    id.to_string()
}

/// What a message is, for the headers and for reading its answer.
struct Sent {
    id: Option<Value>,
    method: Option<String>,
    /// `tools/call` of `discover_tools` on the aggregated endpoint.
    discovery: bool,
}

impl Bridge {
    fn emit(&self, message: Value) {
        let _ = self.out.send(message);
    }

    fn session_id(&self) -> Option<String> {
        self.session.lock().expect("lock").clone()
    }

    /// Drops our connection of the request a `notifications/cancelled` names.
    fn cancel(&self, message: &Value) {
        if let Some(id) = message.pointer("/params/requestId")
            && let Some(handle) = self.in_flight.lock().expect("lock").remove(&id_key(id))
        {
            handle.abort();
        }
    }

    /// Sends one message from the client and writes what comes back.
    async fn forward(self: &Arc<Self>, message: Value) {
        let request = is_request(&message);
        let sent = Sent {
            id: message.get("id").cloned().filter(|_| request),
            method: method_of(&message).map(str::to_owned),
            discovery: self.aggregated
                && method_of(&message) == Some("tools/call")
                && message.pointer("/params/name").and_then(Value::as_str)
                    == Some("discover_tools"),
        };
        if request
            && sent.method.as_deref() == Some("tools/call")
            && !self.allow_write
            && let Err(why) = self.judge(&message).await
        {
            self.emit(error_response(&message["id"], REFUSED, &why));
            return;
        }
        let outcome = self.exchange(&message, &sent).await;
        if let Some(id) = &sent.id {
            self.in_flight.lock().expect("lock").remove(&id_key(id));
        }
        if let Err(why) = outcome {
            match &sent.id {
                Some(id) => self.emit(error_response(id, BRIDGE_ERROR, &why)),
                None => eprintln!("mcpgw-connect: {why}"),
            }
        }
    }

    /// POSTs `message` and writes the answer; `Err` with the reason when no JSON-RPC answer
    /// to the request came.
    async fn exchange(&self, message: &Value, sent: &Sent) -> Result<(), String> {
        let response = self
            .send(Method::POST, Some(message))
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        if sent.method.as_deref() == Some("initialize")
            && status.is_success()
            && let Some(id) = response
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
        {
            *self.session.lock().expect("lock") = Some(id.to_owned());
        }
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            return Ok(());
        }
        if status == StatusCode::NOT_FOUND && self.session_id().is_some() && !stateless(message) {
            *self.session.lock().expect("lock") = None;
            return Err(
                "the gateway no longer knows this session (404); restart the MCP client to \
                 start a new one"
                    .into(),
            );
        }
        let mut messages = Messages::read(response).await?;
        let mut answered = false;
        let mut resumes = 0;
        loop {
            while let Some(mut reply) = messages.next().await {
                if sent.id.is_some() && reply.get("id") == sent.id.as_ref() && !is_request(&reply) {
                    self.on_response(sent, &mut reply);
                    answered = true;
                }
                self.emit(reply);
            }
            if answered || sent.id.is_none() {
                return Ok(());
            }
            match (&messages.last_event_id, messages.error.take()) {
                (_, Some(e)) => return Err(e),
                (Some(last), None) if resumes < MAX_RESUMES => {
                    resumes += 1;
                    let last = last.clone();
                    messages = self.resume(&last).await?;
                }
                _ => break,
            }
        }
        Err(if status.is_success() {
            "the gateway ended its answer without a response; try again".to_owned()
        } else {
            format!("the gateway answered {status}{}", messages.detail)
        })
    }

    /// A response to one of the client's requests, before it is written.
    fn on_response(&self, sent: &Sent, reply: &mut Value) {
        if sent.method.as_deref() == Some("initialize")
            && let Some(v) = reply
                .pointer("/result/protocolVersion")
                .and_then(Value::as_str)
        {
            *self.version.lock().expect("lock") = Some(v.to_owned());
        }
        if self.allow_write {
            return;
        }
        let Some(result) = reply.get_mut("result") else {
            return;
        };
        let mut filter = self.filter.lock().expect("lock");
        match sent.method.as_deref() {
            Some("tools/list") => filter.filter_list(result),
            Some("tools/call") if sent.discovery => filter.filter_discovered(result),
            _ => {}
        }
    }

    /// Resumes an answer's stream after `last` (SEP-1699).
    async fn resume(&self, last: &str) -> Result<Messages, String> {
        let response = self
            .send_with(Method::GET, None, Some(last))
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!(
                "the gateway's stream ended before the answer and could not be resumed ({})",
                response.status()
            ));
        }
        Messages::read(response).await
    }

    /// The read-only verdict on a `tools/call`; `Err` with the refusal.
    async fn judge(&self, message: &Value) -> Result<(), String> {
        let name = message
            .pointer("/params/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let arguments = message
            .pointer("/params/arguments")
            .cloned()
            .unwrap_or(Value::Null);
        let verdict = |b: &Self| b.filter.lock().expect("lock").verdict(name, &arguments);
        match verdict(self) {
            Verdict::Forward => return Ok(()),
            Verdict::Refuse(why) => return Err(why),
            Verdict::Unknown => {}
        }
        let meta = message.pointer("/params/_meta");
        match arguments.get("name").and_then(Value::as_str) {
            Some(inner) if self.aggregated && name == "call_tool" => {
                self.learn_discovered(inner, meta).await;
            }
            _ => self.learn_tools(meta).await,
        }
        match verdict(self) {
            Verdict::Forward => Ok(()),
            Verdict::Refuse(why) => Err(why),
            Verdict::Unknown => Err(Filter::unknown(name)),
        }
    }

    /// Lists the tools itself (every page), so the filter knows each one's hint.
    async fn learn_tools(&self, meta: Option<&Value>) {
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let mut params = json!({});
            if let Some(c) = &cursor {
                params["cursor"] = json!(c);
            }
            let Some(result) = self.ask("tools/list", params, meta).await else {
                return;
            };
            let mut result = result;
            self.filter.lock().expect("lock").filter_list(&mut result);
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_owned()),
                None => return,
            }
        }
    }

    /// Asks the aggregated endpoint's `discover_tools` for `tool` by name, so the filter knows
    /// its hint.
    async fn learn_discovered(&self, tool: &str, meta: Option<&Value>) {
        let params = json!({"name": "discover_tools", "arguments": {"query": tool}});
        if let Some(mut result) = self.ask("tools/call", params, meta).await {
            self.filter
                .lock()
                .expect("lock")
                .filter_discovered(&mut result);
        }
    }

    /// A request of the bridge's own (its id is ours, its answer not written): the result.
    async fn ask(&self, method: &str, mut params: Value, meta: Option<&Value>) -> Option<Value> {
        let id = json!(format!(
            "mcpgw-connect-{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        ));
        if let Some(m) = meta {
            params["_meta"] = m.clone();
        }
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self.send(Method::POST, Some(&request)).await.ok()?;
        let mut messages = Messages::read(response).await.ok()?;
        let mut result = None;
        while let Some(mut reply) = messages.next().await {
            if reply.get("id") == Some(&id) {
                result = reply.get_mut("result").map(Value::take);
            } else {
                // A notification on the way (progress, logging): the client may want it.
                self.emit(reply);
            }
        }
        result
    }

    /// The session's `GET` stream of server-initiated messages, for as long as the server
    /// keeps offering it.
    async fn listen(self: Arc<Self>) {
        let mut last: Option<String> = None;
        let mut failures = 0;
        while failures < 5 {
            let response = match self.send_with(Method::GET, None, last.as_deref()).await {
                Ok(r) => r,
                Err(_) => {
                    failures += 1;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            let event_stream = content_type(&response).starts_with("text/event-stream");
            if !response.status().is_success() || !event_stream {
                // 405: the server offers no stream. Anything else: none for us either.
                return;
            }
            let Ok(mut messages) = Messages::read(response).await else {
                return;
            };
            while let Some(message) = messages.next().await {
                failures = 0;
                self.emit(message);
            }
            last = messages.last_event_id.clone().or(last);
            failures += 1;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    /// Ends the session (`DELETE`); a server that does not allow it (`405`) is fine.
    async fn close(&self) {
        if self.session_id().is_some() {
            let _ = self.send(Method::DELETE, None).await;
        }
    }

    async fn send(&self, method: Method, body: Option<&Value>) -> Result<Response, ConnectError> {
        self.send_with(method, body, None).await
    }

    /// One HTTP request to the URL with every header it needs; a `401` renews the token and
    /// sends once more.
    async fn send_with(
        &self,
        method: Method,
        body: Option<&Value>,
        last_event_id: Option<&str>,
    ) -> Result<Response, ConnectError> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON"));
        let mut token = match &self.auth {
            Auth::OAuth(c) => Some(c.token().await?),
            _ => None,
        };
        for attempt in 0..2 {
            let mut request = self.http.request(method.clone(), self.url.clone()).header(
                header::ACCEPT,
                if body.is_some() {
                    "application/json, text/event-stream"
                } else {
                    "text/event-stream"
                },
            );
            for (name, value) in self.mcp_headers(body) {
                request = request.header(name, value);
            }
            if let Some(last) = last_event_id {
                request = request.header("last-event-id", last);
            }
            let content_type = bytes.as_ref().map(|_| "application/json");
            if let Some(c) = content_type {
                request = request.header(header::CONTENT_TYPE, c);
            }
            match &self.auth {
                Auth::None => {}
                Auth::OAuth(_) => {
                    request = request.bearer_auth(token.as_deref().unwrap_or_default());
                }
                Auth::SigV4(signer) => {
                    for (name, value) in signer
                        .headers(
                            method.as_str(),
                            self.url.as_str(),
                            content_type,
                            bytes.as_deref().unwrap_or_default(),
                        )
                        .await?
                    {
                        request = request.header(name, value);
                    }
                }
            }
            if let Some(b) = &bytes {
                request = request.body(b.clone());
            }
            let response = request
                .send()
                .await
                .map_err(|e| ConnectError::Unreachable {
                    url: self.url.to_string(),
                    cause: chain(&e),
                })?;
            if response.status() == StatusCode::UNAUTHORIZED
                && attempt == 0
                && let (Auth::OAuth(c), Some(t)) = (&self.auth, &token)
            {
                token = Some(c.rejected(t).await?);
                continue;
            }
            return Ok(response);
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// `Mcp-Session-Id`, `MCP-Protocol-Version` and, in the stateless era, the mirrored
    /// `Mcp-Method`/`Mcp-Name`.
    fn mcp_headers(&self, body: Option<&Value>) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        let declared = body
            .and_then(|b| b.pointer("/params/_meta"))
            .and_then(|m| m.get(META_VERSION))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let version = declared.or_else(|| self.version.lock().expect("lock").clone());
        let stateless = version.as_deref().is_some_and(|v| v >= STATELESS_ERA);
        if !stateless && let Some(s) = self.session_id() {
            headers.push(("mcp-session-id", s));
        }
        if let Some(v) = version {
            headers.push(("mcp-protocol-version", v));
        }
        if stateless && let Some(b) = body.filter(|b| method_of(b).is_some()) {
            let method = method_of(b).unwrap_or_default();
            headers.push(("mcp-method", header_text(method)));
            let name = match method {
                "tools/call" | "prompts/get" => b.pointer("/params/name"),
                "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                    b.pointer("/params/uri")
                }
                _ => None,
            };
            if let Some(n) = name.and_then(Value::as_str) {
                headers.push(("mcp-name", header_text(n)));
            }
        }
        headers
    }
}

/// Whether `message` is a stateless-era request.
fn stateless(message: &Value) -> bool {
    message
        .pointer("/params/_meta")
        .and_then(|m| m.get(META_VERSION))
        .and_then(Value::as_str)
        .is_some_and(|v| v >= STATELESS_ERA)
}

/// A header value: as it is when printable ASCII, else `=?base64?…?=` (how the 2026-07-28
/// transport carries other text).
fn header_text(text: &str) -> String {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        text.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_is_kept_when_printable_and_base64_encoded_otherwise() {
        assert_eq!(header_text("get_weather"), "get_weather");
        assert_eq!(header_text("météo"), "=?base64?bcOpdMOpbw==?=");
    }

    #[test]
    fn a_message_is_stateless_only_when_its_meta_names_a_2026_version() {
        let with =
            |v: &str| json!({"method": "tools/list", "params": {"_meta": {META_VERSION: v}}});
        assert!(stateless(&with("2026-07-28")));
        assert!(!stateless(&with("2025-11-25")));
        assert!(!stateless(&json!({"method": "tools/list"})));
    }
}
