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
//! - The 401 and 403 `insufficient_scope` answers carry a challenge header; they are variants
//!   here like every other refusal, and [`ProxyError::into_response`] has `caller.rs` build
//!   their challenge.
//! - The aggregated endpoint `/mcp` answers with the same variants: a tool the caller may not
//!   use is [`ProxyError::UnknownTool`] there as on `/{server}/mcp`.

use axum::response::IntoResponse;
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::caller::{self, AuthFailure};
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
    /// No token, a malformed `Authorization`, or a token that fails validation: 401 with the
    /// challenge that names the protected resource metadata.
    #[error("{failure:?}")]
    Unauthenticated {
        failure: AuthFailure,
        metadata_url: String,
    },
    /// The caller may not use this method here: 403 naming the scopes that would allow it.
    #[error("{detail}")]
    InsufficientScope {
        scopes: Vec<String>,
        metadata_url: String,
        detail: String,
    },
    /// A tool that does not exist, or that the caller may not use (answered the same).
    #[error("Unknown tool: {0}")]
    UnknownTool(String),
    /// `/mcp` with a query other than `mode=…`.
    #[error("{0}")]
    InvalidQuery(String),
    /// A method the aggregated endpoint does not offer.
    #[error("{0}")]
    NotOffered(String),
    /// Parameters of a method the gateway answers itself that do not fit it.
    #[error("{0}")]
    InvalidParams(String),
    /// The upstream answered the aggregated endpoint's call with an HTTP error status (with
    /// its JSON-RPC error, when its body had one).
    #[error("{message}")]
    UpstreamAnswered {
        status: StatusCode,
        code: i64,
        message: String,
    },
    /// The upstream no longer knows the gateway's session for the aggregated endpoint, even
    /// after a new one was opened.
    #[error("the server {0} lost the gateway's session twice")]
    UpstreamSessionLost(String),
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
    /// The `reason` of the audit event of a refusal made before the request's method is known
    /// (the decision reason of a policy refusal comes from the policy).
    pub reason: &'static str,
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
            reason: "error",
            retry_after: None,
        };
        let because = |reason, mapping: Mapping| Mapping { reason, ..mapping };
        let rpc = Body::JsonRpc;
        match self {
            Self::Unauthenticated { .. } => because(
                "unauthenticated",
                m(
                    S::UNAUTHORIZED,
                    Body::Envelope("unauthenticated"),
                    None,
                    "denied",
                ),
            ),
            Self::InsufficientScope { .. } => because(
                "insufficient_scope",
                m(S::FORBIDDEN, rpc(codes::INVALID_REQUEST), None, "denied"),
            ),
            Self::UnknownTool(_) => because(
                "tool_not_allowed",
                m(S::OK, rpc(codes::INVALID_PARAMS), None, "denied"),
            ),
            Self::InvalidQuery(_) => because(
                "invalid_query",
                m(
                    S::BAD_REQUEST,
                    Body::Envelope("invalid_query"),
                    None,
                    "invalid",
                ),
            ),
            Self::NotOffered(_) => because(
                "method_not_found",
                m(S::OK, rpc(codes::METHOD_NOT_FOUND), None, "jsonrpc_error"),
            ),
            Self::InvalidParams(_) => because(
                "invalid_params",
                m(S::OK, rpc(codes::INVALID_PARAMS), None, "jsonrpc_error"),
            ),
            // Limits and upstream failures keep their status; any other refusal of the call is
            // the upstream's doing, never something the `/mcp` client can fix (a 404 would
            // even end its session).
            Self::UpstreamAnswered { status, code, .. } => because(
                "upstream_status",
                m(
                    match status.as_u16() {
                        429 | 502 | 503 | 504 => *status,
                        _ => S::BAD_GATEWAY,
                    },
                    rpc(*code),
                    None,
                    "upstream_error",
                ),
            ),
            Self::UpstreamSessionLost(_) => because(
                "session_lost",
                m(
                    S::BAD_GATEWAY,
                    rpc(codes::INTERNAL_ERROR),
                    None,
                    "upstream_error",
                ),
            ),
            Self::ServerNotFound(_) => because(
                "unknown_server",
                m(
                    S::NOT_FOUND,
                    Body::Envelope("server_not_found"),
                    None,
                    "not_found",
                ),
            ),
            Self::BodyTooLarge { .. } => because(
                "body_too_large",
                m(
                    S::PAYLOAD_TOO_LARGE,
                    rpc(codes::INVALID_REQUEST),
                    None,
                    "invalid",
                ),
            ),
            Self::Malformed(e) => {
                because("malformed", m(S::BAD_REQUEST, rpc(e.code), None, "invalid"))
            }
            Self::Headers(p) => because(
                "bad_headers",
                m(S::BAD_REQUEST, rpc(p.code), None, "invalid"),
            ),
            Self::RouteUnusable(_) => because(
                "route_unusable",
                m(
                    S::BAD_GATEWAY,
                    rpc(codes::INTERNAL_ERROR),
                    None,
                    "upstream_error",
                ),
            ),
            Self::SessionRequired(_) => because(
                "session_required",
                m(S::BAD_REQUEST, rpc(codes::INVALID_REQUEST), None, "invalid"),
            ),
            Self::SessionNotFound(_) | Self::LegacyStreamNotFound => because(
                "session_not_found",
                m(
                    S::NOT_FOUND,
                    rpc(codes::INVALID_REQUEST),
                    None,
                    "session_not_found",
                ),
            ),
            Self::MethodNotAllowed(_) => because(
                "http_method_not_allowed",
                m(
                    S::METHOD_NOT_ALLOWED,
                    Body::Envelope("method_not_allowed"),
                    None,
                    "invalid",
                ),
            ),
            Self::RateLimited(seconds) => Mapping {
                retry_after: Some(*seconds),
                reason: "rate_limited",
                ..m(
                    S::TOO_MANY_REQUESTS,
                    rpc(codes::INTERNAL_ERROR),
                    None,
                    "denied",
                )
            },
            Self::TooManyStreams => Mapping {
                retry_after: Some(5),
                reason: "too_many_streams",
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
        match &self {
            Self::Unauthenticated {
                failure,
                metadata_url,
            } => return caller::unauthorized(failure, metadata_url),
            Self::InsufficientScope {
                scopes,
                metadata_url,
                detail,
            } => {
                let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
                return caller::insufficient_scope(&scopes, metadata_url, detail, id);
            }
            _ => {}
        }
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
    fn a_tool_the_caller_may_not_use_is_answered_like_an_unknown_one() {
        let e = ProxyError::UnknownTool("forecast".into());
        let m = e.mapping();
        assert_eq!(m.status, StatusCode::OK);
        assert_eq!(m.audit_status, "denied");
        let body = e.body(Some(&json!(7)));
        assert_eq!(body["id"], 7);
        assert_eq!(body["error"]["code"], codes::INVALID_PARAMS);
        assert_eq!(body["error"]["message"], "Unknown tool: forecast");
    }

    #[test]
    fn refusals_before_the_method_is_known_are_audited_with_their_own_reason() {
        let reasons = [
            ProxyError::ServerNotFound("x".into()).mapping().reason,
            ProxyError::BodyTooLarge { max: 1 }.mapping().reason,
            ProxyError::RouteUnusable("x".into()).mapping().reason,
            ProxyError::SessionRequired("x").mapping().reason,
            ProxyError::MethodNotAllowed("x").mapping().reason,
            ProxyError::TooManyStreams.mapping().reason,
        ];
        assert_eq!(
            reasons,
            [
                "unknown_server",
                "body_too_large",
                "route_unusable",
                "session_required",
                "http_method_not_allowed",
                "too_many_streams"
            ]
        );
    }

    #[test]
    fn an_unknown_server_gets_the_documented_envelope() {
        let body = ProxyError::ServerNotFound("x".into()).body(Some(&json!(1)));
        assert_eq!(body["code"], "server_not_found");
        assert!(body["detail"].as_str().unwrap().contains("/x"));
    }
}
