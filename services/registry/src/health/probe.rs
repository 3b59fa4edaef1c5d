//! One MCP-level check of one server: handshake (`server/discover`, or `initialize` +
//! `notifications/initialized`), `ping` (session era only: 2026-07-28 has none), close;
//! classified into a [`HealthCheck`].

use std::time::{Duration, Instant};

use mcpgw_core::domain::{Endpoint, HealthCheck, HealthStatus, ServerRecord};
use mcpgw_core::time::Timestamp;
use serde_json::json;

use crate::mcp_client::{Failure, MODERN_VERSION, Session, Target};

/// What a check needs besides the record.
pub struct ProbeSettings {
    pub timeout: Duration,
    pub degraded: Duration,
}

/// Why the registry does not check stdio servers itself.
pub const STDIO_REASON: &str =
    "stdio servers run inside gateways; the registry does not check them";

enum Outcome {
    Answered {
        protocol: String,
    },
    /// The handshake worked but `ping` got a JSON-RPC error: up, partly failing.
    Partial(Failure),
    Failed(Failure),
}

/// Checks `record` through `target` (built by the caller so secrets are opened in one place).
pub async fn check(
    http: &reqwest::Client,
    record: &ServerRecord,
    target: Result<Target, Failure>,
    settings: &ProbeSettings,
    trigger: &str,
) -> HealthCheck {
    let at = Timestamp::now();
    let started = Instant::now();
    let outcome = if matches!(record.endpoint, Endpoint::Stdio { .. }) {
        None
    } else {
        let run = async {
            let target = match target {
                Ok(t) => t,
                Err(e) => return Outcome::Failed(e),
            };
            let mut session = match Session::open(http, &target).await {
                Ok(s) => s,
                Err(e) => return Outcome::Failed(e),
            };
            let protocol = session.protocol().to_owned();
            // 2026-07-28 removed `ping` (a modern server answers 404 + -32601): there the
            // `server/discover` answer already is the MCP-level liveness proof.
            let ping = if protocol == MODERN_VERSION {
                Ok(json!({}))
            } else {
                session.request("ping", json!({})).await
            };
            session.close().await;
            match ping {
                Ok(_) => Outcome::Answered { protocol },
                Err(e @ Failure::JsonRpc { .. }) => Outcome::Partial(e),
                Err(e) => Outcome::Failed(e),
            }
        };
        Some(
            tokio::time::timeout(settings.timeout, run)
                .await
                .unwrap_or(Outcome::Failed(Failure::Timeout)),
        )
    };
    let latency = started.elapsed();
    let (status, reason, protocol) = match outcome {
        None => (HealthStatus::Unknown, Some(STDIO_REASON.to_owned()), None),
        Some(Outcome::Answered { protocol }) if latency > settings.degraded => (
            HealthStatus::Degraded,
            Some(format!("slow: {} ms", latency.as_millis())),
            Some(protocol),
        ),
        Some(Outcome::Answered { protocol }) => (HealthStatus::Healthy, None, Some(protocol)),
        Some(Outcome::Partial(e)) => (HealthStatus::Degraded, Some(format!("ping: {e}")), None),
        Some(Outcome::Failed(e @ Failure::Auth(_))) => {
            (HealthStatus::AuthFailed, Some(e.to_string()), None)
        }
        Some(Outcome::Failed(e)) => (HealthStatus::Unhealthy, Some(e.to_string()), None),
    };
    HealthCheck {
        at,
        status,
        reason,
        latency_ms: latency.as_millis() as u64,
        protocol,
        trigger: trigger.to_owned(),
    }
}
