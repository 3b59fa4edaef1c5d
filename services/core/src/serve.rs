//! What every mcpgw binary does the same way around its HTTP service: run `main`'s async work
//! and turn failures into exit codes, serve a router until told to stop, stop on SIGTERM or
//! Ctrl-C, answer the container `healthcheck` subcommand, the fallbacks for unknown routes
//! and methods in the error envelope, `/health` and `/ready`, and the frame of a service's API:
//! its OpenAPI document's head ([`ApiInfo`]) and the router around its routes ([`frame`]).

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::ApiError;

/// Runs `work` on a multi-threaded runtime; an error is printed (with its causes) and exits 1.
pub fn run(work: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(work);
    // The log writer buffers lines (telemetry::writer): the last ones go out before exit.
    crate::telemetry::writer::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Serves `router` on `listener` until `stop` turns true, then lets in-flight requests finish;
/// the connection rules (timeouts, the cap, early answers) are [`crate::listener`]'s.
pub fn spawn_server(
    listener: TcpListener,
    router: axum::Router,
    stop: watch::Receiver<bool>,
    listeners: &crate::listener::Listeners,
) -> JoinHandle<()> {
    listeners.serve(listener, router, stop)
}

/// Resolves on SIGTERM (what ECS sends) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// The `healthcheck` subcommand: succeeds if the service listening on `listen` answers
/// `GET /health` with 200 within 3 s. Plain HTTP over a socket, so a distroless image needs no
/// curl.
pub async fn healthcheck(listen: SocketAddr) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    let limit = Duration::from_secs(3);
    let mut stream = tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {addr} within 3 s"))??;
    stream
        .write_all(
            format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut response))
        .await
        .map_err(|_| anyhow::anyhow!("/health did not finish within 3 s"))??;
    if response.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        anyhow::bail!("/health did not answer 200")
    }
}

/// Fallback for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::not_found(
        "route_not_found",
        "no such endpoint; see /api/v1/openapi.json",
    )
}

/// Fallback for a known route with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not support that method; see /api/v1/openapi.json",
    )
}

/// The body of `/health` and `/ready`.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Status {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Status)))]
pub async fn health() -> axum::Json<Status> {
    axum::Json(Status {
        status: "ok".to_owned(),
        store: None,
    })
}

/// The `/ready` answer: 200 when `ping` succeeds within 2 s, else 503 naming the store.
pub async fn readiness<E: std::fmt::Display>(
    backend: &str,
    ping: impl Future<Output = Result<(), E>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(())) => axum::Json(Status {
            status: "ready".to_owned(),
            store: Some(backend.to_owned()),
        })
        .into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: store unreachable");
            ApiError::unavailable(format!("the {backend} store is unreachable")).into_response()
        }
        Err(_) => ApiError::unavailable(format!("the {backend} store did not answer within 2 s"))
            .into_response(),
    }
}

/// Declares the bearer security scheme `name` in an OpenAPI document.
pub fn add_bearer_scheme(openapi: &mut utoipa::openapi::OpenApi, name: &str, format: &str) {
    use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
    let components = openapi.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        name,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format(format)
                .build(),
        ),
    );
}

/// Defines a service's `/ready` handler, `ready`, for its state type: `|state| store` names
/// the store to ping (see [`readiness`]). A macro, because utoipa documents one handler
/// function, not a generic one.
#[macro_export]
macro_rules! ready_handler {
    ($state:ty, |$s:ident| $store:expr) => {
        /// Readiness: the store answers within 2 s.
        #[utoipa::path(get, path = "/ready", tag = "operations",
            responses((status = 200, body = mcpgw_core::serve::Status), (status = 503, body = mcpgw_core::error::ErrorBody)))]
        async fn ready(
            axum::extract::State($s): axum::extract::State<$state>,
        ) -> axum::response::Response {
            let store = $store;
            mcpgw_core::serve::readiness(store.backend(), store.ping()).await
        }
    };
}

/// The head of a service's OpenAPI document. The rest of it is the same for every service:
/// the workspace's license, the error envelope's schema, one bearer security scheme, and the
/// `operations` tag of `/health` and `/ready` after the service's own tags.
pub struct ApiInfo {
    pub title: &'static str,
    pub description: &'static str,
    pub version: &'static str,
    /// The bearer security scheme the operations name: its name and what its token is.
    pub bearer: (&'static str, &'static str),
    /// The service's tags, `(name, description)`, in the order the document lists them.
    pub tags: &'static [(&'static str, &'static str)],
}

impl ApiInfo {
    /// The document without paths (the service's router adds them).
    pub fn document(&self) -> utoipa::openapi::OpenApi {
        use utoipa::openapi::tag::TagBuilder;
        use utoipa::openapi::{ComponentsBuilder, InfoBuilder, LicenseBuilder, OpenApiBuilder};
        let license = env!("CARGO_PKG_LICENSE");
        let info = InfoBuilder::new()
            .title(self.title)
            .description(Some(self.description))
            .license(Some(
                LicenseBuilder::new()
                    .name(license)
                    .identifier(Some(license))
                    .build(),
            ))
            .version(self.version);
        let operations = ("operations", "Liveness and readiness");
        let tags = self.tags.iter().chain([&operations]).map(|(name, about)| {
            TagBuilder::new()
                .name(*name)
                .description(Some(*about))
                .build()
        });
        let components = ComponentsBuilder::new()
            .schema_from::<crate::error::ErrorBody>()
            .build();
        let mut doc = OpenApiBuilder::new()
            .info(info)
            .components(Some(components))
            .tags(Some(tags))
            .build();
        add_bearer_scheme(&mut doc, self.bearer.0, self.bearer.1);
        doc
    }
}

/// A service's router around its own routes: `GET /api/v1/openapi.json` serving `api`, the
/// fallbacks in the error envelope, the body limit and the request telemetry.
pub fn frame<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
    api: utoipa::openapi::OpenApi,
    max_body_bytes: usize,
    metrics: crate::telemetry::HttpMetrics,
    state: S,
) -> axum::Router {
    let api = std::sync::Arc::new(api);
    router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let api = api.clone();
                async move { axum::Json(api.as_ref().clone()) }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::telemetry::observe,
        ))
        .with_state(state)
}
