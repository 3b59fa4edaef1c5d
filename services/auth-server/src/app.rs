//! Wiring: config → store, keyring, signing keys, sessions → the router, served on real sockets.
//!
//! `main` and the integration tests call the same [`start`], so tests run the real service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mcpgw_core::secrets::{Keyring, load_sealing_keyring_or_local};
use mcpgw_core::telemetry::{HttpMetrics, metrics_router};
use mcpgw_core::time::Timestamp;
use mcpgw_core::token::TokenValidator;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api;
use crate::config::AuthConfig;
use crate::keys::KeyManager;
use crate::local::{PasswordHasherConfig, generate_password};
use crate::metrics::AuthMetrics;
use crate::oidc::OidcProviders;
use crate::session::Sessions;
use crate::store::{self, AuditRecord, AuthStore, StoreError, UserRecord};

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<AuthConfig>,
    /// The public base URL (no trailing slash): `iss` of vended tokens, base of metadata URLs.
    pub public_url: Arc<str>,
    pub store: Arc<dyn AuthStore>,
    /// Seals signing keys, logins in progress and ID tokens kept for logout.
    pub keyring: Arc<Keyring>,
    pub keys: Arc<KeyManager>,
    pub sessions: Arc<Sessions>,
    /// The local identity provider's hasher; `None` when `local.enabled = false`.
    pub passwords: Option<PasswordHasherConfig>,
    /// OIDC identity providers for browser login (possibly none).
    pub oidc: Arc<OidcProviders>,
    /// Trusted issuers for `/validate`; `None` when none are configured.
    pub validator: Option<Arc<TokenValidator>>,
    pub metrics: HttpMetrics,
    pub auth_metrics: AuthMetrics,
    /// The `Content-Security-Policy` of pages with a sign-in or sign-out form (see
    /// `login::form_page_csp`).
    pub form_page_csp: axum::http::HeaderValue,
}

impl AppState {
    /// The RFC 9728 metadata URL named in `WWW-Authenticate` challenges.
    pub fn resource_metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource", self.public_url)
    }

    /// Whether `groups` include an administrator group.
    pub fn is_admin(&self, groups: &[String]) -> bool {
        groups.iter().any(|g| self.config.admin_groups.contains(g))
    }
}

/// Loads the key that seals signing keys, from wherever the config says; with none configured
/// (SQLite only), `<data_dir>/auth-server.key` is created once and reused.
pub async fn load_keyring(config: &AuthConfig) -> anyhow::Result<Keyring> {
    let s = &config.secrets;
    let local = config.data_dir.join("auth-server.key");
    load_sealing_keyring_or_local(&s.sealing_key, &s.previous_sealing_keys, &s.aws, &local).await
}

/// Builds the application state: opens the store (running migrations) and makes sure a
/// signing key exists.
pub async fn build_state(
    config: AuthConfig,
    keyring: Keyring,
    public_url: String,
) -> anyhow::Result<AppState> {
    let store = store::open(&config).await.with_context(|| {
        format!(
            "opening the {} store",
            config.store_url().split(':').next().unwrap_or("")
        )
    })?;
    let keyring = Arc::new(keyring);
    let keys = Arc::new(KeyManager::new(
        store.clone(),
        keyring.clone(),
        // Sign-in tokens of OAuth clients may outlive vended ones: a rotated key stays
        // published until the longest of them has expired.
        config.longest_token_ttl_seconds(),
    ));
    keys.ensure_key()
        .await
        .map_err(|e| anyhow::anyhow!("creating the first signing key: {e}"))?;
    let passwords = if config.local.enabled {
        Some(PasswordHasherConfig::new(config.local.password_hash).context("local.password_hash")?)
    } else {
        None
    };
    let validator = if config.validate.issuers.is_empty() {
        None
    } else {
        Some(Arc::new(
            TokenValidator::new(config.validate.issuers.clone(), Default::default())
                .context("validate.issuers")?,
        ))
    };
    let oidc = Arc::new(
        OidcProviders::new(&config.oidc.providers, &config.secrets.aws)
            .await
            .context("oidc.providers")?,
    );
    let metrics = HttpMetrics::new("mcpgw_auth");
    let auth_metrics = AuthMetrics::register(&metrics.registry);
    Ok(AppState {
        form_page_csp: crate::api::login::form_page_csp(&config),
        sessions: Arc::new(Sessions::new(store.clone(), config.session.clone())),
        public_url: public_url.into(),
        config: Arc::new(config),
        store,
        keyring,
        keys,
        oidc,
        passwords,
        validator,
        metrics,
        auth_metrics,
    })
}

/// Creates the bootstrap administrator at first start. The password is generated, written to
/// `local.bootstrap_password_file` (as `<file>.pending`, mode 0600) before the user is stored
/// and renamed once stored, so a crash cannot leave a stored admin whose password nobody has.
/// Two replicas starting at once: the username is the primary key, so one insert wins; the
/// other returns `None`.
pub async fn bootstrap_admin(state: &AppState) -> anyhow::Result<Option<SecretString>> {
    let Some(passwords) = &state.passwords else {
        return Ok(None);
    };
    let local = &state.config.local;
    if state
        .store
        .get_user(&local.bootstrap_admin)
        .await?
        .is_some()
    {
        return Ok(None);
    }
    let password = generate_password();
    let hash = passwords
        .hash(password.clone())
        .await
        .context("hashing the bootstrap password")?;
    let file = local.bootstrap_password_file.as_str();
    let pending = format!("{file}.pending");
    if !file.is_empty() {
        write_private(&pending, password.expose_secret())?;
    }
    let now = Timestamp::now();
    let group = state.config.admin_groups[0].clone();
    let user = UserRecord {
        username: local.bootstrap_admin.clone(),
        password_hash: hash,
        groups: vec![group.clone()],
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    let audit = AuditRecord::new(
        "system:bootstrap",
        None,
        "user.create",
        "user",
        &user.username,
        serde_json::json!({"groups": [group], "bootstrap": true}),
    );
    let stored = match state.store.insert_user(&user, &audit).await {
        Ok(()) => true,
        Err(StoreError::Conflict(_)) => false,
        Err(e) => return Err(anyhow::anyhow!("creating the bootstrap administrator: {e}")),
    };
    if !file.is_empty() {
        if stored {
            std::fs::rename(&pending, file).with_context(|| {
                format!("moving {pending} to local.bootstrap_password_file {file}")
            })?;
        } else {
            let _ = std::fs::remove_file(&pending);
        }
    }
    Ok(stored.then_some(password))
}

/// Sets a new generated password for a local user (break-glass). Returns it.
pub async fn reset_password(state: &AppState, username: &str) -> anyhow::Result<SecretString> {
    let passwords = state
        .passwords
        .as_ref()
        .context("the local identity provider is disabled (local.enabled = false)")?;
    let password = generate_password();
    let hash = passwords.hash(password.clone()).await?;
    let audit = AuditRecord::new(
        "system:cli",
        None,
        "user.password_reset",
        "user",
        username,
        serde_json::json!({}),
    );
    state
        .store
        .set_password(username, &hash, Timestamp::now(), &audit)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => anyhow::anyhow!("there is no local user {username:?}"),
            other => anyhow::anyhow!("setting the password: {other}"),
        })?;
    Ok(password)
}

fn write_private(file: &str, secret: &str) -> anyhow::Result<()> {
    use mcpgw_core::secrets::{IfExists, write_private};
    write_private(
        std::path::Path::new(file),
        format!("{secret}\n").as_bytes(),
        IfExists::Replace,
    )
    .with_context(|| {
        format!("writing {file} (local.bootstrap_password_file); is its directory writable?")
    })
}

/// A running auth-server.
pub struct Running {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub public_url: String,
    /// The bootstrap administrator's password, when this start created it (first start only).
    pub bootstrap_password: Option<SecretString>,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits for the servers.
    pub async fn stop(self) {
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

/// Housekeeping every minute on every replica: ended sessions, old login failures, retired
/// keys and registered clients unused for `oauth.registration.unused_client_days` are deleted; the signing key is rotated when it is due.
fn spawn_housekeeping(state: AppState, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            housekeeping(&state).await;
        }
    })
}

/// One round of housekeeping (public so tests can run it without waiting).
pub async fn housekeeping(state: &AppState) {
    if let Err(e) = state.sessions.prune().await {
        tracing::warn!(error = %e, "pruning sessions failed");
    }
    let window = chrono::Duration::seconds(state.config.login.failure_window_seconds as i64);
    let before = Timestamp::from_datetime(Timestamp::now().as_datetime() - window);
    if let Err(e) = state.store.prune_login_failures(before).await {
        tracing::warn!(error = %e, "pruning login failures failed");
    }
    let period = state.config.keys.rotation_period_seconds;
    if period > 0
        && let Err(e) = state
            .keys
            .rotate_if_due(Duration::from_secs(period), Timestamp::now())
            .await
    {
        tracing::error!(error = %e, "rotating the signing key failed");
    }
    if let Err(e) = state.keys.prune().await {
        tracing::warn!(error = %e, "deleting retired signing keys failed");
    }
    let idle = chrono::Duration::seconds(state.config.oauth.refresh.idle_seconds as i64);
    let now = Timestamp::now();
    let idle_before = Timestamp::from_datetime(now.as_datetime() - idle);
    if let Err(e) = state
        .store
        .delete_expired_refresh_families(now, idle_before)
        .await
    {
        tracing::warn!(error = %e, "deleting ended OAuth sign-ins failed");
    }
    let unused = chrono::Duration::days(i64::from(
        state.config.oauth.registration.unused_client_days,
    ));
    let before = Timestamp::from_datetime(Timestamp::now().as_datetime() - unused);
    match state.store.delete_unused_oauth_clients(before).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            oauth.clients_deleted = n,
            "unused registered OAuth clients deleted"
        ),
        Err(e) => tracing::warn!(error = %e, "deleting unused OAuth clients failed"),
    }
}

/// Binds the listeners, opens the store, bootstraps, and serves until [`Running::stop`].
pub async fn start(config: AuthConfig) -> anyhow::Result<Running> {
    let listener = bind(config.listen, "listen").await?;
    let metrics_listener = bind(config.metrics_listen, "metrics_listen").await?;
    let addr = listener.local_addr()?;
    let metrics_addr = metrics_listener.local_addr()?;
    let public_url = config.public_url(addr);
    let keyring = load_keyring(&config).await?;
    let state = build_state(config, keyring, public_url.clone()).await?;
    let bootstrap_password = bootstrap_admin(&state).await?;
    let (shutdown, stop) = watch::channel(false);
    let mut tasks = Vec::new();
    // The core listener (timeouts, the connection cap) also sets `ConnectInfo` on requests.
    let listeners = mcpgw_core::listener::Listeners::new(
        &state.config.listener,
        &state.metrics.registry,
        "mcpgw_auth",
    );
    tasks.push(mcpgw_core::serve::spawn_server(
        listener,
        api::router(state.clone()),
        stop.clone(),
        &listeners,
    ));
    tasks.push(mcpgw_core::serve::spawn_server(
        metrics_listener,
        metrics_router(state.metrics.registry.clone()),
        stop.clone(),
        &listeners.for_operations(),
    ));
    tasks.push(spawn_housekeeping(state.clone(), stop));
    tracing::info!(
        listen = %addr,
        metrics = %metrics_addr,
        public_url = %public_url,
        store = state.store.backend(),
        "auth-server started"
    );
    Ok(Running {
        addr,
        metrics_addr,
        public_url,
        bootstrap_password,
        state,
        shutdown,
        tasks,
    })
}
