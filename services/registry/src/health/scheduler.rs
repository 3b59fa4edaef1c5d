//! The background loop: every second, the servers whose interval has passed are checked, a
//! bounded number at a time, their starts spread over `spread_ms` (jitter), and the results
//! written in one batch ([`check_all`]).
//!
//! With several replicas on one store, only the holder of the store's health lease checks
//! (the lease is renewed every tick and lapses a few seconds after its holder stops).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use mcpgw_core::domain::{Endpoint, ServerRecord};
use mcpgw_core::time::Timestamp;
use rand::Rng;
use tokio::sync::{Semaphore, watch};

use super::{HealthChecker, damping};
use crate::service::Registry;
use crate::store::ServerFilter;

const TICK: Duration = Duration::from_secs(1);
const PAGE: u32 = 500;

/// Whether `record` is due for a scheduled check at `now` (stdio servers never are).
pub fn is_due(record: &ServerRecord, default_interval: u32, now: Timestamp) -> bool {
    if matches!(record.endpoint, Endpoint::Stdio { .. }) || !record.enabled {
        return false;
    }
    let interval = record
        .governance
        .health_check_interval_seconds
        .unwrap_or(default_interval) as i64;
    match record.health.checked_at {
        None => true,
        Some(at) => {
            now.as_datetime()
                .signed_duration_since(at.as_datetime())
                .num_seconds()
                >= interval
        }
    }
}

/// Runs until `stop` turns true.
pub async fn run(
    registry: Arc<Registry>,
    checker: Arc<HealthChecker>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = cycle(&registry, &checker).await {
            tracing::warn!(error = %e, "health check cycle failed");
        }
    }
}

/// One cycle: returns how many servers were checked.
pub async fn cycle(
    registry: &Arc<Registry>,
    checker: &Arc<HealthChecker>,
) -> crate::error::Result<usize> {
    // The lease outlives the longest cycle (spread + one check) plus two missed ticks, so a
    // slow cycle does not let another replica start the same checks.
    let lease = TICK * 3 + Duration::from_millis(checker.config.spread_ms) + checker.timeout();
    let held = registry.store.health_lease(&checker.holder, lease).await;
    checker.set_leader(matches!(held, Ok(true)));
    match held {
        Ok(true) => {}
        Ok(false) => return Ok(0),
        Err(e) => return Err(e.into()),
    }
    let started = std::time::Instant::now();
    let due = due_servers(registry, checker.config.interval_seconds).await?;
    let checked = check_all(registry, checker, due, "scheduled").await?;
    if checked > 0 {
        // One line per cycle that did work: how operators (and scripts/bench-health.sh) see
        // whether a cycle fits its interval.
        tracing::info!(
            checked,
            duration_ms = started.elapsed().as_millis() as u64,
            "health check cycle done"
        );
    }
    Ok(checked)
}

/// Checks `records` (damped, as scheduled checks are) and writes the results in one batch:
/// each check starts after a random delay within `spread_ms` (less when few are due), then
/// waits for one of `concurrency` slots, so a cycle's work is spread out rather than a burst.
/// Returns how many were checked.
pub async fn check_all(
    registry: &Arc<Registry>,
    checker: &Arc<HealthChecker>,
    records: Vec<ServerRecord>,
    trigger: &str,
) -> crate::error::Result<usize> {
    if records.is_empty() {
        return Ok(0);
    }
    let count = records.len();
    let config = &checker.config;
    let spread_ms = config.spread_ms.min((count as u64).saturating_mul(10));
    let slots = Semaphore::new(config.concurrency);
    let results: Vec<_> = records
        .into_iter()
        .map(|record| {
            let slots = &slots;
            async move {
                if spread_ms > 0 {
                    let wait = rand::rng().random_range(0..spread_ms);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                let _slot = slots
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                let result = checker.check(registry, &record, trigger).await;
                let next = damping::apply(&record.health, result, config.damping, config.history);
                (record, next)
            }
        })
        .collect::<FuturesUnordered<_>>()
        .collect()
        .await;
    checker.store(registry, results).await?;
    Ok(count)
}

async fn due_servers(
    registry: &Registry,
    default_interval: u32,
) -> crate::error::Result<Vec<ServerRecord>> {
    let now = Timestamp::now();
    let filter = ServerFilter {
        enabled: Some(true),
        ..Default::default()
    };
    let mut due = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = registry
            .store
            .list_servers(&filter, after.as_deref(), PAGE)
            .await?;
        let full = page.len() == PAGE as usize;
        after = page.last().map(|r| r.path.to_string());
        due.extend(
            page.into_iter()
                .filter(|r| is_due(r, default_interval, now)),
        );
        if !full {
            return Ok(due);
        }
    }
}
