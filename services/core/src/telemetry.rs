//! Logs, request ids and Prometheus metrics, the same way in every service.
//!
//! - Logs are JSON lines on stdout (CloudWatch reads them) or compact text for people;
//!   field names are dotted (`http.route`, `duration_ms`). Tokens, secrets, authorization
//!   headers and bodies are never logged.
//! - Every request gets a request id: a well-formed incoming `x-request-id` is kept (so one id
//!   runs through all hops), anything else is replaced by a fresh UUID. The id is returned in
//!   the response header and recorded on the request span.
//! - HTTP metrics are labelled by matched route, never by raw path, so cardinality stays bounded.
//! - Logging stays off the request's critical path: JSON lines are written field by field
//!   ([`json_lines`]) into a buffer that a thread of its own writes to stdout ([`writer`]).

mod json_lines;
pub mod writer;

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header::HeaderName};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use serde::Deserialize;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

/// Logging settings shared by every service's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `json` (default) or `text`.
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,registry=debug`.
    #[serde(default = "default_filter")]
    pub filter: String,
}

fn default_filter() -> String {
    "info".to_owned()
}

/// Parses `log.filter`, so `--check-config` can refuse a bad one before a start does.
pub fn parse_filter(filter: &str) -> anyhow::Result<tracing_subscriber::EnvFilter> {
    tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("log.filter {filter:?} is not a valid filter: {e}"))
}

/// Installs the global tracing subscriber. Call once from `main`, never from tests.
pub fn init_logging(config: &LogConfig) -> anyhow::Result<()> {
    let filter = parse_filter(&config.filter)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer::BufferedStdout);
    match config.format {
        LogFormat::Json => builder
            .fmt_fields(json_lines::SpanFields)
            .event_format(json_lines::JsonLines::default())
            .try_init(),
        LogFormat::Text => builder.compact().try_init(),
    }
    .map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}

/// The request id of the current request, available as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

fn acceptable_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    ok.then(|| text.to_owned())
}

/// Middleware: assigns the request id, opens the request span, records metrics.
///
/// Runs on every request, so it allocates only the id itself: the route is the router's
/// shared `MatchedPath`, the method and status labels are static strings, and a kept id's
/// header value is the incoming one.
pub async fn observe(
    State(metrics): State<HttpMetrics>,
    mut request: Request,
    next: Next,
) -> Response {
    let (request_id, id_header) = match request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| Some((acceptable_request_id(v)?, v.clone())))
    {
        Some(kept) => kept,
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            let header = HeaderValue::from_str(&id).expect("a UUID is a valid header value");
            (id, header)
        }
    };
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = request.method().clone();
    // `&str` fields, not `%` (Display): a span's fields are formatted once per request, and
    // the formatting machinery cost more than the rest of the span.
    let span = tracing::info_span!(
        "request",
        request_id = request_id.as_str(),
        http.method = method.as_str(),
        http.route = route,
    );
    request.extensions_mut().insert(RequestId(request_id));
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    metrics
        .requests
        .with_label_values(&[method.as_str(), route, status.as_str()])
        .inc();
    metrics
        .duration
        .with_label_values(&[method.as_str(), route])
        .observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            http.status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request finished"
        );
    });
    response.headers_mut().insert(REQUEST_ID_HEADER, id_header);
    response
}

/// The HTTP metrics every service exports, in the service's own registry.
#[derive(Clone)]
pub struct HttpMetrics {
    pub registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl HttpMetrics {
    /// Creates the metrics with names prefixed by `service` (e.g. `mcpgw_registry`).
    pub fn new(service: &str) -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                format!("{service}_http_requests_total"),
                "HTTP requests handled, by method, matched route and status",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric definition");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                format!("{service}_http_request_duration_seconds"),
                "HTTP request latency, by method and matched route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method", "route"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(requests.clone()))
            .expect("metric registered once");
        registry
            .register(Box::new(duration.clone()))
            .expect("metric registered once");
        Self {
            registry,
            requests,
            duration,
        }
    }
}

/// The `/metrics` router, served on its own port so it is never exposed with the API.
pub fn metrics_router(registry: Registry) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let mut buffer = Vec::new();
                let encoder = TextEncoder::new();
                if let Err(e) = encoder.encode(&registry.gather(), &mut buffer) {
                    tracing::error!(error = %e, "encoding metrics failed");
                    return crate::error::ApiError::internal().into_response();
                }
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        encoder.format_type().to_owned(),
                    )],
                    buffer,
                )
                    .into_response()
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_well_formed() {
        let ok = HeaderValue::from_static("abc-123_x.y");
        assert_eq!(acceptable_request_id(&ok).as_deref(), Some("abc-123_x.y"));
        for bad in ["", "has space", "new\u{7f}line", &"x".repeat(65)] {
            if let Ok(v) = HeaderValue::from_str(bad) {
                assert_eq!(acceptable_request_id(&v), None, "{bad:?}");
            }
        }
    }
}
