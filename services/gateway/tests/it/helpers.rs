//! The stack under test: a real registry (SQLite), a loopback token issuer, and one or more
//! gateway processes (in-process, on real sockets), plus a small raw MCP client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::app::Running as Gateway;
use gateway::config::GatewayConfig;
use mcpgw_test_support::TestIssuer;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const AUDIENCE: &str = "mcpgw-gateway";

pub struct Stack {
    pub base: Base,
    pub gateway: Gateway,
}

impl std::ops::Deref for Stack {
    type Target = Base;
    fn deref(&self) -> &Base {
        &self.base
    }
}

/// The registry, the issuer and what gateways need to join them.
pub struct Base {
    /// Runs as long as the stack lives.
    pub registry: registry::app::Running,
    pub registry_url: String,
    pub admin_key: String,
    pub gateway_key: String,
    pub sealing_key: String,
    pub session_key: String,
    pub issuer: Arc<TestIssuer>,
    pub http: reqwest::Client,
    pub dir: TempDir,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with("").await
    }

    /// Starts the registry and one gateway; `gateway_toml` is added to the gateway's config.
    pub async fn start_with(gateway_toml: &str) -> Stack {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let sealing_key = mcpgw_core::secrets::Keyring::generate_base64()
            .expose_secret()
            .to_owned();
        let session_key = mcpgw_core::secrets::Keyring::generate_base64()
            .expose_secret()
            .to_owned();
        let reg_dir = dir.path().join("registry");
        // No tool discovery: tools it records after a test approves a server would be
        // unreviewed, and withheld by the gateway (tool integrity) at a racy moment. Tests that
        // need recorded tools record and approve them themselves.
        let config = registry::config::RegistryConfig::from_toml_layers(&[&format!(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\
             [egress]\nallow_loopback = true\n[secrets.sealing_key]\nvalue = \"{sealing_key}\"\n\
             [store]\ncatalog_cache_ms = 100\n\
             [health]\ndiscover_tools = false\n[mcp]\nregister = false\n",
            reg_dir.display()
        )])
        .unwrap();
        let registry = registry::app::start(config).await.unwrap();
        let registry_url = format!("http://{}", registry.addr);
        let admin_key = registry.bootstrap_key.clone().unwrap();
        let http = client();
        let created: Value = http
            .post(format!("{registry_url}/api/v1/api-keys"))
            .bearer_auth(&admin_key)
            .json(&json!({"name": "gateway", "permissions": ["gateway:sync"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let gateway_key = created["key"].as_str().expect("key created").to_owned();
        let issuer = TestIssuer::start().await;
        let base = Base {
            registry,
            registry_url,
            admin_key,
            gateway_key,
            sealing_key,
            session_key,
            issuer,
            http,
            dir,
        };
        let gateway = base.start_gateway("gw1", gateway_toml).await;
        Stack { base, gateway }
    }

    pub fn url(&self) -> String {
        self.gateway.url()
    }
}

/// The stdio sandbox of the test gateways. The gateway runs inside the test binary, so the
/// sandbox helper is the built `gateway` binary. Children keep the test's user (root here):
/// the peers' interpreters live under a home only root may enter. The sandbox tests
/// (`stdio_sandbox.rs`) turn the user switch back on with a stdlib-only server.
pub fn stdio_toml() -> String {
    let dirs: Vec<String> = std::env::var("MCPGW_TEST_PY_PEERS")
        .into_iter()
        .map(|d| format!("{d:?}"))
        .collect();
    format!(
        "[stdio]\nexec_helper = {helper:?}\nrun_as_gateway_user = true\n\
         allowed_commands = [\"python3\"]\nallowed_dirs = [{dirs}]\n",
        helper = env!("CARGO_BIN_EXE_gateway"),
        dirs = dirs.join(", "),
    )
}

impl Base {
    pub fn gateway_toml(&self, name: &str) -> String {
        format!(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n\
             data_dir = \"{data}\"\ninstance_id = \"{name}\"\nallowed_hosts = [\"127.0.0.1\"]\n\
             [registry]\nurl = \"{registry}\"\n[registry.api_key]\nvalue = \"{key}\"\n\
             [sync]\npoll_wait_seconds = 5\nretry_seconds = 1\n\
             [secrets.sealing_key]\nvalue = \"{sealing}\"\n[secrets.session_key]\nvalue = \"{session}\"\n\
             [egress]\nallow_loopback = true\n[audit]\nflush_ms = 100\n\
             [[auth.issuers]]\nissuer = \"{issuer}\"\naudiences = [\"{AUDIENCE}\"]\n\
             {stdio}",
            stdio = stdio_toml(),
            data = self.dir.path().join(name).display(),
            registry = self.registry_url,
            key = self.gateway_key,
            sealing = self.sealing_key,
            session = self.session_key,
            issuer = self.issuer.issuer,
        )
    }

    pub async fn start_gateway(&self, name: &str, extra: &str) -> Gateway {
        let toml = self.gateway_toml(name);
        let config = GatewayConfig::from_toml_layers(&[&toml, extra]).expect("gateway test config");
        gateway::app::start(config).await.expect("gateway starts")
    }

    pub fn token(&self, sub: &str, groups: &[&str]) -> String {
        self.issuer.sign(&self.issuer.claims(sub, groups, AUDIENCE))
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.registry_url))
            .bearer_auth(&self.admin_key);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let response = r.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Registers a server (extra fields merged into the body) and approves it for dev.
    pub async fn register(&self, path: &str, endpoint: Value, extra: Value) {
        let mut body = json!({
            "path": path, "name": format!("Server {path}"), "endpoint": endpoint,
            "governance": {"owner_team": "platform"}
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, reply) = self
            .admin(reqwest::Method::POST, "/api/v1/servers", Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        for to in ["submitted", "security_review", "approved_dev"] {
            let (status, reply) = self
                .admin(
                    reqwest::Method::POST,
                    &format!("/api/v1/servers/{path}/lifecycle"),
                    Some(json!({"to": to, "reason": "test"})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{to}: {reply}");
        }
    }

    pub async fn toggle(&self, path: &str, enabled: bool) {
        let (status, reply) = self
            .admin(
                reqwest::Method::POST,
                &format!("/api/v1/servers/{path}/toggle"),
                Some(json!({"enabled": enabled})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{reply}");
    }

    pub async fn put_scope(&self, doc: Value) {
        let name = doc["name"].as_str().unwrap().to_owned();
        let (status, reply) = self
            .admin(
                reqwest::Method::PUT,
                &format!("/api/v1/scopes/{name}"),
                Some(doc),
            )
            .await;
        assert!(status.is_success(), "{reply}");
    }

    pub async fn audit(&self, query: &str) -> Vec<Value> {
        let (status, reply) = self
            .admin(
                reqwest::Method::GET,
                &format!("/api/v1/audit?{query}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        reply["items"].as_array().cloned().unwrap_or_default()
    }

    /// The audit records matching `query` once `done` holds for them (the gateway ships its
    /// events in batches), or after 10 s: the caller's assertion then says what is missing.
    pub async fn audit_until(&self, query: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        mcpgw_test_support::poll(move || self.audit(query), |r| done(r)).await
    }
}

/// Waits until `gateway` routes `path` (or no longer does).
pub async fn wait_routed(gateway: &Gateway, path: &str, routed: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if gateway.state.table.current().get(path).is_some() == routed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "gateway never {} {path}",
            if routed { "routed" } else { "dropped" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A raw MCP client: every header and status is visible to the test.
pub struct RawClient {
    pub url: String,
    pub token: Option<String>,
    pub session: Option<String>,
    pub http: reqwest::Client,
    next_id: u64,
}

pub struct RawReply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    /// Every JSON-RPC message of the answer (one for JSON, each event for SSE).
    pub messages: Vec<Value>,
    pub text: String,
}

impl RawReply {
    pub fn last(&self) -> &Value {
        self.messages.last().unwrap_or(&Value::Null)
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl RawClient {
    pub fn new(base: &str, server: &str, token: Option<String>) -> Self {
        Self {
            url: format!("{base}/{server}/mcp"),
            token,
            session: None,
            http: client(),
            next_id: 1,
        }
    }

    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub async fn post(&mut self, body: Value, headers: &[(&str, &str)]) -> RawReply {
        let mut r = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        if let Some(s) = &self.session {
            r = r.header("mcp-session-id", s);
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let response = r.send().await.unwrap();
        read_reply(response).await
    }

    /// Only the `initialize` request, whatever comes back.
    pub async fn initialize_raw(&mut self) -> RawReply {
        let id = self.id();
        self.post(
            json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "raw-test", "version": "1"}}}),
            &[],
        )
        .await
    }

    /// `initialize` + `notifications/initialized`; keeps the session id.
    pub async fn initialize(&mut self) -> RawReply {
        let id = self.id();
        let reply = self
            .post(
                json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
                    "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "raw-test", "version": "1"}}}),
                &[],
            )
            .await;
        if let Some(s) = reply.headers.get("mcp-session-id") {
            self.session = Some(s.to_str().unwrap().to_owned());
        }
        let n = self
            .post(
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                &[("mcp-protocol-version", "2025-11-25")],
            )
            .await;
        assert_eq!(n.status, StatusCode::ACCEPTED, "initialized: {}", n.text);
        reply
    }

    pub async fn request(&mut self, method: &str, params: Value) -> RawReply {
        let id = self.id();
        self.post(
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
            &[("mcp-protocol-version", "2025-11-25")],
        )
        .await
    }

    pub async fn call(&mut self, tool: &str, args: Value) -> RawReply {
        self.request("tools/call", json!({"name": tool, "arguments": args}))
            .await
    }

    /// A 2026-07-28 stateless request with the mirrored headers.
    pub async fn modern(&mut self, method: &str, mut params: Value) -> RawReply {
        let id = self.id();
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}
        });
        let name = params
            .get("name")
            .or_else(|| params.get("uri"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut headers = vec![
            ("mcp-protocol-version", "2026-07-28".to_owned()),
            ("mcp-method", method.to_owned()),
        ];
        if let Some(n) = name {
            headers.push(("mcp-name", n));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let saved = self.session.take();
        let reply = self
            .post(
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
                &headers,
            )
            .await;
        self.session = saved;
        reply
    }
}

pub async fn read_reply(response: reqwest::Response) -> RawReply {
    let status = response.status();
    let headers = response.headers().clone();
    let is_sse = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    let text = response.text().await.unwrap_or_default();
    let messages = if is_sse {
        let mut parser = gateway::sse::Parser::new(64 << 20);
        parser
            .feed(text.as_bytes())
            .unwrap()
            .into_iter()
            .filter(|e| e.is_message())
            .filter_map(|e| serde_json::from_str(&e.data).ok())
            .collect()
    } else {
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(items)) => items,
            Ok(v) => vec![v],
            Err(_) => vec![],
        }
    };
    RawReply {
        status,
        headers,
        messages,
        text,
    }
}

/// A scope document granting `methods` and `tools` on `server` to `group`.
pub fn scope(name: &str, group: &str, server: &str, methods: &[&str], tools: &[&str]) -> Value {
    json!({
        "name": name,
        "group_mappings": [group],
        "server_access": [{"server": server, "methods": methods, "tools": tools}]
    })
}

pub const ALL_METHODS: &[&str] = &[
    "initialize",
    "notifications/initialized",
    "ping",
    "tools/list",
    "tools/call",
];

/// A stack with one rmcp upstream registered at `path` (JSON answers when `json_upstream`),
/// and a scope for group `agents` that may use `tools` there.
pub async fn stack_with(
    path: &str,
    json_upstream: bool,
    tools: &[&str],
    extra: Value,
) -> (Stack, crate::upstream::Upstream) {
    let stack = Stack::start().await;
    let up = crate::upstream::start(json_upstream).await;
    stack
        .register(
            path,
            json!({"transport": "streamable-http", "url": up.url()}),
            extra,
        )
        .await;
    stack
        .put_scope(scope("agents", "agents", path, ALL_METHODS, tools))
        .await;
    wait_routed(&stack.gateway, path, true).await;
    wait_policy(&stack).await;
    (stack, up)
}

/// Waits until the gateway has a policy (it comes with the same or a later snapshot).
pub async fn wait_policy(stack: &Stack) {
    for _ in 0..200 {
        if stack.gateway.state.table.current().policy.version() > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the policy never reached the gateway");
}

/// Waits until the gateway's policy holds the scope document `name`.
pub async fn wait_scope(stack: &Stack, name: &str) {
    for _ in 0..200 {
        if stack
            .gateway
            .state
            .table
            .current()
            .documents
            .iter()
            .any(|d| d.name() == name)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("scope {name} never reached the gateway");
}

/// The text of a tool result's first content item.
pub fn text_of(reply: &Value) -> String {
    reply["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The gateway's Prometheus metrics, as text.
pub async fn metrics_of(gateway: &Gateway) -> String {
    client()
        .get(format!("http://{}/metrics", gateway.metrics_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
