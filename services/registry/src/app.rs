//! Wiring: config → store, keyring, egress policy → the router, served on real sockets.
//!
//! `main` and the integration tests call the same [`start`], so tests run the real service.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use mcpgw_core::domain::ServerPath;
use mcpgw_core::egress::EgressPolicy;
use mcpgw_core::secrets::{Keyring, load_sealing_keyring_or_local};
use mcpgw_core::telemetry::{HttpMetrics, metrics_router};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::{ApiKeyAuthenticator, AuthChain, Authenticator, JwtAuthenticator};
use crate::config::RegistryConfig;
use crate::service::{PolicyCache, Registry};
use crate::{api, demo, store};
use mcpgw_core::token::TokenValidator;
use std::time::Duration;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub auth: Arc<AuthChain>,
    pub config: Arc<RegistryConfig>,
    pub metrics: HttpMetrics,
    /// Health checks and tool discovery of registered servers.
    pub health: Arc<crate::health::HealthChecker>,
    /// Open `GET /api/v1/events` streams of this process (bounded by `events.max_streams`).
    pub event_streams: Arc<tokio::sync::Semaphore>,
    /// The web console (`/console/`): its settings, sessions and auth-server client.
    pub console: Arc<crate::console::Console>,
}

/// Loads the key that seals upstream credentials, from wherever the config says; with none
/// configured (SQLite only), `<data_dir>/registry.key` is created once and reused.
pub async fn load_keyring(config: &RegistryConfig) -> anyhow::Result<Keyring> {
    let s = &config.secrets;
    let local = config.data_dir.join("registry.key");
    load_sealing_keyring_or_local(&s.sealing_key, &s.previous_sealing_keys, &s.aws, &local).await
}

/// Builds the application state: opens the store (creating indexes / running migrations).
pub async fn build_state(config: RegistryConfig, keyring: Keyring) -> anyhow::Result<AppState> {
    let url = config.store_url();
    let store = store::open(&url, &config.store)
        .await
        .with_context(|| format!("opening the {} store", url.split(':').next().unwrap_or("")))?;
    let embeddings = crate::embeddings::Embeddings::from_config(&config).await?;
    let registry = Arc::new(Registry {
        store,
        keyring: Arc::new(keyring),
        egress: EgressPolicy::new(config.egress),
        stage: config.stage,
        policy_cache: PolicyCache::new(Duration::from_secs(config.auth.policy_cache_seconds)),
        key_cache: crate::keys::KeyCache::new(Duration::from_secs(
            config.auth.api_key_cache_seconds,
        )),
        catalog: match (
            config.store.backend.catalog_cache_ms,
            url.starts_with("sqlite:"),
        ) {
            (0, _) => None,
            // The registry is the only writer of its SQLite file: writes alone invalidate.
            (_, true) => Some(crate::catalog::CatalogCache::new(None)),
            (ms, false) => Some(crate::catalog::CatalogCache::new(Some(
                Duration::from_millis(ms),
            ))),
        },
        gateway: {
            // Waiting polls re-check at the catalog's cache time (1 s when that cache is off),
            // which is how they see writes made through other replicas of a shared store.
            let every = Duration::from_millis(match config.store.backend.catalog_cache_ms {
                0 => 1000,
                ms => ms,
            });
            let ttl = (!url.starts_with("sqlite:")).then_some(every);
            crate::gateway::SnapshotFeed::new(config.stage, ttl, every)
                .with_tool_integrity(config.tools.integrity_mode)
        },
        // Reconciled with a shared store as often as the gateway feed re-checks it.
        search_index: crate::search::CatalogSearch::new((!url.starts_with("sqlite:")).then(|| {
            Duration::from_millis(match config.store.backend.catalog_cache_ms {
                0 => 1000,
                ms => ms,
            })
        }))
        .with_embeddings(embeddings.clone()),
        events: Default::default(),
        // Reserved even while `mcp.register` is off, so turning it on later finds the path free.
        system_path: ServerPath::parse(&config.mcp.path).ok(),
    });
    // Built now, so the first search does not pay for it.
    registry
        .search_index
        .refresh(&registry)
        .await
        .context("building the search index from the store")?;
    let mut authenticators: Vec<Box<dyn Authenticator>> = vec![Box::new(ApiKeyAuthenticator {
        registry: registry.clone(),
    })];
    let mut validator = None;
    if !config.auth.issuers.is_empty() {
        let v = Arc::new(
            TokenValidator::new(config.auth.issuers.clone(), Default::default())
                .context("auth.issuers")?,
        );
        authenticators.push(Box::new(JwtAuthenticator {
            validator: v.clone(),
            registry: registry.clone(),
        }));
        validator = Some(v);
    }
    let sessions = Arc::new(crate::console::session::Sessions::new(
        registry.keyring.clone(),
        config.console.secure_cookies,
        &config.console.public_url,
    ));
    let auth = Arc::new(AuthChain {
        authenticators,
        registry: registry.clone(),
        console: config
            .console
            .sign_in_configured()
            .then(|| sessions.clone()),
    });
    let console = Arc::new(
        crate::console::Console::new(config.console.clone(), sessions, validator)
            .context("the console's HTTP client")?,
    );
    let health = Arc::new(crate::health::HealthChecker::new(
        config.health.clone(),
        &registry.egress,
    )?);
    Ok(AppState {
        registry,
        auth,
        console,
        event_streams: Arc::new(tokio::sync::Semaphore::new(config.events.max_streams)),
        config: Arc::new(config),
        metrics: {
            let metrics = HttpMetrics::new("mcpgw_registry");
            if let Some(e) = &embeddings {
                e.register_metrics(&metrics.registry);
            }
            metrics
        },
        health,
    })
}

/// A running registry.
pub struct Running {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    /// The bootstrap admin key, when this start created it (first start only).
    pub bootstrap_key: Option<String>,
    pub demo_addr: Option<SocketAddr>,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits for the servers.
    pub async fn stop(self) {
        self.state.registry.gateway.close();
        self.state.registry.events.close();
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!(
            "binding {what} to {addr}; is another process using the port? change it in the config"
        )
    })
}

/// Creates the bootstrap admin key at first start. With `bootstrap.admin_key_file` set, the key
/// is on disk (as `<file>.pending`, mode 0600) before it is stored, and renamed once stored, so
/// a crash at any point cannot leave a stored key that nobody has.
async fn bootstrap(state: &AppState) -> anyhow::Result<Option<String>> {
    let minted = state.registry.mint_bootstrap_key();
    let file = state.config.bootstrap.admin_key_file.as_str();
    let pending = format!("{file}.pending");
    if !file.is_empty() {
        write_private(&pending, &minted.plain)?;
    }
    let stored = state
        .registry
        .store_bootstrap_key(&minted)
        .await
        .map_err(|e| anyhow::anyhow!("creating the bootstrap admin key: {e}"))?;
    if !file.is_empty() {
        if stored {
            std::fs::rename(&pending, file)
                .with_context(|| format!("moving {pending} to bootstrap.admin_key_file {file}"))?;
        } else {
            let _ = std::fs::remove_file(&pending);
        }
    }
    Ok(stored.then_some(minted.plain))
}

/// Writes a key to a file only its owner can read (the bootstrap key, `admin-key --output`).
pub fn write_private(file: &str, key: &str) -> anyhow::Result<()> {
    use mcpgw_core::secrets::{IfExists, write_private};
    write_private(
        std::path::Path::new(file),
        format!("{key}\n").as_bytes(),
        IfExists::Replace,
    )
    .with_context(|| format!("writing {file}; is its directory writable?"))
}

/// Binds the listeners, opens the store, bootstraps, and serves until [`Running::stop`].
pub async fn start(config: RegistryConfig) -> anyhow::Result<Running> {
    let listener = bind(config.listen, "listen").await?;
    let metrics_listener = bind(config.metrics_listen, "metrics_listen").await?;
    let keyring = load_keyring(&config).await?;
    let state = build_state(config, keyring).await?;
    let bootstrap_key = bootstrap(&state).await?;
    state
        .registry
        .rebind_legacy_secrets()
        .await
        .map_err(|e| anyhow::anyhow!("re-sealing stored credentials for their endpoints: {e}"))?;
    let (shutdown, stop) = watch::channel(false);
    let mut tasks = Vec::new();
    if state.config.health.enabled {
        tasks.push(tokio::spawn(crate::health::scheduler::run(
            state.registry.clone(),
            state.health.clone(),
            stop.clone(),
        )));
        if state.config.health.discover_tools && state.config.health.list_changed_watchers > 0 {
            tasks.push(tokio::spawn(crate::health::list_changed::run(
                state.registry.clone(),
                state.health.clone(),
                stop.clone(),
            )));
        }
    }
    let addr = listener.local_addr()?;
    let metrics_addr = metrics_listener.local_addr()?;
    let listeners = mcpgw_core::listener::Listeners::new(
        &state.config.listener,
        &state.metrics.registry,
        "mcpgw_registry",
    );
    let mut demo_addr = None;
    if state.config.demo.enabled {
        let demo_listener = bind(state.config.demo.listen, "demo.listen").await?;
        let bound = demo_listener.local_addr()?;
        let config = &state.config;
        let hosts = demo::allowed_hosts(bound, &[&config.console.public_url, &config.mcp.url]);
        tasks.push(mcpgw_core::serve::spawn_server(
            demo_listener,
            demo::router(hosts),
            stop.clone(),
            &listeners,
        ));
        demo::register(&state.registry, bound).await;
        demo_addr = Some(bound);
    }
    tasks.push(mcpgw_core::serve::spawn_server(
        listener,
        api::router(state.clone()),
        stop.clone(),
        &listeners,
    ));
    if state.config.mcp.register {
        crate::mcp::ensure_registered(&state, addr).await;
    }
    tasks.push(mcpgw_core::serve::spawn_server(
        metrics_listener,
        metrics_router(state.metrics.registry.clone()),
        stop,
        &listeners.for_operations(),
    ));
    tracing::info!(
        listen = %addr,
        metrics = %metrics_addr,
        store = state.registry.store.backend(),
        stage = ?state.config.stage,
        "registry started"
    );
    Ok(Running {
        addr,
        metrics_addr,
        bootstrap_key,
        demo_addr,
        state,
        shutdown,
        tasks,
    })
}
