//! Support for `scripts/bench-gateway.sh`: the pieces around the gateway under test, and a
//! client that holds many open SSE streams.
//!
//! `stack` starts a loopback token issuer and a trivial MCP server (rmcp, the official Rust
//! SDK: one `echo` tool, stateless, answers as plain JSON so one `tools/call` is one POST and
//! one JSON answer), registers that server with a running registry, approves it for dev, lets
//! group `bench` call `echo`, creates the gateway's `gateway:sync` API key, writes a gateway
//! config file, and writes what the load generator needs (URLs, a bearer token) as one JSON
//! object to `--out`. Then it serves until SIGTERM or Ctrl-C. `GET /count` on the MCP server
//! answers how many times `echo` ran, so a benchmark can check that every request it timed
//! reached the tool.
//!
//! `streams` opens `--count` legacy SSE streams (`GET /{server}/sse`) on a gateway, waits for
//! each one's `endpoint` event, prints `open N` and holds them until SIGTERM or Ctrl-C.
//!
//! Everything binds and connects to 127.0.0.1 only. Secrets come from the environment
//! (`MCPGW_BENCH_ADMIN_KEY`, `MCPGW_BENCH_TOKEN`), not argv, so they do not show in `ps`.
//!
//! ```text
//! cargo run --release -p gateway --example bench_stack -- stack --registry http://127.0.0.1:7860 …
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{Parser, Subcommand};
use gateway::upstream_client::UpstreamClient;
use mcpgw_test_support::TestIssuer;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AUDIENCE: &str = "mcpgw-gateway";
const GROUP: &str = "bench";

#[derive(Parser)]
#[command(about = "Benchmark support for scripts/bench-gateway.sh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Token issuer + MCP server, registered and approved; writes the gateway config.
    Stack(StackArgs),
    /// Hold many open SSE streams on a gateway.
    Streams(StreamArgs),
    /// A bare forwarder (axum + the gateway's upstream client, nothing else): the floor
    /// any proxy built on them pays for the extra hop.
    Proxy(ProxyArgs),
}

#[derive(Parser)]
struct ProxyArgs {
    /// Where to listen.
    #[arg(long)]
    listen: SocketAddr,
    /// The MCP endpoint every POST /mcp is forwarded to.
    #[arg(long)]
    upstream: String,
}

#[derive(Parser)]
struct StackArgs {
    /// Base URL of a running registry (admin key in MCPGW_BENCH_ADMIN_KEY).
    #[arg(long)]
    registry: String,
    #[arg(long, env = "MCPGW_BENCH_ADMIN_KEY", hide_env_values = true)]
    admin_key: String,
    /// Where the gateway will listen (written into its config).
    #[arg(long)]
    gateway_listen: SocketAddr,
    #[arg(long)]
    gateway_metrics_listen: SocketAddr,
    /// The gateway's data directory; its config is written there as gateway.toml.
    #[arg(long)]
    gateway_data: PathBuf,
    /// The registry's credential-sealing key file (base64 of 32 bytes), shared with the gateway.
    #[arg(long)]
    sealing_key_file: PathBuf,
    /// The gateway's limits.streams_per_caller (the stream test opens many as one caller).
    #[arg(long, default_value_t = 20_000)]
    streams_per_caller: u32,
    /// The gateway's limits.calls_per_minute per caller and server: high enough never to
    /// refuse a benchmark request, but not 0, so the rate limiter still runs on every call.
    #[arg(long, default_value_t = 1_000_000_000)]
    calls_per_minute: u32,
    /// Extra TOML appended to the gateway config.
    #[arg(long, default_value = "")]
    gateway_extra_toml: String,
    /// The registry path of the benchmark server.
    #[arg(long, default_value = "bench")]
    server: String,
    /// The JSON description is written here (mode 0600: it holds a bearer token).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Parser)]
struct StreamArgs {
    /// The gateway's base URL, e.g. http://127.0.0.1:8080 (token in MCPGW_BENCH_TOKEN).
    #[arg(long)]
    url: String,
    #[arg(long, env = "MCPGW_BENCH_TOKEN", hide_env_values = true)]
    token: String,
    #[arg(long, default_value = "bench")]
    server: String,
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 200)]
    parallel: usize,
    /// Give up if opening them all takes longer than this.
    #[arg(long, default_value_t = 180)]
    timeout_secs: u64,
}

// ---------------------------------------------------------------------------------------------
// The MCP server

#[derive(Clone)]
struct Echo {
    tool_router: ToolRouter<Self>,
    calls: Arc<AtomicU64>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct Text {
    text: String,
}

#[tool_router]
impl Echo {
    fn new(calls: Arc<AtomicU64>) -> Self {
        Self {
            tool_router: Self::tool_router(),
            calls,
        }
    }

    #[tool(description = "Echo the text back", annotations(read_only_hint = true))]
    fn echo(&self, Parameters(Text { text }): Parameters<Text>) -> String {
        self.calls.fetch_add(1, Ordering::Relaxed);
        text
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

async fn serve_upstream() -> anyhow::Result<(SocketAddr, Arc<AtomicU64>)> {
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    // Stateless with JSON answers: each tools/call is one POST answered by one JSON body.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true);
    let service: StreamableHttpService<Echo, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(Echo::new(Arc::clone(&c))),
        Default::default(),
        config,
    );
    let count = Arc::clone(&calls);
    let app = axum::Router::new().nest_service("/mcp", service).route(
        "/count",
        axum::routing::get(move || {
            let n = count.load(Ordering::Relaxed);
            async move { n.to_string() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, calls))
}

// ---------------------------------------------------------------------------------------------
// stack

async fn admin(
    http: &reqwest::Client,
    args: &StackArgs,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let url = format!("{}{path}", args.registry.trim_end_matches('/'));
    let response = http
        .request(method.clone(), &url)
        .bearer_auth(&args.admin_key)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    ensure!(status.is_success(), "{method} {path}: {status}: {text}");
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

async fn stack(args: StackArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let issuer = TestIssuer::start().await;
    let (upstream, _calls) = serve_upstream().await?;
    let upstream_url = format!("http://{upstream}/mcp");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;

    let server = args.server.as_str();
    admin(
        &http,
        &args,
        reqwest::Method::POST,
        "/api/v1/servers",
        json!({
            "path": server,
            "name": "Gateway benchmark echo server",
            "endpoint": {"transport": "streamable-http", "url": upstream_url},
            "governance": {"owner_team": "platform"}
        }),
    )
    .await?;
    // Tools discovered before the review, so the review approves them (tool integrity).
    admin(
        &http,
        &args,
        reqwest::Method::POST,
        &format!("/api/v1/servers/{server}/tools/refresh"),
        json!({}),
    )
    .await?;
    for to in ["submitted", "security_review", "approved_dev"] {
        admin(
            &http,
            &args,
            reqwest::Method::POST,
            &format!("/api/v1/servers/{server}/lifecycle"),
            json!({"to": to, "reason": "gateway benchmark"}),
        )
        .await?;
    }
    admin(
        &http,
        &args,
        reqwest::Method::PUT,
        "/api/v1/scopes/bench-echo",
        json!({
            "name": "bench-echo",
            "group_mappings": [GROUP],
            "server_access": [{"server": server, "methods": ["tools/call"], "tools": ["echo"]}]
        }),
    )
    .await?;
    let created = admin(
        &http,
        &args,
        reqwest::Method::POST,
        "/api/v1/api-keys",
        json!({"name": "bench-gateway", "permissions": ["gateway:sync"]}),
    )
    .await?;
    let gateway_key = created["key"]
        .as_str()
        .context("the registry did not return the new API key")?;

    // A token valid for a day: long enough for any run, verified once and then cached.
    let mut claims = issuer.claims("bench-user", &[GROUP], AUDIENCE);
    claims["exp"] = json!(chrono::Utc::now().timestamp() + 24 * 3600);
    let token = issuer.sign(&claims);

    let data = &args.gateway_data;
    std::fs::create_dir_all(data)?;
    let session_key = mcpgw_core::secrets::Keyring::generate_base64();
    let config = format!(
        "listen = \"{listen}\"\nmetrics_listen = \"{metrics}\"\ndata_dir = {data}\n\
         public_url = \"http://{listen}\"\ninstance_id = \"bench\"\n\
         [registry]\nurl = {registry}\n[registry.api_key]\nvalue = {key}\n\
         [secrets.sealing_key]\nfile = {sealing}\n[secrets.session_key]\nvalue = {session}\n\
         [egress]\nallow_loopback = true\n\
         [limits]\nstreams_per_caller = {streams}\ncalls_per_minute = {cpm}\n\
         [[auth.issuers]]\nissuer = {issuer}\naudiences = [\"{AUDIENCE}\"]\n{extra}\n",
        listen = args.gateway_listen,
        metrics = args.gateway_metrics_listen,
        data = toml_string(&data.display().to_string()),
        registry = toml_string(&args.registry),
        key = toml_string(gateway_key),
        sealing = toml_string(&args.sealing_key_file.display().to_string()),
        session = toml_string(secrecy::ExposeSecret::expose_secret(&session_key)),
        streams = args.streams_per_caller,
        cpm = args.calls_per_minute,
        issuer = toml_string(&issuer.issuer),
        extra = args.gateway_extra_toml,
    );
    // Check it the way the gateway will load it, so a mistake shows here and not as a
    // gateway that exits at once.
    gateway::config::GatewayConfig::from_toml_layers(&[&config])
        .map_err(|e| anyhow::anyhow!("the generated gateway config is invalid: {e}"))?;
    let config_file = data.join("gateway.toml");
    write_private(&config_file, &config)?;

    let description = json!({
        "direct_url": upstream_url,
        "gateway_url": format!("http://{}/{server}/mcp", args.gateway_listen),
        "gateway_base": format!("http://{}", args.gateway_listen),
        "gateway_metrics": format!("http://{}/metrics", args.gateway_metrics_listen),
        "count_url": format!("http://{upstream}/count"),
        "gateway_config": config_file,
        "token": token,
        "issuer": issuer.issuer,
        "server": server,
    });
    let tmp = args.out.with_extension("tmp");
    write_private(&tmp, &format!("{description}\n"))?;
    std::fs::rename(&tmp, &args.out)?;
    eprintln!(
        "bench_stack: upstream {upstream_url}, issuer {}; serving",
        issuer.issuer
    );
    shutdown_signal().await;
    Ok(())
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use mcpgw_core::secrets::{IfExists, write_private};
    write_private(path, text.as_bytes(), IfExists::Replace)
        .with_context(|| format!("writing {}", path.display()))
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

// ---------------------------------------------------------------------------------------------
// streams

/// Opens one legacy SSE stream and reads until its `endpoint` event: the gateway then holds
/// everything it keeps for an open stream.
async fn open_stream(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
) -> anyhow::Result<tokio::net::TcpStream> {
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    socket.write_all(&request).await?;
    let mut seen = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            bail!(
                "the gateway closed the stream: {}",
                String::from_utf8_lossy(&seen)
            );
        }
        seen.extend_from_slice(&buf[..n]);
        if !seen.starts_with(b"HTTP/1.1 200") && seen.len() >= 12 {
            bail!(
                "the gateway refused the stream: {}",
                String::from_utf8_lossy(&seen)
            );
        }
        if seen.windows(15).any(|w| w == b"event: endpoint") {
            return Ok(socket);
        }
        ensure!(
            seen.len() < 64 * 1024,
            "no endpoint event in the first 64 KiB"
        );
    }
}

async fn streams(args: StreamArgs) -> anyhow::Result<()> {
    let url = url::Url::parse(&args.url)?;
    let host = url.host_str().context("--url needs a host")?;
    ensure!(
        host == "127.0.0.1",
        "only loopback gateways (http://127.0.0.1:PORT)"
    );
    let port = url.port_or_known_default().context("--url needs a port")?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let request = Arc::new(
        format!(
            "GET /{}/sse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {}\r\n\
             Accept: text/event-stream\r\n\r\n",
            args.server, args.token
        )
        .into_bytes(),
    );
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(args.parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.count {
        let permit = Arc::clone(&gate).acquire_owned().await?;
        let request = Arc::clone(&request);
        tasks.spawn(async move {
            let _permit = permit;
            open_stream(addr, request).await
        });
    }
    let mut open = Vec::with_capacity(args.count);
    let deadline = Duration::from_secs(args.timeout_secs);
    while let Some(joined) = tokio::time::timeout(
        deadline.saturating_sub(started.elapsed()),
        tasks.join_next(),
    )
    .await
    .context("opening the streams took too long")?
    {
        open.push(joined??);
    }
    println!(
        "open {} in {:.1} s",
        open.len(),
        started.elapsed().as_secs_f64()
    );
    use std::io::Write;
    std::io::stdout().flush()?;
    shutdown_signal().await;
    drop(open);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// proxy

/// Forwards the body and the MCP headers, buffers the answer (as the gateway does for a JSON
/// answer) and passes status, content type and body back. No auth, policy, audit, metrics.
async fn forward(
    axum::extract::State((client, upstream)): axum::extract::State<(UpstreamClient, http::Uri)>,
    headers: http::HeaderMap,
    body: bytes::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut out = http::HeaderMap::new();
    for name in [
        "content-type",
        "accept",
        "mcp-protocol-version",
        "mcp-method",
        "mcp-name",
        "mcp-session-id",
    ] {
        if let Some(v) = headers.get(name) {
            out.insert(http::HeaderName::from_static(name), v.clone());
        }
    }
    let mut request = http::Request::new(gateway::upstream_client::UpstreamBody::new(body));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = upstream;
    *request.headers_mut() = out;
    let answer = match client.send(request).await {
        Ok(r) => r,
        Err(e) => return (http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    let content_type = answer.headers().get("content-type").cloned();
    match gateway::upstream_client::read_limited(answer, usize::MAX).await {
        Some(bytes) => {
            let mut r = (status, bytes).into_response();
            if let Some(ct) = content_type {
                r.headers_mut().insert("content-type", ct);
            }
            r
        }
        None => (http::StatusCode::BAD_GATEWAY, "the answer broke off").into_response(),
    }
}

async fn proxy(args: ProxyArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // The gateway's own upstream client.
    let egress = Arc::new(mcpgw_core::egress::EgressPolicy::new(Default::default()));
    let client = UpstreamClient::new(Duration::from_secs(5), egress)?;
    let upstream: http::Uri = args.upstream.parse().context("--upstream")?;
    let app = axum::Router::new()
        .route("/mcp", axum::routing::post(forward))
        .with_state((client, upstream));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tokio::select! {
        r = axum::serve(listener, app) => r?,
        _ = shutdown_signal() => {}
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Stack(a) => stack(a).await,
            Command::Streams(a) => streams(a).await,
            Command::Proxy(a) => proxy(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
