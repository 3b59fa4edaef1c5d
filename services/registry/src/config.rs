//! The registry's configuration: embedded defaults (`config/default.toml`), then an optional
//! file, then `MCPGW_REGISTRY_*` environment variables. See `docs/CONFIGURATION.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mcpgw_core::config::{ConfigError, load, load_from_str};
use mcpgw_core::domain::DeploymentStage;
use mcpgw_core::egress::EgressConfig;
use mcpgw_core::secrets::{SecretSource, SecretsManagerConfig};
use mcpgw_core::telemetry::LogConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub const ENV_PREFIX: &str = "MCPGW_REGISTRY_";
pub const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub stage: DeploymentStage,
    pub gateway_public_url: String,
    pub catalog_namespace: String,
    pub anonymous_catalog: bool,
    pub max_body_bytes: usize,
    pub store: StoreConfig,
    pub log: LogConfig,
    /// `[listener]`: timeouts and the connection cap of every listener.
    #[serde(default)]
    pub listener: mcpgw_core::listener::ListenerConfig,
    pub egress: EgressConfig,
    pub secrets: SecretsConfig,
    pub auth: AuthConfig,
    pub bootstrap: BootstrapConfig,
    pub demo: DemoConfig,
    pub tools: ToolsConfig,
    pub health: HealthConfig,
    pub events: EventsConfig,
    pub mcp: McpConfig,
    pub search: SearchConfig,
    pub console: ConsoleConfig,
}

/// The web console (`[console]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    pub enabled: bool,
    pub public_url: String,
    pub auth_server_url: String,
    pub auth_server_internal_url: String,
    pub client_id: String,
    pub secure_cookies: bool,
}

impl ConsoleConfig {
    /// Whether people can sign in: the console is on and knows its auth-server.
    pub fn sign_in_configured(&self) -> bool {
        self.enabled && !self.auth_server_url.is_empty()
    }

    /// Where the registry calls the auth-server.
    pub fn auth_server_backend_url(&self) -> &str {
        if self.auth_server_internal_url.is_empty() {
            &self.auth_server_url
        } else {
            &self.auth_server_internal_url
        }
    }

    fn validate(
        &self,
        issuers: &[mcpgw_core::token::IssuerConfig],
        key: &dyn Fn(&str, &str) -> ConfigError,
    ) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        let http_url = |text: &str| {
            url::Url::parse(text).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.username().is_empty()
                    && u.password().is_none()
                    && u.query().is_none()
                    && u.fragment().is_none()
            })
        };
        if !http_url(&self.public_url) {
            return Err(key(
                "console.public_url",
                "must be the http(s) URL browsers reach the registry at, such as https://registry.example.com",
            ));
        }
        if self.client_id.is_empty() || self.client_id.len() > 64 {
            return Err(key(
                "console.client_id",
                "must be 1 to 64 characters: the client id registered at the auth-server",
            ));
        }
        if self.auth_server_url.is_empty() {
            return Ok(());
        }
        if !http_url(&self.auth_server_url) {
            return Err(key(
                "console.auth_server_url",
                "must be the http(s) URL browsers reach the auth-server at, such as https://auth.example.com",
            ));
        }
        if !self.auth_server_internal_url.is_empty() && !http_url(&self.auth_server_internal_url) {
            return Err(key(
                "console.auth_server_internal_url",
                "must be an http(s) URL, such as http://auth-server:7870",
            ));
        }
        let issuer = self.auth_server_url.trim_end_matches('/');
        if !issuers
            .iter()
            .any(|i| i.issuer.trim_end_matches('/') == issuer)
        {
            return Err(key(
                "console.auth_server_url",
                &format!(
                    "the console signs people in with tokens of {issuer}, which is not a trusted issuer: add an [[auth.issuers]] entry with issuer = \"{issuer}/\" and the audience the auth-server gives the console client"
                ),
            ));
        }
        Ok(())
    }
}

/// Search (`[search]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    pub embeddings: EmbeddingsConfig,
}

/// Where search's optional semantic leg gets its embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingsProvider {
    /// Lexical search only.
    None,
    /// `POST {base_url}/embeddings` as the OpenAI embeddings API defines it (OpenAI, LiteLLM,
    /// Ollama's `/v1`, Hugging Face TEI, gateways in front of Azure or Bedrock).
    OpenaiCompatible,
}

/// `[search.embeddings]`; see `docs/CONFIGURATION.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsConfig {
    pub provider: EmbeddingsProvider,
    pub base_url: String,
    pub model: String,
    /// At most one of the three; none for providers without authentication.
    pub api_key: SecretString,
    pub api_key_file: String,
    pub api_key_secret_id: String,
    pub dimensions: usize,
    pub batch_size: usize,
    pub timeout_ms: u64,
    pub query_timeout_ms: u64,
}

/// Limits of `[search.embeddings]`.
pub const MAX_EMBEDDING_DIMENSIONS: usize = 8192;
pub const MAX_EMBEDDING_BATCH: usize = 2048;

/// The registry's own MCP server at `/mcp` (`[mcp]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// Serve `/mcp`.
    pub enabled: bool,
    /// At start, ensure a server record for `/mcp` so gateways route it.
    pub register: bool,
    /// The path of that record.
    pub path: String,
    /// The URL gateways reach `/mcp` at; empty = `http://<listen>/mcp`.
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsConfig {
    /// What gateways do with tools changed since their approval, for servers that do not set
    /// `gateway.tool_integrity` themselves.
    pub integrity_mode: mcpgw_core::domain::IntegrityMode,
}

/// Defined in core with the SQLite pool setup they configure.
pub use mcpgw_core::sqlite::SqliteSync;

/// `[store]`: `url` is `sqlite://PATH` (empty = `<data_dir>/registry.db`), or `mongodb://…` /
/// `mongodb+srv://…`; `pool_size` counts SQLite read connections / is MongoDB's pool size
/// factor.
pub type StoreConfig = mcpgw_core::sqlite::StoreConfig<RegistryStoreConfig>;

/// The registry's own `[store]` keys.
#[derive(Debug, Clone, Deserialize)]
pub struct RegistryStoreConfig {
    /// MongoDB database name; default `mcpgw_registry`.
    pub mongo_database: String,
    pub mongo_server_selection_timeout_ms: u64,
    pub catalog_cache_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// The key that seals upstream credentials (`[secrets.sealing_key]`, the gateway opens
    /// them with the same key).
    pub sealing_key: SecretSource,
    /// Keys replaced by a rotation: they still open, never seal.
    pub previous_sealing_keys: Vec<SecretString>,
    pub aws: SecretsManagerConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub issuers: Vec<mcpgw_core::token::IssuerConfig>,
    pub policy_cache_seconds: u64,
    pub api_key_cache_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapConfig {
    pub admin_key_file: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
}

/// Health checks of registered servers (`[health]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub enabled: bool,
    pub interval_seconds: u32,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub degraded_ms: u64,
    pub concurrency: usize,
    pub spread_ms: u64,
    pub damping: u32,
    pub history: usize,
    pub discover_tools: bool,
    /// Most servers watched for `notifications/tools/list_changed` (0: none).
    pub list_changed_watchers: usize,
}

/// `GET /api/v1/events` (`[events]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    pub max_streams: usize,
    pub keep_alive_seconds: u64,
}

impl RegistryConfig {
    /// Loads defaults, the optional file and the environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let config: Self = load(DEFAULTS, file, ENV_PREFIX)?;
        config.validate()?;
        Ok(config)
    }

    /// Defaults plus TOML text; no environment. For tests.
    pub fn from_toml(overrides: &str) -> Result<Self, ConfigError> {
        Self::from_toml_layers(&[overrides])
    }

    /// Defaults plus layers of TOML text, later layers winning; no environment. For tests.
    pub fn from_toml_layers(layers: &[&str]) -> Result<Self, ConfigError> {
        let config: Self = load_from_str(DEFAULTS, layers, ENV_PREFIX)?;
        config.validate()?;
        Ok(config)
    }

    /// The store URL, defaulting to a SQLite file in the data directory.
    pub fn store_url(&self) -> String {
        if self.store.url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("registry.db").display())
        } else {
            self.store.url.clone()
        }
    }

    /// Cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let key = |k: &str, m: &str| ConfigError::key(ENV_PREFIX, k, m);
        if let Err((k, m)) = self.listener.validate() {
            return Err(key(&format!("listener.{k}"), m));
        }
        let url = self.store_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("mongodb://")
            || url.starts_with("mongodb+srv://"))
        {
            return Err(key(
                "store.url",
                "must start with sqlite:, mongodb:// or mongodb+srv://",
            ));
        }
        if self.store.pool_size == 0 || self.store.pool_size > 256 {
            return Err(key("store.pool_size", "must be between 1 and 256"));
        }
        if self.store.backend.mongo_database.is_empty() {
            return Err(key("store.mongo_database", "must not be empty"));
        }
        if self.listen == self.metrics_listen && self.listen.port() != 0 {
            return Err(key(
                "metrics_listen",
                "must differ from listen: metrics are served on their own port",
            ));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err(key("max_body_bytes", "must be between 1024 and 67108864"));
        }
        match url::Url::parse(&self.gateway_public_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(key(
                    "gateway_public_url",
                    "must be an http(s) URL such as https://gateway.example.com",
                ));
            }
        }
        if self.mcp.register {
            if !self.mcp.enabled {
                return Err(key("mcp.register", "needs mcp.enabled = true"));
            }
            if let Err(m) = mcpgw_core::domain::ServerPath::parse(&self.mcp.path) {
                return Err(key("mcp.path", &m));
            }
            if !self.mcp.url.is_empty()
                && !url::Url::parse(&self.mcp.url).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https") && u.path().ends_with("/mcp")
                })
            {
                return Err(key(
                    "mcp.url",
                    "must be an http(s) URL ending in /mcp, such as http://registry:7860/mcp",
                ));
            }
        }
        let ns = &self.catalog_namespace;
        if ns.is_empty()
            || ns.len() > 100
            || !ns
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(key(
                "catalog_namespace",
                "must be reverse-DNS style: letters, digits, '.' and '-'",
            ));
        }
        if let Err(e) = self.secrets.sealing_key.check() {
            return Err(key("secrets.sealing_key", &e));
        }
        if !self.secrets.sealing_key.is_configured() && !url.starts_with("sqlite:") {
            return Err(key(
                "secrets.sealing_key.secret_id",
                "a shared store (MongoDB/DocumentDB) needs one credential-sealing key for every replica: \
                 set secrets.sealing_key.secret_id (AWS Secrets Manager), .value or .file; only the \
                 embedded SQLite default generates a local key",
            ));
        }
        self.console.validate(&self.auth.issuers, &key)?;
        if self.demo.enabled && self.demo.listen == self.listen && self.listen.port() != 0 {
            return Err(key("demo.listen", "must differ from listen"));
        }
        if self.auth.policy_cache_seconds > 3600 {
            return Err(key("auth.policy_cache_seconds", "must be at most 3600"));
        }
        if self.auth.api_key_cache_seconds > 300 {
            return Err(key(
                "auth.api_key_cache_seconds",
                "must be at most 300 (it delays revocations made through other replicas)",
            ));
        }
        if let Err(e) =
            mcpgw_core::token::TokenValidator::new(self.auth.issuers.clone(), Default::default())
        {
            return Err(key("auth.issuers", &e.to_string()));
        }
        let h = &self.health;
        let interval =
            mcpgw_core::domain::HEALTH_INTERVAL_MIN..=mcpgw_core::domain::HEALTH_INTERVAL_MAX;
        if !interval.contains(&h.interval_seconds) {
            return Err(key(
                "health.interval_seconds",
                "must be between 5 and 86400",
            ));
        }
        if !(100..=60_000).contains(&h.timeout_ms) {
            return Err(key("health.timeout_ms", "must be between 100 and 60000"));
        }
        if h.connect_timeout_ms == 0 || h.connect_timeout_ms > h.timeout_ms {
            return Err(key(
                "health.connect_timeout_ms",
                "must be at least 1 and at most health.timeout_ms",
            ));
        }
        if h.degraded_ms == 0 || h.degraded_ms >= h.timeout_ms {
            return Err(key(
                "health.degraded_ms",
                "must be at least 1 and below health.timeout_ms",
            ));
        }
        if !(1..=2000).contains(&h.concurrency) {
            return Err(key("health.concurrency", "must be between 1 and 2000"));
        }
        if h.spread_ms > 60_000 {
            return Err(key("health.spread_ms", "must be at most 60000"));
        }
        if !(1..=20).contains(&h.damping) {
            return Err(key("health.damping", "must be between 1 and 20"));
        }
        if !(1..=100).contains(&h.history) {
            return Err(key("health.history", "must be between 1 and 100"));
        }
        if h.list_changed_watchers > 10_000 {
            return Err(key("health.list_changed_watchers", "must be at most 10000"));
        }
        if !(1..=10_000).contains(&self.events.max_streams) {
            return Err(key("events.max_streams", "must be between 1 and 10000"));
        }
        if !(1..=300).contains(&self.events.keep_alive_seconds) {
            return Err(key(
                "events.keep_alive_seconds",
                "must be between 1 and 300",
            ));
        }
        self.search.embeddings.validate(&key)?;
        if self.demo.enabled && !self.egress.allow_loopback {
            return Err(key(
                "demo.enabled",
                "the demo server is registered at a loopback URL, which needs egress.allow_loopback = true",
            ));
        }
        Ok(())
    }
}

impl EmbeddingsConfig {
    /// The rules of `[search.embeddings]` (reachability and the egress policy are checked at
    /// start, see `embeddings.rs`).
    fn validate(&self, key: &dyn Fn(&str, &str) -> ConfigError) -> Result<(), ConfigError> {
        if self.provider == EmbeddingsProvider::None {
            return Ok(());
        }
        let base_url = url::Url::parse(&self.base_url);
        let ok = base_url.as_ref().is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.username().is_empty()
                && u.password().is_none()
                && u.query().is_none()
        });
        if !ok || self.base_url.len() > 2048 {
            return Err(key(
                "search.embeddings.base_url",
                "must be an http(s) URL without credentials or query, at most 2048 characters, \
                 such as https://api.openai.com/v1 (the provider's /embeddings is appended)",
            ));
        }
        if self.model.trim().is_empty() || self.model.len() > 256 {
            return Err(key(
                "search.embeddings.model",
                "must name the embedding model (1-256 characters), such as text-embedding-3-small",
            ));
        }
        if !(1..=MAX_EMBEDDING_DIMENSIONS).contains(&self.dimensions) {
            return Err(key(
                "search.embeddings.dimensions",
                "must be the model's vector length, between 1 and 8192 (every answer is checked against it)",
            ));
        }
        if !(1..=MAX_EMBEDDING_BATCH).contains(&self.batch_size) {
            return Err(key(
                "search.embeddings.batch_size",
                "must be between 1 and 2048",
            ));
        }
        if !(100..=120_000).contains(&self.timeout_ms) {
            return Err(key(
                "search.embeddings.timeout_ms",
                "must be between 100 and 120000",
            ));
        }
        if self.query_timeout_ms < 10 || self.query_timeout_ms > self.timeout_ms {
            return Err(key(
                "search.embeddings.query_timeout_ms",
                "must be at least 10 and at most search.embeddings.timeout_ms",
            ));
        }
        let sources = [
            !self.api_key.expose_secret().is_empty(),
            !self.api_key_file.is_empty(),
            !self.api_key_secret_id.is_empty(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(key(
                "search.embeddings.api_key",
                "give at most one of api_key, api_key_file and api_key_secret_id",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_are_valid() {
        let c = RegistryConfig::from_toml("").unwrap();
        assert!(c.store_url().starts_with("sqlite://"));
        assert_eq!(c.stage, DeploymentStage::NonProduction);
    }

    #[test]
    fn console_settings_are_checked_key_by_key() {
        let err_of = |toml: &str| RegistryConfig::from_toml(toml).unwrap_err().to_string();
        // Sign-in through an auth-server whose tokens the registry would not accept.
        let err = err_of("[console]\nauth_server_url = \"https://auth.example.com\"");
        assert!(
            err.contains("console.auth_server_url") && err.contains("[[auth.issuers]]"),
            "{err}"
        );
        let err = err_of("[console]\npublic_url = \"registry.example.com\"");
        assert!(err.contains("console.public_url"), "{err}");
        let err = err_of("[console]\nclient_id = \"\"");
        assert!(err.contains("console.client_id"), "{err}");
        let err = err_of(
            "[[auth.issuers]]\nissuer = \"https://auth.example.com/\"\naudiences = [\"r\"]\n\
             [console]\nauth_server_url = \"https://auth.example.com\"\nauth_server_internal_url = \"ftp://x\"",
        );
        assert!(err.contains("console.auth_server_internal_url"), "{err}");
        // A trusted issuer, with or without the trailing slash, is accepted.
        let ok = RegistryConfig::from_toml(
            "[[auth.issuers]]\nissuer = \"https://auth.example.com/\"\naudiences = [\"r\"]\n\
             [console]\nauth_server_url = \"https://auth.example.com\"",
        )
        .unwrap();
        assert!(ok.console.sign_in_configured());
        // Turned off, nothing else is checked.
        let off =
            RegistryConfig::from_toml("[console]\nenabled = false\npublic_url = \"x\"").unwrap();
        assert!(!off.console.sign_in_configured());
    }

    #[test]
    fn cross_field_rules_name_the_key_and_env_var() {
        let err = RegistryConfig::from_toml("[store]\nurl = \"postgres://x\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("store.url") && err.contains("MCPGW_REGISTRY_STORE__URL"),
            "{err}"
        );
        let err = RegistryConfig::from_toml("[secrets.sealing_key]\nvalue = \"a\"\nfile = \"b\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("only one"), "{err}");
        let err = RegistryConfig::from_toml("stage = \"prod\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("stage"), "{err}");
        let err = RegistryConfig::from_toml("[store]\nurl = \"mongodb://db:27017\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("secrets.sealing_key.secret_id"), "{err}");
        assert!(
            RegistryConfig::from_toml(
                "[store]\nurl = \"mongodb://db:27017\"\n[secrets.sealing_key]\nsecret_id = \"k\""
            )
            .is_ok()
        );
        let err = RegistryConfig::from_toml("[demo]\nenabled = true")
            .unwrap_err()
            .to_string();
        assert!(err.contains("allow_loopback"), "{err}");
    }

    #[test]
    fn embeddings_settings_are_checked_naming_the_key() {
        let on = "[search.embeddings]\nprovider = \"openai_compatible\"\n";
        let good = format!(
            "{on}base_url = \"https://api.openai.com/v1\"\nmodel = \"m\"\ndimensions = 8\n"
        );
        assert!(RegistryConfig::from_toml(&good).is_ok());
        // Off by default, and then nothing else is required.
        let c = RegistryConfig::from_toml("").unwrap();
        assert_eq!(c.search.embeddings.provider, EmbeddingsProvider::None);
        for (bad, named) in [
            (on.to_owned(), "search.embeddings.base_url"),
            (
                good.replace("https://api.openai.com/v1", "https://u:p@h/v1"),
                "search.embeddings.base_url",
            ),
            (
                good.replace("model = \"m\"", "model = \"\""),
                "search.embeddings.model",
            ),
            (
                good.replace("dimensions = 8", "dimensions = 0"),
                "search.embeddings.dimensions",
            ),
            (
                format!("{good}batch_size = 0\n"),
                "search.embeddings.batch_size",
            ),
            (
                format!("{good}timeout_ms = 5\n"),
                "search.embeddings.timeout_ms",
            ),
            (
                format!("{good}query_timeout_ms = 999999\n"),
                "search.embeddings.query_timeout_ms",
            ),
            (
                format!("{good}api_key = \"k\"\napi_key_file = \"/f\"\n"),
                "search.embeddings.api_key",
            ),
            (
                "[search.embeddings]\nprovider = \"magic\"\n".to_owned(),
                "provider",
            ),
        ] {
            let err = RegistryConfig::from_toml(&bad).unwrap_err().to_string();
            assert!(err.contains(named), "{bad}: {err}");
        }
    }
}
