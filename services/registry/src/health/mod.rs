//! Health checks of registered servers: the MCP-level [`probe`], flap [`damping`] and history,
//! and the background [`scheduler`]. Results are written with the store's health-only write
//! (no revision bump), announced on the [`EventBus`] and, through the server's health
//! status, in the gateways' route snapshot.

pub mod damping;
pub mod gateway_reports;
pub mod list_changed;
pub mod probe;
pub mod scheduler;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mcpgw_core::domain::{HealthCheck, HealthStatus, ServerPath, ServerRecord};
use mcpgw_core::egress::EgressPolicy;
use mcpgw_core::upstream_auth::{AwsIdentity, UpstreamAuthContext};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::config::HealthConfig;
use crate::mcp_client::{self, Target};
use crate::service::Registry;

/// Something a UI should redraw: a server's health changed, or the server did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// The (damped) health status changed.
    Health {
        path: String,
        status: HealthStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The server was created or changed (now at `revision`).
    Changed {
        path: String,
        revision: u64,
    },
    Deleted {
        path: String,
    },
}

impl ServerEvent {
    pub fn path(&self) -> &str {
        match self {
            Self::Health { path, .. } | Self::Changed { path, .. } | Self::Deleted { path } => path,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Health { .. } => "health",
            Self::Changed { .. } => "changed",
            Self::Deleted { .. } => "deleted",
        }
    }
}

/// Server events of this process, to every open `GET /api/v1/events` stream. A slow stream
/// that falls more than the capacity behind is told it lost events (it should reload).
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<ServerEvent>>,
    /// Turns true at shutdown: open streams end, so draining connections does not wait for
    /// them.
    closing: watch::Sender<bool>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(1024).0,
            closing: watch::channel(false).0,
        }
    }
}

impl EventBus {
    pub fn publish(&self, event: ServerEvent) {
        // No subscriber is fine.
        let _ = self.tx.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ServerEvent>> {
        self.tx.subscribe()
    }

    /// Ends every open stream (at shutdown).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`close`](Self::close) was called (at once if it was already).
    pub async fn closed(&self) {
        let mut rx = self.closing.subscribe();
        let _ = rx.wait_for(|closing| *closing).await;
    }
}

/// The health checker: its HTTP client, credential context and settings.
pub struct HealthChecker {
    pub config: HealthConfig,
    http: reqwest::Client,
    auth: UpstreamAuthContext,
    egress: EgressPolicy,
    /// This process's name in the store's health lease.
    pub holder: String,
    /// Whether this process held the health lease at the scheduler's last tick.
    leader: AtomicBool,
    /// The `notifications/tools/list_changed` watchers of this process.
    pub watchers: list_changed::Watchers,
}

impl HealthChecker {
    pub fn new(config: HealthConfig, egress: &EgressPolicy) -> anyhow::Result<Self> {
        let http = mcp_client::http_client(
            Arc::new(egress.clone()),
            Duration::from_millis(config.connect_timeout_ms),
        );
        let auth = UpstreamAuthContext::new(
            Default::default(),
            Some(egress.clone()),
            AwsIdentity::default_chain(),
        )
        .map_err(|e| anyhow::anyhow!("upstream credentials: {e}"))?;
        Ok(Self {
            config,
            http,
            auth,
            egress: egress.clone(),
            holder: uuid::Uuid::new_v4().to_string(),
            leader: AtomicBool::new(false),
            watchers: Default::default(),
        })
    }

    /// Whether this process holds the health lease (as of the scheduler's last tick).
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    pub(crate) fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Where `record` is reached, its credentials opened with the registry's keyring.
    pub fn target(
        &self,
        registry: &Registry,
        record: &ServerRecord,
    ) -> Result<Target, mcp_client::Failure> {
        Target::of(record, &registry.keyring, &self.auth, &self.egress)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms)
    }

    /// Runs one check of `record`.
    pub async fn check(
        &self,
        registry: &Registry,
        record: &ServerRecord,
        trigger: &str,
    ) -> HealthCheck {
        let settings = probe::ProbeSettings {
            timeout: self.timeout(),
            degraded: Duration::from_millis(self.config.degraded_ms),
        };
        let target = self.target(registry, record);
        probe::check(&self.http, record, target, &settings, trigger).await
    }

    /// Checks `record` now (a manual check: the status applies at once), stores and announces
    /// the result, and returns the new health.
    pub async fn check_now(
        self: &Arc<Self>,
        registry: &Arc<Registry>,
        record: &ServerRecord,
    ) -> crate::error::Result<mcpgw_core::domain::Health> {
        // Stdio servers run inside gateways, which probe and report them: the registry's own
        // probe could only say `unknown` and would wipe what they reported.
        if matches!(record.endpoint, mcpgw_core::domain::Endpoint::Stdio { .. }) {
            return Ok(record.health.clone());
        }
        let result = self.check(registry, record, "manual").await;
        let next = damping::apply(
            &record.health,
            result,
            self.config.damping,
            self.config.history,
        );
        self.store(registry, vec![(record.clone(), next.clone())])
            .await?;
        Ok(next)
    }

    /// Writes new healths (of records as read), announces status changes and starts tool
    /// discovery for servers that became healthy.
    pub async fn store(
        self: &Arc<Self>,
        registry: &Arc<Registry>,
        results: Vec<(ServerRecord, mcpgw_core::domain::Health)>,
    ) -> crate::error::Result<()> {
        let updates: Vec<(ServerPath, mcpgw_core::domain::Health)> = results
            .iter()
            .map(|(r, h)| (r.path.clone(), h.clone()))
            .collect();
        registry.write_health(&updates).await?;
        for (record, health) in results {
            if record.health.status == health.status {
                continue;
            }
            tracing::info!(server = %record.path, from = ?record.health.status, to = ?health.status, reason = health.reason.as_deref().unwrap_or(""), "server health changed");
            registry.events.publish(ServerEvent::Health {
                path: record.path.to_string(),
                status: health.status,
                reason: health.reason.clone(),
            });
            // Tools of a stdio server are discovered by no one here: the registry cannot
            // reach it (it became healthy through a gateway's report).
            if health.status == HealthStatus::Healthy
                && self.config.discover_tools
                && !matches!(record.endpoint, mcpgw_core::domain::Endpoint::Stdio { .. })
            {
                let (checker, registry) = (Arc::clone(self), Arc::clone(registry));
                tokio::spawn(async move {
                    if let Err(e) =
                        crate::discovery::discover_in_background(&registry, &checker, &record.path)
                            .await
                    {
                        tracing::warn!(server = %record.path, error = %e, "tool discovery failed");
                    }
                });
            }
        }
        Ok(())
    }
}
