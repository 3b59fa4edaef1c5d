//! The auth-server's configuration: embedded defaults (`config/default.toml`), then an optional
//! file, then `MCPGW_AUTH_*` environment variables. Every key is described in the defaults file;
//! [`AuthConfig::validate`] holds the cross-field rules, each naming the key and its variable.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use mcpgw_core::config::{ConfigError, load, load_from_str};
use mcpgw_core::secrets::{SecretSource, SecretsManagerConfig};
use mcpgw_core::telemetry::LogConfig;
use mcpgw_core::token::IssuerConfig;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::scope::Scope;

pub const ENV_PREFIX: &str = "MCPGW_AUTH_";
pub const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Empty = `http://<listen>`; see [`AuthConfig::public_url`].
    pub public_url: String,
    pub allowed_return_origins: Vec<String>,
    pub admin_groups: Vec<String>,
    pub max_body_bytes: usize,
    pub group_scopes: BTreeMap<String, Vec<String>>,
    pub store: StoreConfig,
    pub session: SessionConfig,
    pub login: LoginConfig,
    pub local: LocalConfig,
    pub oidc: OidcConfig,
    pub tokens: TokensConfig,
    pub keys: KeysConfig,
    pub validate: ValidateConfig,
    pub oauth: OAuthConfig,
    pub resource: ResourceConfig,
    pub secrets: SecretsConfig,
    pub log: LogConfig,
    /// `[listener]`: timeouts and the connection cap of every listener.
    #[serde(default)]
    pub listener: mcpgw_core::listener::ListenerConfig,
}

/// Defined in core with the SQLite pool setup they configure.
pub use mcpgw_core::sqlite::SqliteSync;

/// `[store]`: `url` is `sqlite://PATH` (empty = `<data_dir>/auth.db`) or
/// `postgres://USER@HOST:PORT/DB`; `pool_size` counts PostgreSQL connections / SQLite read
/// connections.
pub type StoreConfig = mcpgw_core::sqlite::StoreConfig<PostgresConfig>;

/// The `[store]` keys of the PostgreSQL backend.
#[derive(Debug, Clone, Deserialize)]
pub struct PostgresConfig {
    /// The PostgreSQL password (never in the URL).
    pub password: SecretSource,
    pub password_refresh_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    pub cookie_secure: bool,
    pub ttl_seconds: u64,
    pub idle_timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// Failures one (username, client address) pair may have in the window before it backs
    /// off (default 5).
    pub max_failures_per_pair: u32,
    /// The first wait of a pair past its allowance; each further failure doubles it
    /// (default 1 s).
    pub backoff_base_seconds: u64,
    /// The longest wait of a pair (default 900 s, at most `failure_window_seconds`).
    pub backoff_max_seconds: u64,
    /// Failures on one account from every address in the window past which the account is
    /// under attack: every pair then backs off after its first failure. Never a lock
    /// (default 20).
    pub max_failures_per_user: u32,
    /// Failures from one client address across usernames in the window; past it that
    /// address waits until its oldest failure leaves the window (default 20).
    pub max_failures_per_client: u32,
    pub failure_window_seconds: u64,
    pub trusted_proxy_hops: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    pub enabled: bool,
    pub bootstrap_admin: String,
    pub bootstrap_password_file: String,
    pub password_hash: PasswordHashConfig,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordHashConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    pub providers: Vec<OidcProviderConfig>,
}

/// One OIDC identity provider, found by discovery from its issuer URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// Short id: in URLs (`/login/oidc/<id>`) and subjects (`<id>:<sub>`).
    pub id: String,
    /// Shown on the login page.
    pub name: String,
    /// The issuer; discovery reads `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// None configured = a public client (PKCE only).
    #[serde(default)]
    pub client_secret: SecretSource,
    #[serde(default = "default_oidc_scopes")]
    pub scopes: Vec<String>,
    /// The ID token claim that lists the user's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Where the provider sends the browser after RP-initiated logout (must be registered
    /// there); empty = the provider's own page.
    #[serde(default)]
    pub post_logout_redirect_uri: String,
}

fn default_oidc_scopes() -> Vec<String> {
    vec![
        "openid".to_owned(),
        "profile".to_owned(),
        "email".to_owned(),
    ]
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    pub audience: String,
    pub default_ttl_seconds: u64,
    pub max_ttl_seconds: u64,
    pub mints_per_hour: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    pub rotation_period_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateConfig {
    pub issuers: Vec<IssuerConfig>,
}

/// The OAuth authorization server for first-party web clients (the registry's console).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    pub clients: Vec<OAuthClientConfig>,
    pub registration: RegistrationConfig,
    pub refresh: RefreshConfig,
}

/// `[oauth.refresh]`: refresh tokens of registered clients (rotation and reuse detection are
/// in `crate::refresh`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshConfig {
    /// Whether the code exchange of a registered client also returns a refresh token.
    pub enabled: bool,
    /// A sign-in not refreshed for this long ends.
    pub idle_seconds: u64,
    /// A sign-in ends this long after it began, however often it was refreshed.
    pub lifetime_seconds: u64,
}

/// Bounds of `oauth.refresh.lifetime_seconds` (a year at most).
pub const REFRESH_LIFETIME: std::ops::RangeInclusive<u64> = 60..=31_536_000;

/// `[oauth.registration]`: Dynamic Client Registration (RFC 7591) for MCP clients; the policy
/// is in `crate::registration`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationConfig {
    pub enabled: bool,
    /// Custom URI schemes (RFC 8252 §7.1) a redirect URI may use besides https and loopback http.
    pub custom_schemes: Vec<String>,
    /// Most registered clients at once (all replicas together).
    pub max_clients: u32,
    /// Registrations per hour from everyone together.
    pub registrations_per_hour: u32,
    /// Registrations per hour from one client address (the TCP peer, or the address
    /// `login.trusted_proxy_hops` says to read from X-Forwarded-For).
    pub registrations_per_hour_per_address: u32,
    /// A client that obtained no token for this many days is deleted.
    pub unused_client_days: u32,
    /// Lifetime of the access tokens of registered clients.
    pub token_ttl_seconds: u64,
}

/// One pre-registered public client (authorization code + PKCE, no secret, no consent page).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClientConfig {
    /// `client_id`: 1-64 of `a-z 0-9 - _ .`.
    pub id: String,
    /// Where codes may be sent, compared exactly (RFC 9700: no pattern matching).
    pub redirect_uris: Vec<String>,
    /// The `aud` of its tokens besides the auth-server's own public URL.
    pub audience: String,
    #[serde(default = "default_client_token_ttl")]
    pub token_ttl_seconds: u64,
    /// Whether its tokens may use the token-vending API on the user's behalf.
    #[serde(default)]
    pub manage_tokens: bool,
}

fn default_client_token_ttl() -> u64 {
    28_800
}

/// Bounds of `oauth.clients[].token_ttl_seconds`.
pub const CLIENT_TOKEN_TTL: std::ops::RangeInclusive<u64> = 300..=86_400;
/// Bounds of `oauth.registration.token_ttl_seconds`: registered clients refresh, so their
/// tokens may be as short as a test wants (the gateway allows 30 s of clock skew on top).
pub const REGISTERED_TOKEN_TTL: std::ops::RangeInclusive<u64> = 5..=86_400;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    pub url: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// The key that seals signing keys at rest (`[secrets.sealing_key]`).
    pub sealing_key: SecretSource,
    /// Keys replaced by a rotation: they still open, never seal.
    pub previous_sealing_keys: Vec<SecretString>,
    pub aws: SecretsManagerConfig,
}

impl SecretsConfig {
    /// Whether a sealing key is configured (else the SQLite default generates one).
    pub fn key_configured(&self) -> bool {
        self.sealing_key.is_configured()
    }
}

/// The storage backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl AuthConfig {
    /// Loads defaults, the optional file and the environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let config: Self = load(DEFAULTS, file, ENV_PREFIX)?;
        config.validate()?;
        Ok(config)
    }

    /// Defaults plus layers of TOML text, later layers winning; no environment. For tests.
    pub fn from_toml_layers(layers: &[&str]) -> Result<Self, ConfigError> {
        let config: Self = load_from_str(DEFAULTS, layers, ENV_PREFIX)?;
        config.validate()?;
        Ok(config)
    }

    /// Defaults plus TOML text; no environment. For tests.
    pub fn from_toml(overrides: &str) -> Result<Self, ConfigError> {
        Self::from_toml_layers(&[overrides])
    }

    /// The store URL, defaulting to a SQLite file in the data directory.
    pub fn store_url(&self) -> String {
        if self.store.url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("auth.db").display())
        } else {
            self.store.url.clone()
        }
    }

    pub fn backend(&self) -> Option<Backend> {
        let url = self.store_url();
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    /// The public base URL without a trailing slash. With `public_url` empty it is derived from
    /// `bound` (the address actually listened on, which differs from `listen` for port 0).
    pub fn public_url(&self, bound: SocketAddr) -> String {
        if self.public_url.is_empty() {
            let mut addr = bound;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        } else {
            self.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// The gateway's public base URL (`resource.url`) without a trailing slash: its MCP
    /// endpoints are the resources tokens may be bound to (RFC 8707).
    pub fn resource_base(&self) -> &str {
        self.resource.url.trim_end_matches('/')
    }

    /// The OAuth client with this `client_id`, if configured.
    pub fn oauth_client(&self, id: &str) -> Option<&OAuthClientConfig> {
        self.oauth.clients.iter().find(|c| c.id == id)
    }

    /// The longest lifetime of any token we sign (vended or issued to an OAuth client): a
    /// rotated key must stay published that long.
    pub fn longest_token_ttl_seconds(&self) -> u64 {
        self.oauth
            .clients
            .iter()
            .map(|c| c.token_ttl_seconds)
            .chain([self.oauth.registration.token_ttl_seconds])
            .fold(self.tokens.max_ttl_seconds, u64::max)
    }

    /// Every scope some group holds, sorted and without repeats.
    pub fn all_scopes(&self) -> Vec<String> {
        let mut all: Vec<String> = self.group_scopes.values().flatten().cloned().collect();
        all.sort();
        all.dedup();
        all
    }

    /// Cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let key = |k: &str, m: &str| ConfigError::key(ENV_PREFIX, k, m);
        if let Err((k, m)) = self.listener.validate() {
            return Err(key(&format!("listener.{k}"), m));
        }
        let Some(backend) = self.backend() else {
            return Err(key(
                "store.url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        };
        if self.store.pool_size == 0 || self.store.pool_size > 256 {
            return Err(key("store.pool_size", "must be between 1 and 256"));
        }
        if self.store.backend.password_refresh_seconds > 86_400 {
            return Err(key(
                "store.password_refresh_seconds",
                "must be at most 86400 (a day); 0 reads the password once",
            ));
        }
        if let Err(e) = self.store.backend.password.check() {
            return Err(key("store.password", &e));
        }
        if backend == Backend::Sqlite && self.store.backend.password.is_configured() {
            return Err(key(
                "store.password",
                "is for PostgreSQL; the SQLite store has no password",
            ));
        }
        if self.listen == self.metrics_listen && self.listen.port() != 0 {
            return Err(key(
                "metrics_listen",
                "must differ from listen: metrics are served on their own port",
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err(key("max_body_bytes", "must be between 1024 and 16777216"));
        }
        let public = self.public_url(self.listen);
        let public_url = match Url::parse(&public) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && u.username().is_empty() =>
            {
                u
            }
            _ => {
                return Err(key(
                    "public_url",
                    "must be an http(s) base URL such as https://auth.example.com",
                ));
            }
        };
        if public_url.path() != "/" {
            return Err(key(
                "public_url",
                "must have no path: the session cookie and the OAuth metadata live at the root",
            ));
        }
        let loopback = is_loopback_host(&public_url);
        if public_url.scheme() == "http" && !loopback {
            return Err(key(
                "public_url",
                "must be https unless it is a loopback address (local use)",
            ));
        }
        if !self.session.cookie_secure && !loopback {
            return Err(key(
                "session.cookie_secure",
                "may only be false when public_url is a loopback address (local use over plain HTTP)",
            ));
        }
        for (i, origin) in self.allowed_return_origins.iter().enumerate() {
            if parse_origin(origin).is_none() {
                return Err(key(
                    &format!("allowed_return_origins[{i}]"),
                    "must be an origin such as https://registry.example.com (scheme, host and optional port; no path)",
                ));
            }
        }
        if self.admin_groups.is_empty() || self.admin_groups.iter().any(|g| g.trim().is_empty()) {
            return Err(key(
                "admin_groups",
                "must name at least one group, none empty",
            ));
        }
        for (group, scopes) in &self.group_scopes {
            for (i, s) in scopes.iter().enumerate() {
                if let Err(e) = Scope::parse(s) {
                    return Err(key(&format!("group_scopes.{group}[{i}]"), &e));
                }
            }
        }
        for (i, s) in self.resource.scopes_supported.iter().enumerate() {
            if let Err(e) = Scope::parse(s) {
                return Err(key(&format!("resource.scopes_supported[{i}]"), &e));
            }
        }
        let s = &self.session;
        if !(60..=30 * 86_400).contains(&s.ttl_seconds) {
            return Err(key("session.ttl_seconds", "must be between 60 and 2592000"));
        }
        if s.idle_timeout_seconds < 60 || s.idle_timeout_seconds > s.ttl_seconds {
            return Err(key(
                "session.idle_timeout_seconds",
                "must be at least 60 and at most session.ttl_seconds",
            ));
        }
        let l = &self.login;
        for (name, value) in [
            ("login.max_failures_per_pair", l.max_failures_per_pair),
            ("login.max_failures_per_user", l.max_failures_per_user),
            ("login.max_failures_per_client", l.max_failures_per_client),
        ] {
            if value == 0 {
                return Err(key(name, "must be at least 1"));
            }
        }
        if !(1..=86_400).contains(&l.failure_window_seconds) {
            return Err(key(
                "login.failure_window_seconds",
                "must be between 1 and 86400",
            ));
        }
        if l.backoff_base_seconds == 0 || l.backoff_base_seconds > l.backoff_max_seconds {
            return Err(key(
                "login.backoff_base_seconds",
                "must be at least 1 and at most login.backoff_max_seconds",
            ));
        }
        // A pair's failures must stay in the window for as long as it waits, or they would be
        // forgotten before the wait ends and the count would start again.
        if l.backoff_max_seconds > l.failure_window_seconds {
            return Err(key(
                "login.backoff_max_seconds",
                "must be at most login.failure_window_seconds",
            ));
        }
        if l.trusted_proxy_hops > 10 {
            return Err(key("login.trusted_proxy_hops", "must be at most 10"));
        }
        if self.local.enabled {
            if let Err(e) = crate::local::Username::parse(&self.local.bootstrap_admin) {
                return Err(key("local.bootstrap_admin", &e.message));
            }
            let h = self.local.password_hash;
            if h.memory_kib < 1024 || h.memory_kib > 1024 * 1024 {
                return Err(key(
                    "local.password_hash.memory_kib",
                    "must be between 1024 and 1048576",
                ));
            }
            if !(1..=10).contains(&h.iterations) {
                return Err(key(
                    "local.password_hash.iterations",
                    "must be between 1 and 10",
                ));
            }
            if !(1..=16).contains(&h.parallelism) {
                return Err(key(
                    "local.password_hash.parallelism",
                    "must be between 1 and 16",
                ));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, p) in self.oidc.providers.iter().enumerate() {
            let k = |field: &str| format!("oidc.providers[{i}].{field}");
            if mcpgw_core::validate::identifier("id", &p.id, 32, "-").is_err() || p.id == "local" {
                return Err(key(
                    &k("id"),
                    "must be 1-32 lowercase letters, digits and '-', and not \"local\"",
                ));
            }
            if !ids.insert(p.id.as_str()) {
                return Err(key(&k("id"), "is used by two providers"));
            }
            if p.name.trim().is_empty() || p.name.len() > 100 {
                return Err(key(&k("name"), "must be 1-100 characters"));
            }
            match Url::parse(&p.issuer) {
                Ok(u)
                    if u.scheme() == "https" || (u.scheme() == "http" && is_loopback_host(&u)) => {}
                _ => {
                    return Err(key(
                        &k("issuer"),
                        "must be an https URL (http only on loopback), such as https://kc.example.com/realms/mcpgw",
                    ));
                }
            }
            if p.client_id.trim().is_empty() {
                return Err(key(&k("client_id"), "must not be empty"));
            }
            if let Err(e) = p.client_secret.check() {
                return Err(key(&k("client_secret"), &e));
            }
            if !p.scopes.iter().any(|s| s == "openid") {
                return Err(key(&k("scopes"), "must include openid"));
            }
            if let Some(bad) = p.scopes.iter().find(|s| Scope::parse(s).is_err()) {
                return Err(key(&k("scopes"), &format!("{bad:?} is not a scope")));
            }
            if p.groups_claim.trim().is_empty() {
                return Err(key(&k("groups_claim"), "must not be empty"));
            }
            if !p.post_logout_redirect_uri.is_empty()
                && !matches!(Url::parse(&p.post_logout_redirect_uri), Ok(u) if matches!(u.scheme(), "http" | "https"))
            {
                return Err(key(
                    &k("post_logout_redirect_uri"),
                    "must be an http(s) URL",
                ));
            }
        }
        if !self.local.enabled && self.oidc.providers.is_empty() {
            return Err(key(
                "local.enabled",
                "nobody could sign in: enable the local provider or configure oidc.providers",
            ));
        }
        let t = &self.tokens;
        if t.audience.trim().is_empty() {
            return Err(key("tokens.audience", "must not be empty"));
        }
        if !(60..=7 * 86_400).contains(&t.max_ttl_seconds) {
            return Err(key(
                "tokens.max_ttl_seconds",
                "must be between 60 and 604800 (a week)",
            ));
        }
        if t.default_ttl_seconds < 60 || t.default_ttl_seconds > t.max_ttl_seconds {
            return Err(key(
                "tokens.default_ttl_seconds",
                "must be at least 60 and at most tokens.max_ttl_seconds",
            ));
        }
        if t.mints_per_hour == 0 || t.mints_per_hour > 10_000 {
            return Err(key("tokens.mints_per_hour", "must be between 1 and 10000"));
        }
        let period = self.keys.rotation_period_seconds;
        if period != 0 && period < 3600 {
            return Err(key(
                "keys.rotation_period_seconds",
                "must be 0 (rotate only on demand) or at least 3600",
            ));
        }
        if let Err(e) = mcpgw_core::token::TokenValidator::new(
            self.validate.issuers.clone(),
            Default::default(),
        ) {
            return Err(key("validate.issuers", &e.to_string()));
        }
        if self
            .validate
            .issuers
            .iter()
            .any(|i| i.issuer.trim_end_matches('/') == public)
        {
            return Err(key(
                "validate.issuers",
                "must not list the auth-server itself: its own tokens are always accepted (and checked against the revocation ledger)",
            ));
        }
        self.validate_oauth_clients()?;
        self.validate_registration()?;
        match Url::parse(&self.resource.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(key(
                    "resource.url",
                    "must be the gateway's http(s) base URL, such as https://gateway.example.com",
                ));
            }
        }
        for (i, a) in self.resource.authorization_servers.iter().enumerate() {
            match Url::parse(a) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => {
                    return Err(key(
                        &format!("resource.authorization_servers[{i}]"),
                        "must be an issuer URL such as https://kc.example.com/realms/mcpgw",
                    ));
                }
            }
        }
        if let Err(e) = self.secrets.sealing_key.check() {
            return Err(key("secrets.sealing_key", &e));
        }
        if backend == Backend::Postgres && !self.secrets.key_configured() {
            return Err(key(
                "secrets.sealing_key.secret_id",
                "a shared store (PostgreSQL) needs one key for every replica to seal signing keys: \
                 set secrets.sealing_key.secret_id (AWS Secrets Manager), .value or .file; only the \
                 embedded SQLite default generates a local key",
            ));
        }
        Ok(())
    }
}

impl AuthConfig {
    fn validate_oauth_clients(&self) -> Result<(), ConfigError> {
        let key = |k: &str, m: &str| ConfigError::key(ENV_PREFIX, k, m);
        let mut ids = std::collections::BTreeSet::new();
        for (i, c) in self.oauth.clients.iter().enumerate() {
            let k = |field: &str| format!("oauth.clients[{i}].{field}");
            let id_ok = (1..=64).contains(&c.id.len())
                && c.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
            if !id_ok {
                return Err(key(
                    &k("id"),
                    "must be 1-64 lowercase letters, digits, '-', '_' and '.'",
                ));
            }
            // Vended agent tokens carry this client_id: a client of the same name would let an
            // agent token pass as a sign-in token.
            if c.id == crate::tokens::CLIENT_ID {
                return Err(key(
                    &k("id"),
                    &format!(
                        "must not be {:?}: vended agent tokens carry that client_id",
                        crate::tokens::CLIENT_ID
                    ),
                ));
            }
            if c.id.starts_with(crate::registration::CLIENT_ID_PREFIX) {
                return Err(key(
                    &k("id"),
                    &format!(
                        "must not start with {:?}: dynamically registered clients have such ids",
                        crate::registration::CLIENT_ID_PREFIX
                    ),
                ));
            }
            if !ids.insert(c.id.as_str()) {
                return Err(key(&k("id"), "is used by two clients"));
            }
            if c.redirect_uris.is_empty() {
                return Err(key(
                    &k("redirect_uris"),
                    "must list at least one URL the client receives codes at",
                ));
            }
            for (j, uri) in c.redirect_uris.iter().enumerate() {
                if let Err(m) = check_redirect_uri(uri) {
                    return Err(key(&k(&format!("redirect_uris[{j}]")), &m));
                }
            }
            if c.audience.trim().is_empty() || c.audience.len() > 256 {
                return Err(key(
                    &k("audience"),
                    "must be 1-256 characters: the `aud` the client's resource (e.g. \"mcp-registry\") expects",
                ));
            }
            // A sign-in token carries the user's groups: with the gateway's audience it would
            // pass at the gateway with everything the user holds.
            if c.audience == self.tokens.audience {
                return Err(key(
                    &k("audience"),
                    "must differ from tokens.audience: a sign-in token carries the user's groups and must not be accepted by the gateway",
                ));
            }
            if !CLIENT_TOKEN_TTL.contains(&c.token_ttl_seconds) {
                return Err(key(
                    &k("token_ttl_seconds"),
                    "must be between 300 and 86400",
                ));
            }
        }
        Ok(())
    }
}

impl AuthConfig {
    fn validate_registration(&self) -> Result<(), ConfigError> {
        let key = |k: &str, m: &str| ConfigError::key(ENV_PREFIX, k, m);
        let r = &self.oauth.registration;
        for (i, scheme) in r.custom_schemes.iter().enumerate() {
            // RFC 8252 §7.1: a reverse domain name, so it names one app; never a scheme a
            // browser or the OS gives meaning to.
            let ok = scheme.contains('.')
                && scheme.len() <= 100
                && scheme.starts_with(|c: char| c.is_ascii_lowercase())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
            if !ok {
                return Err(key(
                    &format!("oauth.registration.custom_schemes[{i}]"),
                    "must be a reverse domain name in lowercase, such as com.example.app (RFC 8252 §7.1)",
                ));
            }
        }
        for (name, value, max) in [
            ("max_clients", r.max_clients, 1_000_000),
            ("registrations_per_hour", r.registrations_per_hour, 100_000),
            (
                "registrations_per_hour_per_address",
                r.registrations_per_hour_per_address,
                100_000,
            ),
            ("unused_client_days", r.unused_client_days, 3650),
        ] {
            if !(1..=max).contains(&value) {
                return Err(key(
                    &format!("oauth.registration.{name}"),
                    &format!("must be between 1 and {max}"),
                ));
            }
        }
        if r.registrations_per_hour_per_address > r.registrations_per_hour {
            return Err(key(
                "oauth.registration.registrations_per_hour_per_address",
                "must be at most oauth.registration.registrations_per_hour",
            ));
        }
        if !REGISTERED_TOKEN_TTL.contains(&r.token_ttl_seconds) {
            return Err(key(
                "oauth.registration.token_ttl_seconds",
                "must be between 5 and 86400",
            ));
        }
        let f = &self.oauth.refresh;
        if !REFRESH_LIFETIME.contains(&f.lifetime_seconds) {
            return Err(key(
                "oauth.refresh.lifetime_seconds",
                "must be between 60 and 31536000 (a year)",
            ));
        }
        if !(60..=f.lifetime_seconds).contains(&f.idle_seconds) {
            return Err(key(
                "oauth.refresh.idle_seconds",
                "must be between 60 and oauth.refresh.lifetime_seconds",
            ));
        }
        Ok(())
    }
}

/// A redirect URI a client may register: absolute http(s), no fragment, no credentials, and
/// plain http only on a loopback host (RFC 9700 §4.1, RFC 8252 §7.3).
fn check_redirect_uri(text: &str) -> Result<(), String> {
    let url = Url::parse(text).map_err(|e| {
        format!("{text:?} is not an absolute URL ({e}); give one such as https://registry.example.com/oauth/callback")
    })?;
    if url.host().is_none() || !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?} must be an http(s) URL with a host"));
    }
    if url.scheme() == "http" && !is_loopback_host(&url) {
        return Err(format!(
            "{text:?} must be https unless its host is a loopback address (local use)"
        ));
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{text:?} must have no fragment and no user information"
        ));
    }
    Ok(())
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Parses an origin (`https://host[:port]`, nothing else) into its canonical form.
pub fn parse_origin(text: &str) -> Option<String> {
    let url = Url::parse(text).ok()?;
    let bare = matches!(url.path(), "" | "/")
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_are_valid() {
        let c = AuthConfig::from_toml("").unwrap();
        assert!(c.store_url().starts_with("sqlite://"));
        assert_eq!(c.backend(), Some(Backend::Sqlite));
        assert_eq!(
            c.public_url("0.0.0.0:7870".parse().unwrap()),
            "http://127.0.0.1:7870"
        );
    }

    #[test]
    fn the_local_profile_is_valid() {
        let local = include_str!("../config/local.toml");
        let c = AuthConfig::from_toml(local).unwrap();
        assert!(!c.session.cookie_secure);
    }

    fn error_of(toml: &str) -> String {
        AuthConfig::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn cross_field_rules_name_the_key_and_env_var() {
        let err = error_of("[store]\nurl = \"mongodb://x\"");
        assert!(
            err.contains("store.url") && err.contains("MCPGW_AUTH_STORE__URL"),
            "{err}"
        );
        let err = error_of("[store]\nurl = \"postgres://db/auth\"");
        assert!(err.contains("secrets.sealing_key.secret_id"), "{err}");
        assert!(
            AuthConfig::from_toml(
                "[store]\nurl = \"postgres://db/auth\"\n[secrets.sealing_key]\nsecret_id = \"k\""
            )
            .is_ok()
        );
        let err =
            error_of("public_url = \"https://auth.example.com\"\n[session]\ncookie_secure = false");
        assert!(err.contains("MCPGW_AUTH_SESSION__COOKIE_SECURE"), "{err}");
        let err = error_of("public_url = \"http://auth.example.com\"");
        assert!(err.contains("must be https"), "{err}");
        let err = error_of("public_url = \"https://auth.example.com/sub\"");
        assert!(err.contains("no path"), "{err}");
        let err = error_of("[tokens]\ndefault_ttl_seconds = 90000");
        assert!(err.contains("tokens.default_ttl_seconds"), "{err}");
        let err = error_of("allowed_return_origins = [\"https://x.example.com/path\"]");
        assert!(err.contains("allowed_return_origins[0]"), "{err}");
        let err = error_of("[group_scopes]\nteam = [\"has space\"]");
        assert!(err.contains("group_scopes.team[0]"), "{err}");
        let err = error_of("[store.password]\nvalue = \"x\"\nfile = \"y\"");
        assert!(err.contains("only one"), "{err}");
        let err = error_of("[keys]\nrotation_period_seconds = 10");
        assert!(err.contains("keys.rotation_period_seconds"), "{err}");
        let err = error_of(
            "[[oidc.providers]]\nid = \"kc\"\nname = \"KC\"\nissuer = \"http://kc.example.com\"\nclient_id = \"c\"",
        );
        assert!(err.contains("oidc.providers[0].issuer"), "{err}");
        let err = error_of(
            "[[oidc.providers]]\nid = \"local\"\nname = \"KC\"\nissuer = \"https://kc.example.com\"\nclient_id = \"c\"",
        );
        assert!(err.contains("oidc.providers[0].id"), "{err}");
        let err = error_of("[local]\nenabled = false");
        assert!(err.contains("nobody could sign in"), "{err}");
        let err = error_of("[local]\nbootstrap_admin = \"Bad Name\"");
        assert!(err.contains("local.bootstrap_admin"), "{err}");
    }

    fn client(fields: &str) -> String {
        format!(
            "[[oauth.clients]]\nid = \"console\"\nredirect_uris = [\"https://registry.example.com/cb\"]\naudience = \"mcp-registry\"\n{fields}"
        )
    }

    #[test]
    fn oauth_clients_are_checked_key_by_key() {
        let c = AuthConfig::from_toml(&client("")).unwrap();
        let console = c.oauth_client("console").unwrap();
        assert_eq!(console.token_ttl_seconds, 28_800);
        assert!(!console.manage_tokens);
        assert!(AuthConfig::from_toml("").unwrap().oauth.clients.is_empty());
        assert_eq!(c.longest_token_ttl_seconds(), 28_800);
        let long = AuthConfig::from_toml(&client("token_ttl_seconds = 86400")).unwrap();
        assert_eq!(long.longest_token_ttl_seconds(), 86_400);

        let bad = |toml: &str, key: &str| {
            let err = error_of(toml);
            assert!(err.contains(key), "{key}: {err}");
        };
        bad(
            &client("token_ttl_seconds = 299"),
            "oauth.clients[0].token_ttl_seconds",
        );
        bad(&client("token_ttl_seconds = 86401"), "OAUTH__CLIENTS");
        bad(
            "[[oauth.clients]]\nid = \"Console\"\nredirect_uris = [\"https://r.example.com/cb\"]\naudience = \"a\"",
            "oauth.clients[0].id",
        );
        bad(
            "[[oauth.clients]]\nid = \"mcpgw-token-vending\"\nredirect_uris = [\"https://r.example.com/cb\"]\naudience = \"a\"",
            "oauth.clients[0].id",
        );
        bad(
            "[[oauth.clients]]\nid = \"c\"\nredirect_uris = []\naudience = \"a\"",
            "oauth.clients[0].redirect_uris",
        );
        for uri in [
            "http://registry.example.com/cb",
            "/cb",
            "https://registry.example.com/cb#x",
            "ftp://registry.example.com/cb",
        ] {
            bad(
                &format!(
                    "[[oauth.clients]]\nid = \"c\"\nredirect_uris = [\"https://ok.example.com/\", \"{uri}\"]\naudience = \"a\""
                ),
                "oauth.clients[0].redirect_uris[1]",
            );
        }
        assert!(
            AuthConfig::from_toml(
                "[[oauth.clients]]\nid = \"c\"\nredirect_uris = [\"http://127.0.0.1:7860/cb\", \"http://localhost/cb\"]\naudience = \"a\""
            )
            .is_ok()
        );
        bad(
            "[[oauth.clients]]\nid = \"c\"\nredirect_uris = [\"https://r.example.com/cb\"]\naudience = \"mcp-gateway\"",
            "oauth.clients[0].audience",
        );
        bad(
            &format!("{}\n{}", client(""), client("")),
            "oauth.clients[1].id",
        );
    }

    #[test]
    fn origins_are_canonical_and_bare() {
        assert_eq!(
            parse_origin("https://Registry.Example.com:443").as_deref(),
            Some("https://registry.example.com")
        );
        assert_eq!(
            parse_origin("http://127.0.0.1:7860/").as_deref(),
            Some("http://127.0.0.1:7860")
        );
        assert!(parse_origin("https://x.example.com/a").is_none());
        assert!(parse_origin("javascript:alert(1)").is_none());
        assert!(parse_origin("https://u@x.example.com").is_none());
    }
}
