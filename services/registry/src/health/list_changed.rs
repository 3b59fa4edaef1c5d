//! Tool discovery when a server says its tools changed (`notifications/tools/list_changed`).
//!
//! One watcher per healthy, enabled, reachable (not stdio) server whose capabilities declare
//! `tools.listChanged`. A watcher keeps a session open through [`crate::mcp_client`] (so the
//! server's credentials, custom headers and the egress policy apply as for any other call)
//! and listens: `subscriptions/listen` (2026-07-28), the session's `GET` stream (session era)
//! or the legacy SSE stream. Notifications within [`DEBOUNCE`] of the first cause one
//! [`discover_in_background`], which records through `record_tools` (unchanged lists write
//! nothing; changed ones go to tool-integrity review).
//!
//! Only the replica holding the store's health lease watches ([`HealthChecker::is_leader`]),
//! so a change is discovered once, not once per replica. Watchers follow the event bus: a
//! server deleted, disabled, no longer healthy, or with a changed endpoint, credentials or
//! headers loses (or restarts) its watcher at once; a full pass every [`RECONCILE`] catches
//! leadership changes, lost events and changes made through other replicas (whose events this
//! process's bus does not carry). A dropped stream is reopened with backoff, followed
//! by one discovery (a change may have been missed meanwhile). At most
//! `health.list_changed_watchers` servers are watched.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpgw_core::domain::{Endpoint, HealthStatus, ServerPath, ServerRecord};
use tokio::sync::{broadcast, oneshot, watch};
use tokio::time::Instant;

use super::HealthChecker;
use crate::discovery::discover_in_background;
use crate::mcp_client::{Failure, Session};
use crate::service::Registry;
use crate::store::ServerFilter;

/// Notifications closer together than this cause one discovery.
pub const DEBOUNCE: Duration = Duration::from_secs(1);
/// Period of the full pass over the store.
const RECONCILE: Duration = Duration::from_secs(10);
/// Reconnect delays after a dropped stream: doubling from the first to the second.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));
/// A stream that stayed open this long was healthy: the next drop starts the backoff over.
const STABLE: Duration = Duration::from_secs(60);
const PAGE: u32 = 500;

/// The running watchers of this process.
#[derive(Default)]
pub struct Watchers {
    active: Mutex<HashMap<ServerPath, Watcher>>,
    cap_warned: AtomicBool,
}

struct Watcher {
    /// What the watcher connected with; a different key means reconnect.
    key: String,
    /// A [`WatchState`]. An unsupported server's entry stays (so the server is not asked
    /// again every pass) but does not count against the cap.
    state: Arc<AtomicU8>,
    /// Dropping it stops the watcher (it closes its session first).
    _stop: oneshot::Sender<()>,
}

/// Where a server's watcher is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchState {
    /// Connecting, or waiting to reconnect after a dropped stream.
    Connecting = 0,
    /// The notification stream is open.
    Listening = 1,
    /// The server does not declare `tools.listChanged`; nothing is kept open.
    Unsupported = 2,
}

impl WatchState {
    fn of(value: u8) -> Self {
        match value {
            1 => Self::Listening,
            2 => Self::Unsupported,
            _ => Self::Connecting,
        }
    }
}

impl Watchers {
    /// The state of `path`'s watcher, if it has one.
    pub fn state(&self, path: &ServerPath) -> Option<WatchState> {
        let active = self.active.lock().expect("not poisoned");
        active
            .get(path)
            .map(|w| WatchState::of(w.state.load(Ordering::Relaxed)))
    }

    fn stop_all(&self) {
        self.active.lock().expect("not poisoned").clear();
    }

    /// Starts, keeps or stops the watcher of `path` so it matches `record` (as read now).
    fn sync(
        &self,
        registry: &Arc<Registry>,
        checker: &Arc<HealthChecker>,
        path: &ServerPath,
        record: Option<&ServerRecord>,
    ) {
        let wanted = record.filter(|r| watchable(r)).map(key);
        let mut active = self.active.lock().expect("not poisoned");
        match (&wanted, active.get(path)) {
            (Some(k), Some(w)) if *k == w.key => return,
            (None, None) => return,
            _ => {}
        }
        active.remove(path);
        let Some(key) = wanted else { return };
        let cap = checker.config.list_changed_watchers;
        let watched = active
            .values()
            .filter(|w| WatchState::of(w.state.load(Ordering::Relaxed)) != WatchState::Unsupported)
            .count();
        if watched >= cap {
            if !self.cap_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    cap,
                    server = %path,
                    "health.list_changed_watchers reached: further servers' tool changes are picked up by refresh or recovery only"
                );
            }
            return;
        }
        let (stop_tx, stop_rx) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(WatchState::Connecting as u8));
        tokio::spawn(watch_server(
            Arc::clone(registry),
            Arc::clone(checker),
            path.clone(),
            stop_rx,
            Arc::clone(&state),
        ));
        active.insert(
            path.clone(),
            Watcher {
                key,
                state,
                _stop: stop_tx,
            },
        );
    }
}

/// Whether `record` should have a watcher (before asking the server about the capability).
fn watchable(record: &ServerRecord) -> bool {
    record.enabled
        && record.health.status == HealthStatus::Healthy
        && !matches!(record.endpoint, Endpoint::Stdio { .. })
}

/// What a watcher's connection depends on: endpoint, credentials and headers (sealed, so no
/// secret is held in clear; the key is compared, never logged).
fn key(record: &ServerRecord) -> String {
    serde_json::to_string(&(
        &record.endpoint,
        &record.upstream_auth,
        &record.custom_headers,
    ))
    .expect("records serialize")
}

/// Runs until `stop` turns true (started by the app next to the scheduler).
pub async fn run(
    registry: Arc<Registry>,
    checker: Arc<HealthChecker>,
    mut stop: watch::Receiver<bool>,
) {
    let mut events = registry.events.subscribe();
    let mut tick = tokio::time::interval(RECONCILE);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => reconcile(&registry, &checker).await,
            event = events.recv() => match event {
                Ok(event) => {
                    if checker.is_leader() {
                        let Ok(path) = ServerPath::parse(event.path()) else { continue };
                        match registry.store.get_server(&path).await {
                            Ok(record) => checker.watchers.sync(&registry, &checker, &path, record.as_ref()),
                            Err(e) => tracing::warn!(server = %path, error = %e, "list_changed watcher: reading the server failed"),
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => reconcile(&registry, &checker).await,
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    checker.watchers.stop_all();
}

/// The full pass: every server checked against its watcher; none at all without the lease.
async fn reconcile(registry: &Arc<Registry>, checker: &Arc<HealthChecker>) {
    if !checker.is_leader() {
        checker.watchers.stop_all();
        return;
    }
    let filter = ServerFilter {
        enabled: Some(true),
        ..Default::default()
    };
    let mut seen = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = match registry
            .store
            .list_servers(&filter, after.as_deref(), PAGE)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "list_changed watchers: listing servers failed");
                return;
            }
        };
        let full = page.len() == PAGE as usize;
        after = page.last().map(|r| r.path.to_string());
        for record in page {
            checker
                .watchers
                .sync(registry, checker, &record.path, Some(&record));
            seen.insert(record.path.clone(), ());
        }
        if !full {
            break;
        }
    }
    // Servers gone or disabled since (not in the enabled listing).
    let gone: Vec<ServerPath> = {
        let active = checker.watchers.active.lock().expect("not poisoned");
        active
            .keys()
            .filter(|p| !seen.contains_key(*p))
            .cloned()
            .collect()
    };
    for path in gone {
        checker.watchers.sync(registry, checker, &path, None);
    }
}

/// How one connection ended.
enum End {
    Stopped,
    Unsupported,
    Dropped(Failure),
}

/// One server's watcher: connects, follows, reconnects with backoff, until stopped.
async fn watch_server(
    registry: Arc<Registry>,
    checker: Arc<HealthChecker>,
    path: ServerPath,
    mut stop: oneshot::Receiver<()>,
    state: Arc<AtomicU8>,
) {
    let mut backoff = BACKOFF.0;
    let mut catch_up = false;
    loop {
        let started = Instant::now();
        match follow(&registry, &checker, &path, catch_up, &mut stop, &state).await {
            End::Stopped => return,
            End::Unsupported => {
                tracing::debug!(server = %path, "no tools.listChanged capability: not watched");
                state.store(WatchState::Unsupported as u8, Ordering::Relaxed);
                return;
            }
            End::Dropped(e) => {
                state.store(WatchState::Connecting as u8, Ordering::Relaxed);
                if started.elapsed() >= STABLE {
                    backoff = BACKOFF.0;
                }
                tracing::info!(server = %path, error = %e, retry_in_ms = backoff.as_millis() as u64, "list_changed stream dropped");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = &mut stop => return,
        }
        backoff = (backoff * 2).min(BACKOFF.1);
        catch_up = true;
    }
}

/// One connection: open a session, check the capability, listen, discover on changes.
async fn follow(
    registry: &Arc<Registry>,
    checker: &Arc<HealthChecker>,
    path: &ServerPath,
    catch_up: bool,
    stop: &mut oneshot::Receiver<()>,
    state: &AtomicU8,
) -> End {
    let record = match registry.store.get_server(path).await {
        Ok(Some(record)) => record,
        Ok(None) => return End::Stopped,
        Err(e) => return End::Dropped(Failure::Unusable(e.to_string())),
    };
    let target = match checker.target(registry, &record) {
        Ok(target) => target,
        Err(e) => return End::Dropped(e),
    };
    let opened = tokio::time::timeout(checker.timeout(), async {
        let mut session = Session::open(checker.http(), &target).await?;
        if !session.announces_tool_changes() {
            session.close().await;
            return Ok(None);
        }
        match session.notifications().await {
            Ok(notes) => Ok(Some((session, notes))),
            Err(e) => {
                session.close().await;
                Err(e)
            }
        }
    })
    .await
    .unwrap_or(Err(Failure::Timeout));
    let (session, mut notes) = match opened {
        Ok(Some(open)) => open,
        Ok(None) => return End::Unsupported,
        Err(e) => return End::Dropped(e),
    };
    state.store(WatchState::Listening as u8, Ordering::Relaxed);
    if catch_up {
        refresh(registry, checker, path).await;
    }
    let mut due: Option<Instant> = None;
    loop {
        let debounce = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut *stop => {
                session.close().await;
                return End::Stopped;
            }
            _ = debounce => {
                due = None;
                refresh(registry, checker, path).await;
            }
            note = notes.next() => match note {
                Ok(note) => {
                    let method = note.get("method").and_then(|m| m.as_str());
                    if method == Some("notifications/tools/list_changed") && due.is_none() {
                        due = Some(Instant::now() + DEBOUNCE);
                    }
                }
                Err(e) => {
                    session.close().await;
                    return End::Dropped(e);
                }
            },
        }
    }
}

async fn refresh(registry: &Arc<Registry>, checker: &Arc<HealthChecker>, path: &ServerPath) {
    tracing::debug!(server = %path, "tool list changed: discovering");
    if let Err(e) = discover_in_background(registry, checker, path).await {
        tracing::warn!(server = %path, error = %e, "tool discovery after list_changed failed");
    }
}
