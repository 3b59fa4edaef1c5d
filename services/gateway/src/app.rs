//! Assembly: the state built, routes, middleware, and the process that runs them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode};
use mcpgw_core::egress::EgressPolicy;
use mcpgw_core::secrets::Keyring;
use mcpgw_core::telemetry::metrics_router;
use mcpgw_core::token::TokenValidator;
use secrecy::SecretString;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::audit::AuditSink;
use crate::caller::Authenticator;
use crate::config::GatewayConfig;
use crate::limits::{RateLimiter, StreamCounter};
use crate::metrics::Metrics;
use crate::proxy;
use crate::session::SessionSealer;
use crate::shared::SharedSettings;
use crate::sync::{RouteTable, Syncer};
use crate::upstream_client::UpstreamClient;

pub use crate::state::{Gateway, LegacyConnection, LegacyConnections};

/// The client of the shared upstreams (legacy SSE) and stdio health reports. Literal IP hosts
/// skip DNS, so routes check them as well (see [`check_literal_ip`]).
fn shared_upstream_client(
    config: &GatewayConfig,
    egress: Arc<EgressPolicy>,
) -> anyhow::Result<reqwest::Client> {
    // No redirects, no proxy, every connected address checked (core's egress rules).
    Ok(mcpgw_core::egress::client_builder(egress)
        .connect_timeout(config.upstream.connect_timeout())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .user_agent(concat!("mcpgw-gateway/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Refuses routes whose URL host is a literal IP the egress policy forbids.
pub use mcpgw_core::egress::check_literal_ip;

async fn resolve_secret(
    source: &mcpgw_core::secrets::SecretSource,
    config: &GatewayConfig,
    what: &str,
) -> anyhow::Result<Option<SecretString>> {
    source
        .resolve(&config.secrets.aws)
        .await
        .with_context(|| format!("reading {what}"))
}

/// Builds the state (no listeners, no background tasks).
pub async fn build(config: GatewayConfig) -> anyhow::Result<(Arc<Gateway>, Syncer)> {
    let metrics = Metrics::new();
    let s = &config.secrets;
    let keyring = mcpgw_core::secrets::load_sealing_keyring(
        &s.sealing_key,
        &s.previous_sealing_keys,
        &s.aws,
        None,
    )
    .await
    .context("loading secrets.sealing_key (and previous_sealing_keys)")?;
    let session_key = match resolve_secret(
        &config.secrets.session_key,
        &config,
        "secrets.session_key",
    )
    .await?
    {
        Some(k) => k,
        None => {
            tracing::warn!(
                "no secrets.session_key: sessions are sealed with a key of this process only (they will not move between replicas or survive a restart)"
            );
            Keyring::generate_base64()
        }
    };
    let session_ring = Keyring::from_base64(&session_key, &[])
        .context("secrets.session_key must be base64 of 32 bytes")?;
    let api_key = resolve_secret(&config.registry.api_key, &config, "registry.api_key").await?;
    let egress = Arc::new(EgressPolicy::new(config.egress));
    let upstream_http =
        UpstreamClient::new(config.upstream.connect_timeout(), Arc::clone(&egress))?;
    let shared_http = shared_upstream_client(&config, Arc::clone(&egress))?;
    let registry_http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let validator = TokenValidator::new(config.auth.issuers.clone(), Default::default())
        .map_err(|e| anyhow::anyhow!("auth.issuers: {e}"))?;
    let public_base = config.public_base().to_owned();
    let public_url = url::Url::parse(&public_base)?;
    let mut allowed_hosts = config.allowed_hosts.clone();
    if allowed_hosts.is_empty() {
        allowed_hosts.push(public_url.host_str().unwrap_or("localhost").to_owned());
        for local in ["localhost", "127.0.0.1", "[::1]"] {
            allowed_hosts.push(local.to_owned());
        }
    }
    let mut allowed_origins = config.allowed_origins.clone();
    if allowed_origins.is_empty() {
        allowed_origins.push(public_url.origin().ascii_serialization());
    }
    let table = Arc::new(RouteTable::new());
    let audit = AuditSink::new(
        config.audit.queue_capacity,
        config.audit.batch_size,
        metrics.clone(),
    );
    let shared = SharedSettings {
        http: shared_http,
        restart_min: Duration::from_millis(config.stdio.restart_min_ms),
        restart_max: Duration::from_millis(config.stdio.restart_max_ms),
        start_timeout: Duration::from_millis(config.stdio.start_timeout_ms),
        max_message_bytes: config.upstream.max_message_bytes,
        metrics: metrics.clone(),
        sandbox: Arc::new(stdio_sandbox(&config)?),
    };
    let syncer = Syncer {
        table: Arc::clone(&table),
        metrics: metrics.clone(),
        http: registry_http,
        registry_url: config.registry.url.clone(),
        api_key: api_key.clone(),
        snapshot_file: config.snapshot_file(),
        poll_wait: Duration::from_secs(config.sync.poll_wait_seconds),
        retry: Duration::from_secs(config.sync.retry_seconds),
        keyring,
        default_concurrency: config.upstream.max_concurrency,
        shared,
        egress: Arc::clone(&egress),
        upstream_auth: mcpgw_core::upstream_auth::UpstreamAuthContext::new(
            Default::default(),
            Some((*egress).clone()),
            mcpgw_core::upstream_auth::AwsIdentity::default_chain(),
        )
        .map_err(|e| anyhow::anyhow!("upstream credentials: {e}"))?,
    };
    let gateway = Gateway {
        public_base,
        instance: config.instance(),
        table,
        auth: Authenticator::new(Arc::new(validator), config.auth.token_cache_entries),
        sessions: SessionSealer::new(session_ring, 24 * 3600),
        upstream_http,
        metrics,
        audit,
        rate: RateLimiter::default(),
        streams: StreamCounter::default(),
        legacy: Arc::new(LegacyConnections::default()),
        allowed_hosts,
        allowed_origins,
        aggregate: Default::default(),
        config,
    };
    Ok((Arc::new(gateway), syncer))
}

/// The MCP router with its middleware.
pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/health", get(mcpgw_core::serve::health))
        .route("/ready", get(ready))
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata_root),
        )
        .route(
            "/.well-known/oauth-protected-resource/{server}/mcp",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata_aggregate),
        )
        .route(
            "/mcp",
            post(crate::aggregate::endpoint::post)
                .get(crate::aggregate::endpoint::get)
                .delete(crate::aggregate::endpoint::delete),
        )
        .route(
            "/{server}/mcp",
            post(proxy::post).get(proxy::get).delete(proxy::delete),
        )
        .route("/{server}/sse", get(proxy::sse_connect))
        .route("/{server}/message", post(proxy::sse_message))
        .fallback(mcpgw_core::serve::not_found)
        // Bodies are read (with the limit) by the handlers, after authentication.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&gw),
            guard_host_and_origin,
        ))
        .layer(axum::middleware::from_fn_with_state(
            gw.metrics.http.clone(),
            mcpgw_core::telemetry::observe,
        ))
        .with_state(gw)
}

/// DNS-rebinding protection: the Host must be ours, and a browser's Origin must be allowed.
async fn guard_host_and_origin(
    State(gw): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    // Load balancer health checks use the target's address as Host; those paths reveal nothing.
    if matches!(request.uri().path(), "/health" | "/ready") {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !host_allowed(&gw.allowed_hosts, host) {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"code": "host_not_allowed", "detail": format!("Host {host:?} is not one this gateway serves (allowed_hosts)")})),
        )
            .into_response();
    }
    if let Some(origin) = request.headers().get(http::header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !gw
            .allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
        {
            return (
                StatusCode::FORBIDDEN,
                axum::Json(json!({"code": "origin_not_allowed", "detail": format!("Origin {origin:?} is not allowed (allowed_origins)")})),
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// An entry with a port must match exactly; one without matches that host on any port.
fn host_allowed(allowed: &[String], host: &str) -> bool {
    let bare = match host.rsplit_once(':') {
        Some((h, port))
            if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') =>
        {
            h
        }
        _ => host,
    };
    allowed
        .iter()
        .any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(bare))
}

async fn ready(State(gw): State<Arc<Gateway>>) -> Response {
    if gw.table.is_loaded() {
        axum::Json(json!({"status": "ready", "snapshot": gw.table.current().version}))
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                json!({"status": "waiting for the first routing snapshot from the registry"}),
            ),
        )
            .into_response()
    }
}

fn metadata_document(gw: &Gateway, resource: String) -> Response {
    let mut servers = gw.config.auth.authorization_servers.clone();
    if servers.is_empty() {
        servers = gw
            .config
            .auth
            .issuers
            .iter()
            .map(|i| i.issuer.clone())
            .collect();
    }
    let mut r = axum::Json(json!({
        "resource": resource,
        "authorization_servers": servers,
        "scopes_supported": gw.config.auth.scopes_supported,
        "bearer_methods_supported": ["header"],
        "resource_name": "mcpgw gateway",
    }))
    .into_response();
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

async fn resource_metadata_root(State(gw): State<Arc<Gateway>>) -> Response {
    metadata_document(&gw, gw.public_base.clone())
}

/// The metadata of the aggregated endpoint `/mcp`.
async fn resource_metadata_aggregate(State(gw): State<Arc<Gateway>>) -> Response {
    metadata_document(&gw, format!("{}/mcp", gw.public_base))
}

async fn resource_metadata(State(gw): State<Arc<Gateway>>, Path(server): Path<String>) -> Response {
    if gw.table.current().get(&server).is_none() {
        return mcpgw_core::serve::not_found().await.into_response();
    }
    metadata_document(&gw, format!("{}/{server}/mcp", gw.public_base))
}

/// A running gateway.
pub struct Running {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub state: Arc<Gateway>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving, lets requests finish, flushes audit events.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

async fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {key} {addr}: is another process using it?"))
}

/// Binds the listeners, loads the last good snapshot, starts syncing, and serves.
pub async fn start(config: GatewayConfig) -> anyhow::Result<Running> {
    let listener = bind(config.listen, "listen").await?;
    let metrics_listener = bind(config.metrics_listen, "metrics_listen").await?;
    let audit_batch = config.audit.batch_size;
    let audit_flush = Duration::from_millis(config.audit.flush_ms);
    let (gw, syncer) = build(config).await?;
    syncer.load_from_disk();
    let (shutdown, stop) = watch::channel(false);
    let mut tasks = Vec::new();
    let addr = listener.local_addr()?;
    let metrics_addr = metrics_listener.local_addr()?;
    let listeners = mcpgw_core::listener::Listeners::new(
        &gw.config.listener,
        &gw.metrics.http.registry,
        "mcpgw_gateway",
    );
    tasks.push(mcpgw_core::serve::spawn_server(
        listener,
        router(Arc::clone(&gw)),
        stop.clone(),
        &listeners,
    ));
    tasks.push(mcpgw_core::serve::spawn_server(
        metrics_listener,
        metrics_router(gw.metrics.http.registry.clone()),
        stop.clone(),
        &listeners.for_operations(),
    ));
    let registry_http = syncer.http.clone();
    let api_key = syncer.api_key.clone();
    let stdio_health = crate::stdio_health::StdioHealth {
        table: Arc::clone(&gw.table),
        http: registry_http.clone(),
        registry_url: gw.config.registry.url.clone(),
        api_key: api_key.clone(),
        gateway: gw.instance.clone(),
        interval: Duration::from_secs(gw.config.stdio.health_interval_seconds),
        probe: crate::stdio_health::ProbeSettings {
            timeout: Duration::from_millis(gw.config.stdio.health_timeout_ms),
            degraded: Duration::from_millis(gw.config.stdio.health_degraded_ms),
        },
    };
    tasks.push(tokio::spawn(stdio_health.run(stop.clone())));
    tasks.push(tokio::spawn(syncer.run(stop.clone())));
    tasks.push(tokio::spawn(Arc::clone(&gw.audit).run(
        registry_http,
        gw.config.registry.url.clone(),
        api_key,
        audit_batch,
        audit_flush,
        stop.clone(),
    )));
    // Snapshot age, refreshed every second.
    let table = Arc::clone(&gw.table);
    let age = gw.metrics.snapshot_age.clone();
    let mut stop_age = stop;
    tasks.push(tokio::spawn(async move {
        loop {
            age.set(table.age_seconds());
            tokio::select! {
                _ = stop_age.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }));
    tracing::info!(listen = %addr, metrics = %metrics_addr, registry = %gw.config.registry.url, "gateway started");
    Ok(Running {
        addr,
        metrics_addr,
        state: gw,
        shutdown,
        tasks,
    })
}

/// The stdio sandbox, and the gateway made non-dumpable so its children cannot read it.
fn stdio_sandbox(
    config: &crate::config::GatewayConfig,
) -> anyhow::Result<crate::stdio_sandbox::StdioSandbox> {
    crate::stdio_sandbox::harden_gateway_process();
    let sandbox = crate::stdio_sandbox::StdioSandbox::from_config(&config.stdio, &config.data_dir)
        .map_err(|e| anyhow::anyhow!("stdio.exec_helper: finding the gateway's own binary: {e}"))?;
    tracing::info!("{}", sandbox.describe());
    Ok(sandbox)
}
