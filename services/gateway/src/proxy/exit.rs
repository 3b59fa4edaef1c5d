//! The one exit of a request: its outcome (audit facts), the metric and audit event it
//! leaves, and `fail`, which records a `ProxyError` and answers it.

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

pub(super) fn finish(call: &Call, outcome: &Outcome, status: &str) {
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

/// The exit of a request the gateway refuses or fails itself, once it is known what the
/// request was: its metric and audit event (status from [`ProxyError::mapping`]), then the
/// answer.
pub(super) fn fail(call: &Call, outcome: &Outcome, id: Option<&Value>, e: ProxyError) -> Response {
    finish(call, outcome, e.mapping().audit_status);
    e.into_response(id)
}
