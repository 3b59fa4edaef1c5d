//! Keeps the routing table current: long-polls the registry for new snapshots, applies them
//! without a restart, and keeps the last good one on disk.
//!
//! Static stability: at start the disk copy is served at once (if there is one), and while the
//! registry or its database is down the gateway keeps serving what it has. A snapshot whose
//! digest does not match its content is refused, from the wire or from disk.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use mcpgw_core::gateway_sync::GatewaySnapshot;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::routes::{self, RouteContext, Routes};

/// While polls fail: how often the failure is logged. The first failure of an outage is logged
/// at once, then one line a minute, so an outage is visible (and its snapshot age alarmed on)
/// without a line every retry.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

fn warning_due(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|t| now.duration_since(t) >= FAILURE_LOG_EVERY)
}

/// The current table, shared by every request.
pub struct RouteTable {
    current: RwLock<Arc<Routes>>,
    /// Wall-clock seconds when the registry last confirmed the table current (a 200 or 304).
    confirmed_at: std::sync::atomic::AtomicI64,
    changed: watch::Sender<String>,
}

impl RouteTable {
    pub fn new() -> Self {
        Self {
            current: RwLock::new(Arc::new(Routes::empty())),
            confirmed_at: std::sync::atomic::AtomicI64::new(0),
            changed: watch::channel(String::new()).0,
        }
    }

    pub fn current(&self) -> Arc<Routes> {
        Arc::clone(&self.current.read().expect("routes lock"))
    }

    /// Resolves when a snapshot with another version is applied.
    pub fn subscribe(&self) -> watch::Receiver<String> {
        self.changed.subscribe()
    }

    /// Whether any snapshot has been applied (from the registry or disk).
    pub fn is_loaded(&self) -> bool {
        !self.current().version.is_empty()
    }

    fn swap(&self, routes: Routes) {
        let version = routes.version.clone();
        *self.current.write().expect("routes lock") = Arc::new(routes);
        self.changed.send_replace(version);
    }

    fn confirm(&self) {
        self.confirmed_at.store(
            chrono::Utc::now().timestamp(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Seconds since the registry last confirmed the table (or since the snapshot was made,
    /// when it never did in this process).
    pub fn age_seconds(&self) -> f64 {
        let confirmed = self.confirmed_at.load(std::sync::atomic::Ordering::Relaxed);
        let now = chrono::Utc::now();
        if confirmed > 0 {
            return (now.timestamp() - confirmed).max(0) as f64;
        }
        let generated = self.current().generated_at;
        (now - generated.as_datetime())
            .to_std()
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}

impl Default for RouteTable {
    fn default() -> Self {
        Self::new()
    }
}

pub struct Syncer {
    pub table: Arc<RouteTable>,
    pub metrics: Metrics,
    pub http: reqwest::Client,
    pub registry_url: String,
    pub api_key: Option<SecretString>,
    pub snapshot_file: PathBuf,
    pub poll_wait: Duration,
    pub retry: Duration,
    pub keyring: Option<mcpgw_core::secrets::Keyring>,
    pub default_concurrency: u32,
    pub shared: crate::shared::SharedSettings,
    pub egress: Arc<mcpgw_core::egress::EgressPolicy>,
    pub upstream_auth: mcpgw_core::upstream_auth::UpstreamAuthContext,
}

/// What one poll of the registry gave.
enum Poll {
    Changed(Box<GatewaySnapshot>),
    Unchanged,
}

impl Syncer {
    /// Serves the disk copy if there is a good one. Returns whether it did.
    pub fn load_from_disk(&self) -> bool {
        match read_snapshot(&self.snapshot_file) {
            Ok(Some(snapshot)) => {
                tracing::info!(
                    version = %snapshot.version,
                    servers = snapshot.servers.len(),
                    file = %self.snapshot_file.display(),
                    "serving the last good snapshot from disk until the registry answers"
                );
                self.apply(&snapshot);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(file = %self.snapshot_file.display(), error = %e, "ignoring the snapshot on disk");
                false
            }
        }
    }

    /// Applies a snapshot to the table and the metrics.
    pub fn apply(&self, snapshot: &GatewaySnapshot) {
        let previous = self.table.current();
        let routes = routes::build(
            snapshot,
            &previous,
            &RouteContext {
                keyring: self.keyring.as_ref(),
                default_concurrency: self.default_concurrency,
                shared: &self.shared,
                egress: &self.egress,
                auth: &self.upstream_auth,
            },
        );
        self.metrics.snapshot_info.reset();
        self.metrics
            .snapshot_info
            .with_label_values(&[snapshot.version.as_str()])
            .set(1.0);
        self.metrics.server_health.reset();
        for (server, health) in &snapshot.health {
            self.metrics
                .server_health
                .with_label_values(&[server.as_str(), health.status.as_str()])
                .set(1.0);
        }
        self.metrics.routes.set(routes.servers.len() as i64);
        self.metrics
            .policy_version
            .set(snapshot.policy.version as i64);
        self.metrics.snapshot_updates.inc();
        self.table.swap(routes);
    }

    /// Polls until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        let mut last_warning: Option<Instant> = None;
        loop {
            let known = self.table.current().version.clone();
            let poll = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                r = self.poll(&known) => r,
            };
            match poll {
                Ok(Poll::Changed(snapshot)) => {
                    failures = 0;
                    last_warning = None;
                    self.table.confirm();
                    if snapshot.version == known {
                        continue;
                    }
                    tracing::info!(
                        version = %snapshot.version,
                        previous = %known,
                        servers = snapshot.servers.len(),
                        policy_version = snapshot.policy.version,
                        "applying routing snapshot"
                    );
                    self.apply(&snapshot);
                    if let Err(e) = write_snapshot(&self.snapshot_file, &snapshot) {
                        tracing::warn!(file = %self.snapshot_file.display(), error = %e, "could not keep the snapshot on disk");
                    }
                }
                Ok(Poll::Unchanged) => {
                    failures = 0;
                    last_warning = None;
                    self.table.confirm();
                }
                Err(e) => {
                    self.metrics.snapshot_errors.inc();
                    failures += 1;
                    if warning_due(last_warning, Instant::now()) {
                        last_warning = Some(Instant::now());
                        // `snapshot_age_seconds` is what the stale-snapshot alarm reads from
                        // the log (terraform/modules/monitoring).
                        tracing::warn!(
                            error = %e,
                            failures,
                            snapshot_age_seconds = self.table.age_seconds() as u64,
                            version = %known,
                            "registry unreachable; serving the snapshot in use"
                        );
                    }
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(self.retry) => {}
                    }
                }
            }
        }
    }

    async fn poll(&self, known: &str) -> anyhow::Result<Poll> {
        let url = format!(
            "{}/api/v1/gateway/snapshot?wait={}",
            self.registry_url.trim_end_matches('/'),
            if known.is_empty() {
                0
            } else {
                self.poll_wait.as_secs()
            }
        );
        let mut request = self
            .http
            .get(&url)
            .timeout(self.poll_wait + Duration::from_secs(10));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        if !known.is_empty() {
            request = request.header(http::header::IF_NONE_MATCH, format!("\"{known}\""));
        }
        let response = request.send().await?;
        match response.status() {
            reqwest::StatusCode::NOT_MODIFIED => Ok(Poll::Unchanged),
            s if s.is_success() => {
                let bytes = response.bytes().await?;
                let snapshot: GatewaySnapshot = serde_json::from_slice(&bytes)
                    .map_err(|e| anyhow::anyhow!("the registry's snapshot does not parse: {e}"))?;
                if !snapshot.is_consistent() {
                    anyhow::bail!("the registry's snapshot does not match its version digest");
                }
                Ok(Poll::Changed(Box::new(snapshot)))
            }
            s => {
                let body = response.text().await.unwrap_or_default();
                let hint = match s.as_u16() {
                    401 => " (set registry.api_key to an API key of the registry)",
                    403 => " (the registry API key needs the gateway:sync permission)",
                    _ => "",
                };
                anyhow::bail!(
                    "the registry answered {s}{hint}: {}",
                    body.chars().take(300).collect::<String>()
                )
            }
        }
    }
}

/// Reads a snapshot file; `None` when there is none.
pub fn read_snapshot(path: &Path) -> anyhow::Result<Option<GatewaySnapshot>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let snapshot: GatewaySnapshot = serde_json::from_slice(&bytes)?;
    if !snapshot.is_consistent() {
        anyhow::bail!("its content does not match its version digest (damaged or edited)");
    }
    Ok(Some(snapshot))
}

/// Writes a snapshot so that a crash leaves either the old file or the new one, never half.
pub fn write_snapshot(path: &Path, snapshot: &GatewaySnapshot) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Credentials inside are sealed, but routes and policy are still internal.
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(&serde_json::to_vec(snapshot)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_logged_at_once_then_once_a_minute() {
        let start = Instant::now();
        assert!(warning_due(None, start), "the first failure");
        assert!(!warning_due(Some(start), start + Duration::from_secs(59)));
        assert!(warning_due(Some(start), start + Duration::from_secs(60)));
    }
}
