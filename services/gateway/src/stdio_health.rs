//! Health of the stdio servers this process runs, checked at the MCP level and reported to the
//! registry (`POST /api/v1/gateway/health`), which cannot reach them itself.
//!
//! Every `stdio.health_interval_seconds`, each stdio route of the current snapshot is probed
//! over its shared upstream session: `initialize_result` (which starts the child if it is not
//! running), then a `ping` with `stdio.health_timeout_ms`. The shared session always speaks a
//! session-era protocol (the gateway's `initialize`), so `ping` exists there; 2026-07-28 has no
//! `ping`, but a stdio child never speaks it through this session.
//!
//! A server no client has used yet IS started for its first probe: a stdio server that cannot
//! start should show as unhealthy before the first user finds out, and the first client would
//! start the same process anyway. A child that is waiting out its restart delay is not started
//! early: the probe reports it unhealthy with the backoff's error and, after a few failed
//! starts in a row, as crash-looping.
//!
//! Results are not queued: a report that does not reach the registry is replaced by the next
//! interval's fresher one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpgw_core::domain::HealthStatus;
use mcpgw_core::gateway_sync::{MAX_HEALTH_BATCH, StdioHealthBatch, StdioHealthReport};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::sync::watch;

use crate::routes::Upstream;
use crate::shared::{SharedError, SharedUpstream};
use crate::sync::RouteTable;

/// The owner of probe requests on a shared session: no caller digest looks like it, so no
/// client can cancel a probe.
const PROBE_OWNER: &str = "mcpgw-stdio-health";
/// Failed starts in a row from which a child is reported as crash-looping.
const CRASH_LOOP_STARTS: u32 = 3;

/// What one probe needs.
#[derive(Clone, Copy)]
pub struct ProbeSettings {
    /// How long `ping` may take to be answered.
    pub timeout: Duration,
    /// An answer slower than this is `degraded`.
    pub degraded: Duration,
}

/// The reporter: probes every interval and posts the results.
pub struct StdioHealth {
    pub table: Arc<RouteTable>,
    pub http: reqwest::Client,
    pub registry_url: String,
    pub api_key: Option<SecretString>,
    pub gateway: String,
    pub interval: Duration,
    pub probe: ProbeSettings,
}

impl StdioHealth {
    /// Probes and reports every interval until `stop` (no probes when the interval is 0).
    /// The children's tools are reported beside, whatever the interval
    /// (`stdio_tools.rs`): without them a stdio server serves no tool at all.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let tools = Arc::new(crate::stdio_tools::StdioTools {
            table: Arc::clone(&self.table),
            http: self.http.clone(),
            registry_url: self.registry_url.clone(),
            api_key: self.api_key.clone(),
            gateway: self.gateway.clone(),
        });
        tokio::spawn(tools.run(stop.clone()));
        if self.interval.is_zero() {
            return;
        }
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            let reports = self.check_all().await;
            for chunk in reports.chunks(MAX_HEALTH_BATCH) {
                self.send(chunk.to_vec()).await;
            }
        }
    }

    /// Probes every stdio route of the current snapshot, all at once (each is one process).
    pub async fn check_all(&self) -> Vec<StdioHealthReport> {
        let routes = self.table.current();
        let probes = routes.servers.values().filter_map(|route| {
            let Upstream::Shared(shared) = &route.upstream else {
                return None;
            };
            if !shared.is_stdio() {
                return None;
            }
            let (server, shared) = (route.path().to_owned(), Arc::clone(shared));
            let broken = route.broken.clone();
            let settings = self.probe;
            Some(async move {
                match broken {
                    // Its environment holds a credential that does not open: it is never
                    // started, and no client can use it.
                    Some(why) => StdioHealthReport {
                        server,
                        status: HealthStatus::Unhealthy,
                        reason: Some(why),
                        latency_ms: 0,
                    },
                    None => probe(&server, &shared, settings).await,
                }
            })
        });
        futures::future::join_all(probes).await
    }

    async fn send(&self, reports: Vec<StdioHealthReport>) {
        if reports.is_empty() {
            return;
        }
        let url = format!(
            "{}/api/v1/gateway/health",
            self.registry_url.trim_end_matches('/')
        );
        let n = reports.len();
        let mut request =
            self.http
                .post(&url)
                .timeout(Duration::from_secs(10))
                .json(&StdioHealthBatch {
                    gateway: self.gateway.clone(),
                    reports,
                });
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(reports = n, "stdio health reported")
            }
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                tracing::warn!(%status, body = %body.chars().take(300).collect::<String>(), "the registry refused a stdio health report");
            }
            Err(e) => tracing::warn!(error = %e, "sending stdio health failed"),
        }
    }
}

/// One MCP-level check of one stdio child.
pub async fn probe(
    server: &str,
    shared: &SharedUpstream,
    settings: ProbeSettings,
) -> StdioHealthReport {
    let report = |status, reason: Option<String>, latency: Duration| StdioHealthReport {
        server: server.to_owned(),
        status,
        reason,
        latency_ms: latency.as_millis() as u64,
    };
    // Starting is bounded by `stdio.start_timeout_ms` inside the shared upstream; it is not
    // cut short here, since a cancelled start would kill a child that was about to answer.
    if let Err(e) = shared.initialize_result().await {
        let failed = shared.failed_starts();
        let reason = if failed >= CRASH_LOOP_STARTS {
            format!("crash-looping ({failed} failed starts in a row): {e}")
        } else {
            format!("not running: {e}")
        };
        return report(HealthStatus::Unhealthy, Some(reason), Duration::ZERO);
    }
    let started = Instant::now();
    let ping = async {
        let mut reply = shared
            .request(
                PROBE_OWNER,
                json!({"jsonrpc": "2.0", "id": 0, "method": "ping"}),
            )
            .await?;
        // Progress notifications are not expected for ping; the answer is what counts.
        loop {
            match reply.next().await {
                Some(m) if m.get("result").is_some() => return Ok(Ok(())),
                Some(m) if m.get("error").is_some() => return Ok(Err(m["error"].to_string())),
                Some(_) => continue,
                None => return Err(SharedError::Lost),
            }
        }
    };
    let outcome = tokio::time::timeout(settings.timeout, ping).await;
    let latency = started.elapsed();
    match outcome {
        Ok(Ok(Ok(()))) if latency > settings.degraded => report(
            HealthStatus::Degraded,
            Some(format!("slow: {} ms", latency.as_millis())),
            latency,
        ),
        Ok(Ok(Ok(()))) => report(HealthStatus::Healthy, None, latency),
        Ok(Ok(Err(error))) => report(
            HealthStatus::Degraded,
            Some(format!("ping: {}", truncate(&error, 300))),
            latency,
        ),
        Ok(Err(e)) => report(HealthStatus::Unhealthy, Some(e.to_string()), latency),
        Err(_) => report(
            HealthStatus::Unhealthy,
            Some(format!(
                "no answer to ping within {} ms",
                settings.timeout.as_millis()
            )),
            latency,
        ),
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
