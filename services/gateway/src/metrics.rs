//! The gateway's Prometheus metrics (served on `metrics_listen`, never with the MCP endpoints).

use mcpgw_core::telemetry::HttpMetrics;
use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
};

#[derive(Clone)]
pub struct Metrics {
    pub http: HttpMetrics,
    /// MCP requests by server, method, decision and status.
    pub requests: IntCounterVec,
    /// Time from request to final answer, by server and method.
    pub latency: HistogramVec,
    /// Upstream failures by server and reason.
    pub upstream_errors: IntCounterVec,
    /// Legacy HTTP+SSE connections held by this process (the only sessions with state here).
    pub open_sessions: IntGauge,
    /// Session-era sessions started and ended through this process (their state travels in
    /// the sealed id, so "open" is started minus ended across all replicas).
    pub sessions_started: IntCounter,
    pub sessions_ended: IntCounter,
    pub open_streams: IntGauge,
    pub snapshot_info: GaugeVec,
    pub server_health: GaugeVec,
    pub snapshot_age: Gauge,
    pub snapshot_updates: IntCounter,
    pub snapshot_errors: IntCounter,
    pub routes: IntGauge,
    pub policy_version: IntGauge,
    pub audit_dropped: IntCounter,
    pub audit_sent: IntCounter,
    pub audit_queue: IntGauge,
    pub stdio_restarts: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let http = HttpMetrics::new("mcpgw_gateway");
        let reg = &http.registry;
        fn register<M: prometheus::core::Collector + Clone + 'static>(
            reg: &prometheus::Registry,
            m: M,
        ) -> M {
            reg.register(Box::new(m.clone()))
                .expect("metric registered once");
            m
        }
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                reg,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge = |name: &str, help: &str| {
            register(reg, IntGauge::new(name, help).expect("valid metric"))
        };
        let counter = |name: &str, help: &str| {
            register(reg, IntCounter::new(name, help).expect("valid metric"))
        };
        Self {
            requests: counter_vec(
                "mcpgw_gateway_mcp_requests_total",
                "MCP requests by server, JSON-RPC method, decision and status",
                &["server", "method", "decision", "status"],
            ),
            latency: register(
                reg,
                HistogramVec::new(
                    HistogramOpts::new(
                        "mcpgw_gateway_mcp_request_duration_seconds",
                        "Time from an MCP request reaching the gateway to its final answer",
                    )
                    .buckets(vec![
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    ]),
                    &["server", "method"],
                )
                .expect("valid metric"),
            ),
            upstream_errors: counter_vec(
                "mcpgw_gateway_upstream_errors_total",
                "Failures reaching upstream servers, by server and reason",
                &["server", "reason"],
            ),
            open_sessions: gauge(
                "mcpgw_gateway_open_sse_sessions",
                "Legacy HTTP+SSE client connections open on this process",
            ),
            sessions_started: counter(
                "mcpgw_gateway_sessions_started_total",
                "Session-era sessions started (initialize answered with a session id)",
            ),
            sessions_ended: counter(
                "mcpgw_gateway_sessions_ended_total",
                "Session-era sessions ended with DELETE",
            ),
            open_streams: gauge(
                "mcpgw_gateway_open_streams",
                "Long-lived event streams open to clients (GET streams, subscriptions/listen, legacy SSE connections)",
            ),
            snapshot_info: register(
                reg,
                GaugeVec::new(
                    Opts::new(
                        "mcpgw_gateway_snapshot_info",
                        "The routing snapshot in use (1 for its version)",
                    ),
                    &["version"],
                )
                .expect("valid metric"),
            ),
            server_health: register(
                reg,
                GaugeVec::new(
                    Opts::new(
                        "mcpgw_gateway_server_health",
                        "The registry's health status of each routed server whose status is known (1 for its status)",
                    ),
                    &["server", "status"],
                )
                .expect("valid metric"),
            ),
            snapshot_age: register(
                reg,
                Gauge::new(
                    "mcpgw_gateway_snapshot_age_seconds",
                    "Seconds since the registry generated the snapshot in use, or since it was last confirmed current",
                )
                .expect("valid metric"),
            ),
            snapshot_updates: counter(
                "mcpgw_gateway_snapshot_updates_total",
                "Routing snapshots applied",
            ),
            snapshot_errors: counter(
                "mcpgw_gateway_snapshot_sync_errors_total",
                "Failed attempts to reach the registry for a snapshot",
            ),
            routes: gauge("mcpgw_gateway_routes", "Servers routed now"),
            policy_version: gauge(
                "mcpgw_gateway_policy_version",
                "Version of the policy in use",
            ),
            audit_dropped: counter(
                "mcpgw_gateway_audit_dropped_total",
                "Audit events dropped because the queue to the registry was full (they were logged)",
            ),
            audit_sent: counter(
                "mcpgw_gateway_audit_sent_total",
                "Audit events the registry acknowledged",
            ),
            audit_queue: gauge(
                "mcpgw_gateway_audit_queue",
                "Audit events waiting to be sent to the registry",
            ),
            stdio_restarts: counter_vec(
                "mcpgw_gateway_stdio_restarts_total",
                "Restarts of stdio servers the gateway runs and reconnections to legacy SSE servers, by server",
                &["server"],
            ),
            http,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
