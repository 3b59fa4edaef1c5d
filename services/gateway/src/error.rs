//! `ProxyError`: everything the gateway itself can refuse or fail on the request path, and the
//! one place that says what each becomes.
//!
//! Rules of this module:
//! - [`ProxyError::mapping`] is the only match over the variants and has no `_` arm: a new
//!   variant does not compile until it has an HTTP status, a JSON-RPC code (or an envelope
//!   code), a metric reason and an audit status.
//! - Every JSON-RPC code comes from [`jsonrpc::codes`] and every envelope code is written as
//!   `Body::Envelope("…")`, so `scripts/check-static.sh` can check both against
//!   docs/MCP-GATEWAY.md.
//! - Messages are the caller's: they say what happened and what to do, never a secret.
//! - Errors whose answer needs a challenge header built from policy (401, 403
//!   `insufficient_scope`) stay in `caller.rs`; the aggregate's `Refused` is still its own.

use axum::response::IntoResponse;
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::jsonrpc::{self, codes};
use crate::session::SessionError;
use crate::shared::SharedError;

/// Why an HTTP upstream request failed before it had a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFault {
    /// No response headers within `upstream.first_byte_timeout_ms`.
    Timeout,
    /// The connection could not be opened (refused, DNS, egress policy at connect time).
    Connect,
    /// The request could not be built or broke on the way.
    Transport,
    /// The gateway's credentials for the server could not be obtained.
    Credentials,
}

impl UpstreamFault {
    /// The `reason` label of `upstream_errors`.
    pub fn metric_reason(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Transport => "transport",
            Self::Credentials => "credentials",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(
        "no routable MCP server is registered at /{0} (it may be unknown, disabled or not approved for this stage)"
    )]
    ServerNotFound(String),
    #[error("the body is larger than {max} bytes (or broke off)")]
    BodyTooLarge { max: usize },
    /// Not JSON or not JSON-RPC (`-32700` / `-32600`, from [`jsonrpc::Incoming::parse`]).
    #[error("{}", .0.message)]
    Malformed(jsonrpc::Invalid),
    /// Era and header checks (`-32020` / `-32022`, with `error.data`).
    #[error("{}", .0.message)]
    Headers(jsonrpc::HeaderProblem),
    #[error(
        "the gateway cannot use this server's registration ({0}); the server's owner or the gateway's operator must fix it"
    )]
    RouteUnusable(String),
    #[error("{0} needs the Mcp-Session-Id of an initialized session")]
    SessionRequired(&'static str),
    #[error("session not found ({0}); start a new session with initialize")]
    SessionNotFound(SessionError),
    #[error(
        "no open SSE stream has this sessionId (this transport needs the POST to reach the gateway process that holds the stream)"
    )]
    LegacyStreamNotFound,
    #[error("{0}")]
    MethodNotAllowed(&'static str),
    #[error("rate limit reached for this caller; retry in {0} s")]
    RateLimited(u64),
    #[error("too many open streams for this caller")]
    TooManyStreams,
    #[error("the server has as many requests in flight as the gateway allows; retry shortly")]
    Busy,
    /// An HTTP upstream failed before it had a status; the message is already complete.
    #[error("{message}")]
    Upstream {
        fault: UpstreamFault,
        message: String,
    },
    #[error(
        "the server refused the gateway's credentials for it; its owner must update them in the registry"
    )]
    UpstreamRefusedCredentials,
    #[error("the upstream's session could not be carried: {0}")]
    SessionNotCarried(String),
    /// A stdio or legacy SSE upstream is not running or lost its connection.
    #[error("{0}")]
    Shared(SharedError),
    #[error("the server did not answer in time")]
    NoFirstMessage,
    #[error("the server ended its answer without a response")]
    NoResponse,
    /// The upstream's answer broke before or while it streamed.
    #[error("{0}")]
    AnswerBroke(String),
}

/// The body shape of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// A JSON-RPC error object with this code, carrying the request's id (or `null`).
    JsonRpc(i64),
    /// The documented envelope `{"code": "…", "detail": "…"}`.
    Envelope(&'static str),
}

/// What one [`ProxyError`] becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub status: StatusCode,
    pub body: Body,
    /// The `reason` label of `upstream_errors`, for failures of the upstream.
    pub upstream_reason: Option<&'static str>,
    /// The `status` of the request's metric and audit event.
    pub audit_status: &'static str,
    /// `Retry-After` in seconds.
    pub retry_after: Option<u64>,
}

impl ProxyError {
    /// The one mapping of every variant (no `_` arm on purpose).
    pub fn mapping(&self) -> Mapping {
        use StatusCode as S;
        let m = |status, body, upstream_reason, audit_status| Mapping {
            status,
            body,
            upstream_reason,
            audit_status,
            retry_after: None,
        };
        let rpc = Body::JsonRpc;
        match self {
            Self::ServerNotFound(_) => m(
                S::NOT_FOUND,
                Body::Envelope("server_not_found"),
                None,
                "not_found",
            ),
            Self::BodyTooLarge { .. } => m(
                S::PAYLOAD_TOO_LARGE,
                rpc(codes::INVALID_REQUEST),
                None,
                "invalid",
            ),
            Self::Malformed(e) => m(S::BAD_REQUEST, rpc(e.code), None, "invalid"),
            Self::Headers(p) => m(S::BAD_REQUEST, rpc(p.code), None, "invalid"),
            Self::RouteUnusable(_) => m(
                S::BAD_GATEWAY,
                rpc(codes::INTERNAL_ERROR),
                None,
                "upstream_error",
            ),
            Self::SessionRequired(_) => {
                m(S::BAD_REQUEST, rpc(codes::INVALID_REQUEST), None, "invalid")
            }
            Self::SessionNotFound(_) | Self::LegacyStreamNotFound => m(
                S::NOT_FOUND,
                rpc(codes::INVALID_REQUEST),
                None,
                "session_not_found",
            ),
            Self::MethodNotAllowed(_) => m(
                S::METHOD_NOT_ALLOWED,
                Body::Envelope("method_not_allowed"),
                None,
                "invalid",
            ),
            Self::RateLimited(seconds) => Mapping {
                retry_after: Some(*seconds),
                ..m(
                    S::TOO_MANY_REQUESTS,
                    rpc(codes::INTERNAL_ERROR),
                    None,
                    "denied",
                )
            },
            Self::TooManyStreams => Mapping {
                retry_after: Some(5),
                ..m(
                    S::TOO_MANY_REQUESTS,
                    rpc(codes::INTERNAL_ERROR),
                    None,
                    "busy",
                )
            },
            Self::Busy => Mapping {
                retry_after: Some(1),
                ..m(
                    S::SERVICE_UNAVAILABLE,
                    rpc(codes::INTERNAL_ERROR),
                    None,
                    "busy",
                )
            },
            Self::Upstream { fault, .. } => match fault {
                UpstreamFault::Timeout => m(
                    S::GATEWAY_TIMEOUT,
                    rpc(codes::INTERNAL_ERROR),
                    Some(fault.metric_reason()),
                    "timeout",
                ),
                UpstreamFault::Connect | UpstreamFault::Transport | UpstreamFault::Credentials => {
                    m(
                        S::BAD_GATEWAY,
                        rpc(codes::INTERNAL_ERROR),
                        Some(fault.metric_reason()),
                        "upstream_error",
                    )
                }
            },
            Self::UpstreamRefusedCredentials => m(
                S::BAD_GATEWAY,
                rpc(codes::INTERNAL_ERROR),
                Some("upstream_auth"),
                "upstream_error",
            ),
            Self::SessionNotCarried(_) => m(
                S::BAD_GATEWAY,
                rpc(codes::INTERNAL_ERROR),
                None,
                "upstream_error",
            ),
            Self::Shared(_) => m(
                S::BAD_GATEWAY,
                rpc(codes::INTERNAL_ERROR),
                Some("unavailable"),
                "upstream_error",
            ),
            Self::NoFirstMessage => m(
                S::GATEWAY_TIMEOUT,
                rpc(codes::INTERNAL_ERROR),
                None,
                "timeout",
            ),
            Self::NoResponse | Self::AnswerBroke(_) => m(
                S::BAD_GATEWAY,
                rpc(codes::INTERNAL_ERROR),
                None,
                "upstream_error",
            ),
        }
    }

    /// The JSON body of this error for the request `id` (JSON-RPC errors carry it, or `null`).
    pub fn body(&self, id: Option<&Value>) -> Value {
        match self.mapping().body {
            Body::Envelope(code) => json!({"code": code, "detail": self.to_string()}),
            Body::JsonRpc(code) => {
                let mut body = jsonrpc::error_response(
                    id.cloned().unwrap_or(Value::Null),
                    code,
                    &self.to_string(),
                );
                if let Self::Headers(p) = self
                    && let Some(data) = &p.data
                {
                    body["error"]["data"] = data.clone();
                }
                body
            }
        }
    }

    /// The HTTP answer for the request `id`.
    pub fn into_response(self, id: Option<&Value>) -> axum::response::Response {
        let mapping = self.mapping();
        let mut r = json_response(mapping.status, &self.body(id));
        if let Some(seconds) = mapping.retry_after
            && let Ok(v) = HeaderValue::from_str(&seconds.to_string())
        {
            r.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        if let Self::MethodNotAllowed(_) = self {
            r.headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
        }
        r
    }
}

/// A JSON body with its content type.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> axum::response::Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_is_a_429_with_its_retry_after() {
        let m = ProxyError::RateLimited(7).mapping();
        assert_eq!(m.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(m.retry_after, Some(7));
        assert_eq!(m.audit_status, "denied");
    }

    #[test]
    fn an_upstream_timeout_is_a_504_and_counted_as_a_timeout() {
        let e = ProxyError::Upstream {
            fault: UpstreamFault::Timeout,
            message: "late".into(),
        };
        let m = e.mapping();
        assert_eq!(m.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(m.upstream_reason, Some("timeout"));
        assert_eq!(m.audit_status, "timeout");
        assert_eq!(e.body(None)["error"]["message"], "late");
    }

    #[test]
    fn an_unknown_server_gets_the_documented_envelope() {
        let body = ProxyError::ServerNotFound("x".into()).body(Some(&json!(1)));
        assert_eq!(body["code"], "server_not_found");
        assert!(body["detail"].as_str().unwrap().contains("/x"));
    }
}
