//! Health of stdio servers as gateways report it (`POST /api/v1/gateway/health`).
//!
//! The registry cannot reach a stdio server (it runs as a child process of each gateway), so
//! gateways check their children and report here. Each report is one check, fed through the
//! same [`damping`], history, event and snapshot path as the registry's own checks.
//!
//! Several replicas report the same server: reports are applied in the order they arrive
//! (the latest report is the newest history entry), damped as scheduled checks are, so the
//! status moves only when `health.damping` consecutive reports, from any replicas, agree. Each
//! history entry names its replica in `trigger` (`gateway:<instance>`), so a fault that only
//! one replica sees shows in the history even while the damped status holds.

use std::collections::HashMap;
use std::sync::Arc;

use mcpgw_core::auth::{Permission, Principal};
use mcpgw_core::domain::{Endpoint, Health, HealthCheck, HealthStatus, ServerPath, ServerRecord};
use mcpgw_core::gateway_sync::{MAX_HEALTH_BATCH, StdioHealthBatch, StdioHealthReport};
use mcpgw_core::time::Timestamp;
use mcpgw_core::validate::FieldError;
use serde_json::Value;

use super::{HealthChecker, damping};
use crate::error::Result;
use crate::service::Registry;

/// Largest health batch body accepted, in bytes (or `max_body_bytes`, if larger).
pub const HEALTH_BODY_LIMIT: usize = 1024 * 1024;
/// Longest `gateway` name, in bytes.
const GATEWAY_NAME_LIMIT: usize = 128;
/// Longest `reason`, in bytes.
const REASON_LIMIT: usize = 1024;
/// Largest `latency_ms`: an hour (a probe times out long before).
const LATENCY_LIMIT_MS: u64 = 3_600_000;

/// Refuses a batch of more than [`MAX_HEALTH_BATCH`] reports before its reports are read.
pub fn check_batch_size(body: &Value) -> std::result::Result<(), FieldError> {
    match body.get("reports").and_then(Value::as_array) {
        Some(reports) if reports.len() > MAX_HEALTH_BATCH => Err(FieldError::new(
            "reports",
            format!(
                "has {} reports; send at most {MAX_HEALTH_BATCH} per batch",
                reports.len()
            ),
        )),
        _ => Ok(()),
    }
}

fn check_report(i: usize, r: &StdioHealthReport) -> std::result::Result<ServerPath, FieldError> {
    let field = |name: &str| format!("reports[{i}].{name}");
    let path = ServerPath::parse(&r.server).map_err(|m| FieldError::new(field("server"), m))?;
    if !matches!(
        r.status,
        HealthStatus::Healthy | HealthStatus::Degraded | HealthStatus::Unhealthy
    ) {
        return Err(FieldError::new(
            field("status"),
            "must be healthy, degraded or unhealthy",
        ));
    }
    if r.reason.as_ref().is_some_and(|t| t.len() > REASON_LIMIT) {
        return Err(FieldError::new(
            field("reason"),
            format!("must be at most {REASON_LIMIT} bytes"),
        ));
    }
    if r.latency_ms > LATENCY_LIMIT_MS {
        return Err(FieldError::new(
            field("latency_ms"),
            format!("must be at most {LATENCY_LIMIT_MS} ms"),
        ));
    }
    Ok(path)
}

/// Applies a gateway's reports. Every report is validated, and every named server read,
/// before anything is written: a report on a server that is not stdio refuses the whole batch
/// (422); one on a server the registry does not know (deleted since the gateway's snapshot) is
/// ignored. Returns (applied, ignored).
pub async fn record(
    registry: &Arc<Registry>,
    checker: &Arc<HealthChecker>,
    caller: &Principal,
    batch: &StdioHealthBatch,
) -> Result<(usize, usize)> {
    caller.require(Permission::GatewaySync)?;
    if batch.gateway.trim().is_empty() || batch.gateway.len() > GATEWAY_NAME_LIMIT {
        return Err(FieldError::new(
            "gateway",
            format!("must name the reporting gateway in 1 to {GATEWAY_NAME_LIMIT} bytes"),
        )
        .into());
    }
    let paths = batch
        .reports
        .iter()
        .enumerate()
        .map(|(i, r)| check_report(i, r))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut records: HashMap<ServerPath, Option<ServerRecord>> = HashMap::new();
    for (i, path) in paths.iter().enumerate() {
        if !records.contains_key(path) {
            let record = registry.store.get_server(path).await?;
            records.insert(path.clone(), record);
        }
        if let Some(Some(record)) = records.get(path)
            && !matches!(record.endpoint, Endpoint::Stdio { .. })
        {
            return Err(FieldError::new(
                format!("reports[{i}].server"),
                "is not a stdio server: the registry checks it itself",
            )
            .into());
        }
    }
    let config = &checker.config;
    let trigger = format!("gateway:{}", batch.gateway);
    let at = Timestamp::now();
    // Reports on one server in one batch apply in order, on top of each other.
    let mut next: HashMap<ServerPath, Health> = HashMap::new();
    let mut order: Vec<ServerPath> = Vec::new();
    let mut ignored = 0;
    for (report, path) in batch.reports.iter().zip(&paths) {
        let Some(Some(record)) = records.get(path) else {
            ignored += 1;
            continue;
        };
        let prev = next.get(path).unwrap_or(&record.health);
        let check = HealthCheck {
            at,
            status: report.status,
            reason: report.reason.clone(),
            latency_ms: report.latency_ms,
            protocol: None,
            trigger: trigger.clone(),
        };
        let health = damping::apply(prev, check, config.damping, config.history);
        if next.insert(path.clone(), health).is_none() {
            order.push(path.clone());
        }
    }
    let results = order
        .into_iter()
        .filter_map(|path| {
            let health = next.remove(&path)?;
            let record = records.remove(&path)??;
            Some((record, health))
        })
        .collect::<Vec<_>>();
    let applied = batch.reports.len() - ignored;
    checker.store(registry, results).await?;
    Ok((applied, ignored))
}
