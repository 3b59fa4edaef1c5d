//! The one exit of a request: its outcome (audit facts), the typed [`Status`] it ends with, and
//! the metric and audit event it leaves. A request whose method is known is recorded through
//! its [`Exit`] (closed once, or `cancelled` when dropped); a refusal before that (no or bad
//! token, unknown server, a body too large or malformed, bad headers) through [`refused`].

use super::*;

/// Audit and metric facts of one request, completed when its answer is known.
#[derive(Clone)]
pub(super) struct Outcome {
    pub(super) method: String,
    pub(super) tool: Option<String>,
    pub(super) decision: AuditDecision,
    pub(super) reason: String,
    pub(super) matched: Option<String>,
    pub(super) arguments: Option<Value>,
    /// Only tool calls and denials are audited; every request is counted.
    pub(super) audited: bool,
    /// A 2026-07-28 request: its results need `resultType` (and caching hints on lists).
    pub(super) modern: bool,
}

impl Outcome {
    pub(super) fn allowed(method: &str, tool: Option<&str>, matched: Option<String>) -> Self {
        Self {
            method: method.to_owned(),
            tool: tool.map(str::to_owned),
            decision: AuditDecision::Allowed,
            reason: DecisionReason::Allowed.as_str().to_owned(),
            matched,
            arguments: None,
            audited: method == "tools/call",
            modern: false,
        }
    }

    pub(super) fn denied(method: &str, tool: Option<&str>, reason: &str) -> Self {
        Self {
            method: method.to_owned(),
            tool: tool.map(str::to_owned),
            decision: AuditDecision::Denied,
            reason: reason.to_owned(),
            matched: None,
            arguments: None,
            audited: true,
            modern: false,
        }
    }
}

/// How a request ended: the `status` of its metric and audit event.
#[derive(Clone, Copy)]
pub(crate) enum Status<'a> {
    Ok,
    /// `result.isError` in the tool's result.
    ToolError,
    /// The upstream answered with a JSON-RPC error.
    JsonRpcError,
    /// The upstream answered with an HTTP error status (passed on).
    UpstreamError,
    /// The client went away before its answer.
    Cancelled,
    /// The upstream ended its stream before the answer.
    StreamClosed,
    /// Policy refused the request (the reason is the outcome's).
    Denied,
    /// The gateway refused or failed it itself.
    Failed(&'a ProxyError),
}

impl Status<'_> {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ToolError => "tool_error",
            Self::JsonRpcError => "jsonrpc_error",
            Self::UpstreamError => "upstream_error",
            Self::Cancelled => "cancelled",
            Self::StreamClosed => "stream_closed",
            Self::Denied => "denied",
            Self::Failed(e) => e.mapping().audit_status,
        }
    }
}

/// The one exit of a request whose method is known: made once the policy has decided, closed
/// once with the request's [`Status`]. An exit dropped before it is closed (the client went
/// away while the request waited, and hyper dropped its future) records `cancelled`, so no
/// path can leave a request unrecorded.
pub(crate) struct Exit {
    call: Arc<Call>,
    outcome: Outcome,
    open: bool,
}

impl Exit {
    pub(super) fn new(call: &Arc<Call>, outcome: Outcome) -> Self {
        Self {
            call: Arc::clone(call),
            outcome,
            open: true,
        }
    }

    pub(super) fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    pub(super) fn is_open(&self) -> bool {
        self.open
    }

    pub(super) fn close(mut self, status: Status<'_>) {
        self.record(status);
    }

    /// Records a failure and hands it on (`Err(exit.fail(e))`).
    pub(super) fn fail(self, e: ProxyError) -> ProxyError {
        self.close(Status::Failed(&e));
        e
    }

    fn record(&mut self, status: Status<'_>) {
        if std::mem::take(&mut self.open) {
            record(&self.call, &self.outcome, status.as_str());
        }
    }
}

impl Drop for Exit {
    fn drop(&mut self) {
        self.record(Status::Cancelled);
    }
}

/// The metric and audit event of one request (only through [`Exit`]).
fn record(call: &Call, outcome: &Outcome, status: &str) {
    let server = call.server();
    let decision = match outcome.decision {
        AuditDecision::Allowed => "allowed",
        AuditDecision::Denied => "denied",
    };
    let latency = call.started.elapsed();
    let m = &call.gw.metrics;
    m.requests
        .with_label_values(&[server, metric_method(&outcome.method), decision, status])
        .inc();
    m.latency
        .with_label_values(&[server, metric_method(&outcome.method)])
        .observe(latency.as_secs_f64());
    if !outcome.audited {
        return;
    }
    let token = &call.caller.token;
    call.gw.audit.record(McpAuditEvent {
        id: uuid::Uuid::now_v7(),
        at: mcpgw_core::time::Timestamp::now(),
        request_id: call.request_id.clone(),
        gateway: call.gw.instance.clone(),
        server: server.to_owned(),
        method: outcome.method.clone(),
        tool: outcome.tool.clone(),
        subject: token.subject.clone(),
        user: token.username.clone(),
        client_id: token.client_id.clone(),
        issuer: token.issuer.clone(),
        decision: outcome.decision,
        reason: outcome.reason.clone(),
        matched_rule: outcome.matched.clone(),
        status: status.to_owned(),
        latency_ms: latency.as_secs_f64() * 1000.0,
        arguments: outcome.arguments.clone(),
        count: 1,
    });
}

/// Method label values are bounded: unknown methods are counted as `other`.
pub(super) fn metric_method(method: &str) -> &str {
    const KNOWN: &[&str] = &[
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "completion/complete",
        "logging/setLevel",
        "server/discover",
        "subscriptions/listen",
        "notifications",
        "response",
    ];
    if KNOWN.contains(&method) {
        method
    } else {
        "other"
    }
}

// ---------------------------------------------------------------------------------------------
// Small response helpers

/// Counts a failure of the upstream (`upstream_errors`) where it is found, so failures that
/// nobody answers (a cancellation sent upstream) are counted too.
pub(super) fn count_upstream(call: &Call, e: ProxyError) -> ProxyError {
    if let Some(reason) = e.mapping().upstream_reason {
        call.gw
            .metrics
            .upstream_errors
            .with_label_values(&[call.server(), reason])
            .inc();
    }
    e
}

/// Longest server path kept in a refusal's audit event (registered paths are at most 64).
const MAX_SERVER_CHARS: usize = 64;

/// The exit of a refusal made before the request's method is known (no or bad token, unknown
/// server, a body too large or malformed, bad headers): its metric, and an audit event without
/// a caller (subject and issuer empty, reason from [`ProxyError::mapping`]) that the audit sink
/// coalesces per server and reason, so an anonymous flood cannot fill the audit log.
pub(crate) fn refused(
    gw: &Gateway,
    server: &str,
    request_id: &str,
    started: Instant,
    e: &ProxyError,
) {
    let mapping = e.mapping();
    // A 401 keeps the labels dashboards know it by (`unauthenticated`, `401`).
    let (method, status) = match e {
        ProxyError::Unauthenticated { .. } => ("unauthenticated", "401"),
        _ => ("refused", mapping.audit_status),
    };
    // An unknown server's path is the client's: as a label it would be unbounded.
    let label = match e {
        ProxyError::ServerNotFound(_) => "*",
        _ => server,
    };
    gw.metrics
        .requests
        .with_label_values(&[label, method, "denied", status])
        .inc();
    let server: String = server.chars().take(MAX_SERVER_CHARS).collect();
    gw.audit.record_refusal(McpAuditEvent {
        id: uuid::Uuid::now_v7(),
        at: mcpgw_core::time::Timestamp::now(),
        request_id: request_id.to_owned(),
        gateway: gw.instance.clone(),
        server,
        method: String::new(),
        tool: None,
        subject: String::new(),
        user: None,
        client_id: None,
        issuer: String::new(),
        decision: AuditDecision::Denied,
        reason: mapping.reason.to_owned(),
        matched_rule: None,
        status: mapping.audit_status.to_owned(),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        arguments: None,
        count: 1,
    });
}
