//! A real MCP server for the tests, built with rmcp (the official Rust SDK) and served over
//! Streamable HTTP on loopback: tools that echo, write, stream progress, take long (and count
//! cancellations), return large results, and report the headers they received.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, ProgressNotificationParam, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};

#[derive(Default)]
pub struct Counters {
    pub cancelled: AtomicUsize,
    pub calls: AtomicUsize,
    /// POSTs without `Mcp-Session-Id`: the `initialize` of each session (or a stateless
    /// request), except the registry's. Its health check of a new server (an `initialize`
    /// due at a tick plus jitter after registration) lands at any moment of a test.
    pub sessionless_posts: AtomicUsize,
}

#[derive(Clone)]
pub struct TestServer {
    tool_router: ToolRouter<Self>,
    counters: Arc<Counters>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct Text {
    pub text: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct Size {
    pub bytes: usize,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct Millis {
    pub ms: u64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct Steps {
    pub steps: u32,
}

#[tool_router]
impl TestServer {
    pub fn new(counters: Arc<Counters>) -> Self {
        Self {
            tool_router: Self::tool_router(),
            counters,
        }
    }

    #[tool(description = "Echo the text back", annotations(read_only_hint = true))]
    fn echo(&self, Parameters(Text { text }): Parameters<Text>) -> String {
        self.counters.calls.fetch_add(1, Ordering::SeqCst);
        text
    }

    #[tool(description = "Store a note (a write)")]
    fn write_note(&self, Parameters(Text { text }): Parameters<Text>) -> String {
        self.counters.calls.fetch_add(1, Ordering::SeqCst);
        format!("stored: {text}")
    }

    #[tool(
        description = "Return a text of the given size",
        annotations(read_only_hint = true)
    )]
    fn big(&self, Parameters(Size { bytes }): Parameters<Size>) -> String {
        "x".repeat(bytes)
    }

    #[tool(
        description = "Sleep, counting cancellations",
        annotations(read_only_hint = true)
    )]
    async fn slow(
        &self,
        Parameters(Millis { ms }): Parameters<Millis>,
        ctx: RequestContext<RoleServer>,
    ) -> String {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => "done".to_owned(),
            _ = ctx.ct.cancelled() => {
                self.counters.cancelled.fetch_add(1, Ordering::SeqCst);
                "cancelled".to_owned()
            }
        }
    }

    #[tool(
        description = "Send progress notifications, then answer",
        annotations(read_only_hint = true)
    )]
    async fn progress(
        &self,
        Parameters(Steps { steps }): Parameters<Steps>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, rmcp::ErrorData> {
        if let Some(token) = ctx.meta.get_progress_token() {
            for i in 1..=steps {
                let _ = ctx
                    .peer
                    .notify_progress(
                        ProgressNotificationParam::new(token.clone(), i as f64)
                            .with_total(steps as f64),
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(CallToolResult::success(vec![ContentBlock::text(format!(
            "{steps} steps"
        ))]))
    }

    #[tool(
        description = "Report request headers the server received",
        annotations(read_only_hint = true)
    )]
    fn headers(&self, ctx: RequestContext<RoleServer>) -> String {
        let parts = ctx.extensions.get::<http::request::Parts>();
        let mut out = serde_json::Map::new();
        if let Some(parts) = parts {
            for (k, v) in &parts.headers {
                out.insert(
                    k.to_string(),
                    serde_json::Value::String(v.to_str().unwrap_or("").to_owned()),
                );
            }
        }
        serde_json::Value::Object(out).to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("gateway test server")
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

/// Whether the registry (its health checks and watchers) sent a request: by its user agent.
fn from_registry(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("mcpgw-registry/"))
}

/// Serves the test server on loopback. `json` answers with plain JSON instead of SSE.
pub async fn start(json: bool) -> Upstream {
    let counters = Arc::new(Counters::default());
    let c = Arc::clone(&counters);
    let mut config = StreamableHttpServerConfig::default();
    config.json_response = json;
    let service: StreamableHttpService<TestServer, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(TestServer::new(Arc::clone(&c))),
            Default::default(),
            config,
        );
    let seen = Arc::clone(&counters);
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                if request.method() == http::Method::POST
                    && !request.headers().contains_key("mcp-session-id")
                    && !from_registry(request.headers())
                {
                    seen.sessionless_posts.fetch_add(1, Ordering::SeqCst);
                }
                next.run(request)
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Upstream { addr, counters }
}
