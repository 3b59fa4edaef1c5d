//! The gateway's configuration: embedded defaults (`config/default.toml`), then an optional
//! file, then `MCPGW_GATEWAY_*` environment variables. See `docs/CONFIGURATION.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcpgw_core::config::{ConfigError, load, load_from_str};
use mcpgw_core::egress::EgressConfig;
use mcpgw_core::secrets::{SecretSource, SecretsManagerConfig};
use mcpgw_core::telemetry::LogConfig;
use mcpgw_core::token::IssuerConfig;
use serde::Deserialize;

pub const ENV_PREFIX: &str = "MCPGW_GATEWAY_";
pub const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub public_url: String,
    pub instance_id: String,
    pub max_body_bytes: usize,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub registry: RegistrySource,
    pub sync: SyncConfig,
    pub auth: AuthConfig,
    pub secrets: SecretsConfig,
    pub upstream: UpstreamConfig,
    pub stdio: StdioConfig,
    pub limits: LimitsConfig,
    pub audit: AuditConfig,
    pub egress: EgressConfig,
    pub log: LogConfig,
    /// `[listener]`: timeouts and the connection cap of every listener.
    #[serde(default)]
    pub listener: mcpgw_core::listener::ListenerConfig,
    pub aggregate: AggregateConfig,
}

/// The aggregated endpoint `/mcp` (see `aggregate/mod.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    /// What `tools/list` holds unless the request says `?mode=`.
    pub mode: crate::aggregate::Mode,
    /// Exposed names (`server__tool`) listed directly in progressive mode.
    pub always_on: Vec<String>,
    /// Most tools one `discover_tools` returns.
    pub max_results: usize,
}

/// Always-on tools, at most (each costs every session its definition).
pub const MAX_ALWAYS_ON: usize = 50;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySource {
    pub url: String,
    pub api_key: SecretSource,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    pub poll_wait_seconds: u64,
    pub retry_seconds: u64,
    pub snapshot_file: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub issuers: Vec<IssuerConfig>,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub token_cache_entries: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    pub sealing_key: SecretSource,
    pub previous_sealing_keys: Vec<secrecy::SecretString>,
    pub session_key: SecretSource,
    pub aws: SecretsManagerConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub connect_timeout_ms: u64,
    pub first_byte_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub max_concurrency: u32,
    pub max_result_bytes: u32,
    pub max_message_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdioConfig {
    pub restart_min_ms: u64,
    pub restart_max_ms: u64,
    pub start_timeout_ms: u64,
    /// Seconds between health probes of the stdio children (0 = no probes, no reports).
    pub health_interval_seconds: u64,
    /// Milliseconds a probe's `ping` may take.
    pub health_timeout_ms: u64,
    /// A `ping` answered slower than this many milliseconds is `degraded`.
    pub health_degraded_ms: u64,
    /// Commands a stdio server may run: bare names (looked up in `path`) or absolute paths,
    /// compared after symlinks are resolved (see `stdio_sandbox.rs`). Empty with empty
    /// `allowed_dirs` = no stdio server is started.
    pub allowed_commands: Vec<String>,
    /// Directories whose programs (after symlinks are resolved) a stdio server may run.
    pub allowed_dirs: Vec<PathBuf>,
    /// The children's `PATH`, and where bare command names are looked up.
    pub path: String,
    /// Where each child gets its own directory (`<work_dir>/<server>`, mode 0700, its HOME
    /// and TMPDIR); empty = `<data_dir>/stdio`.
    pub work_dir: String,
    /// The user and group children run as when the gateway may switch users (root or
    /// CAP_SETUID + CAP_SETGID). Never 0.
    pub run_as_uid: u32,
    pub run_as_gid: u32,
    /// Children run as the gateway's own user even when it could switch (even as root). For
    /// tests whose interpreters only root may run; never in production.
    pub run_as_gateway_user: bool,
    /// Resource limits of each child (0 = not limited): writable memory (RLIMIT_DATA),
    /// processes and threads of its user (RLIMIT_NPROC), open files, CPU seconds.
    pub max_data_bytes: u64,
    pub max_processes: u64,
    pub max_open_files: u64,
    pub max_cpu_seconds: u64,
    /// The program that applies the sandbox and starts the command (`gateway stdio-exec`);
    /// empty = the running executable.
    pub exec_helper: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub streams_per_caller: u32,
    pub calls_per_minute: u32,
    pub tool_calls_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    pub batch_size: usize,
    pub flush_ms: u64,
    pub queue_capacity: usize,
}

impl UpstreamConfig {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub fn first_byte_timeout(&self) -> Duration {
        Duration::from_millis(self.first_byte_timeout_ms)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

impl GatewayConfig {
    /// Loads defaults, the optional file and the environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let config: Self = load(DEFAULTS, file, ENV_PREFIX)?;
        config.validate()?;
        Ok(config.with_resource_audiences())
    }

    /// Every issuer's tokens may also name this gateway's own MCP endpoints as their audience
    /// (RFC 8707 `resource`): `<public_url>/mcp` for every route, `<public_url>/<server>/mcp`
    /// for that route only (checked per request in `proxy::entry`).
    fn with_resource_audiences(mut self) -> Self {
        let base = self.public_base().to_owned();
        for issuer in &mut self.auth.issuers {
            issuer.resource_base = Some(base.clone());
        }
        self
    }

    /// Defaults plus layers of TOML text, later layers winning; no environment. For tests.
    pub fn from_toml_layers(layers: &[&str]) -> Result<Self, ConfigError> {
        let config: Self = load_from_str(DEFAULTS, layers, ENV_PREFIX)?;
        config.validate()?;
        Ok(config.with_resource_audiences())
    }

    pub fn snapshot_file(&self) -> PathBuf {
        if self.sync.snapshot_file.is_empty() {
            self.data_dir.join("snapshot.json")
        } else {
            PathBuf::from(&self.sync.snapshot_file)
        }
    }

    /// The public URL without a trailing slash.
    pub fn public_base(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    pub fn instance(&self) -> String {
        if !self.instance_id.is_empty() {
            return self.instance_id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "gateway".to_owned());
        format!("{host}-{}", std::process::id())
    }

    /// Cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let key = |k: &str, m: &str| ConfigError::key(ENV_PREFIX, k, m);
        if let Err((k, m)) = self.listener.validate() {
            return Err(key(&format!("listener.{k}"), m));
        }
        if self.listen == self.metrics_listen && self.listen.port() != 0 {
            return Err(key(
                "metrics_listen",
                "must differ from listen: metrics are served on their own port",
            ));
        }
        match url::Url::parse(&self.public_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            _ => {
                return Err(key(
                    "public_url",
                    "must be an http(s) URL such as https://gateway.example.com",
                ));
            }
        }
        match url::Url::parse(&self.registry.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(key(
                    "registry.url",
                    "must be an http(s) URL such as http://registry:7860",
                ));
            }
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err(key("max_body_bytes", "must be between 1024 and 67108864"));
        }
        if !(1..=60).contains(&self.sync.poll_wait_seconds) {
            return Err(key("sync.poll_wait_seconds", "must be between 1 and 60"));
        }
        if !(1..=300).contains(&self.sync.retry_seconds) {
            return Err(key("sync.retry_seconds", "must be between 1 and 300"));
        }
        for (name, source) in [
            ("registry.api_key", &self.registry.api_key),
            ("secrets.sealing_key", &self.secrets.sealing_key),
            ("secrets.session_key", &self.secrets.session_key),
        ] {
            if let Err(e) = source.check() {
                return Err(key(name, &e));
            }
        }
        if let Err(e) =
            mcpgw_core::token::TokenValidator::new(self.auth.issuers.clone(), Default::default())
        {
            return Err(key("auth.issuers", &e.to_string()));
        }
        let u = &self.upstream;
        for (name, v) in [
            ("upstream.connect_timeout_ms", u.connect_timeout_ms),
            ("upstream.first_byte_timeout_ms", u.first_byte_timeout_ms),
            ("upstream.idle_timeout_ms", u.idle_timeout_ms),
        ] {
            if !(10..=3_600_000).contains(&v) {
                return Err(key(name, "must be between 10 and 3600000 milliseconds"));
            }
        }
        if u.max_concurrency == 0 {
            return Err(key("upstream.max_concurrency", "must be at least 1"));
        }
        if u.max_result_bytes < 1024 {
            return Err(key("upstream.max_result_bytes", "must be at least 1024"));
        }
        if u.max_message_bytes < 65_536 {
            return Err(key("upstream.max_message_bytes", "must be at least 65536"));
        }
        if self.stdio.restart_min_ms == 0 || self.stdio.restart_min_ms > self.stdio.restart_max_ms {
            return Err(key(
                "stdio.restart_min_ms",
                "must be at least 1 and at most stdio.restart_max_ms",
            ));
        }
        if self.limits.streams_per_caller == 0 {
            return Err(key("limits.streams_per_caller", "must be at least 1"));
        }
        if self.audit.batch_size == 0
            || self.audit.batch_size > mcpgw_core::gateway_sync::MAX_AUDIT_BATCH
        {
            return Err(key("audit.batch_size", "must be between 1 and 1000"));
        }
        if self.audit.flush_ms < 10 {
            return Err(key("audit.flush_ms", "must be at least 10"));
        }
        if self.stdio.start_timeout_ms < 100 {
            return Err(key("stdio.start_timeout_ms", "must be at least 100"));
        }
        if self.stdio.health_interval_seconds > 86_400 {
            return Err(key(
                "stdio.health_interval_seconds",
                "must be at most 86400 (a day); 0 turns probes off",
            ));
        }
        if !(10..=60_000).contains(&self.stdio.health_timeout_ms) {
            return Err(key(
                "stdio.health_timeout_ms",
                "must be between 10 and 60000",
            ));
        }
        if self.stdio.health_degraded_ms > self.stdio.health_timeout_ms {
            return Err(key(
                "stdio.health_degraded_ms",
                "must be at most stdio.health_timeout_ms",
            ));
        }
        if let Err((k, m)) = crate::stdio_sandbox::check_config(&self.stdio) {
            return Err(key(k, &m));
        }
        if self.audit.queue_capacity < self.audit.batch_size {
            return Err(key(
                "audit.queue_capacity",
                "must be at least audit.batch_size",
            ));
        }
        let a = &self.aggregate;
        if !(1..=50).contains(&a.max_results) {
            return Err(key("aggregate.max_results", "must be between 1 and 50"));
        }
        if a.always_on.len() > MAX_ALWAYS_ON {
            return Err(key("aggregate.always_on", "must name at most 50 tools"));
        }
        if let Some(bad) = a.always_on.iter().find(|n| {
            n.len() > crate::aggregate::MAX_NAME_CHARS
                || !n
                    .split_once(crate::aggregate::SEPARATOR)
                    .is_some_and(|(s, t)| !s.is_empty() && !t.is_empty())
        }) {
            return Err(key(
                "aggregate.always_on",
                &format!(
                    "{bad:?} is not an exposed tool name: server__tool (at most 256 characters)"
                ),
            ));
        }
        if self.auth.token_cache_entries > 1_000_000 {
            return Err(key("auth.token_cache_entries", "must be at most 1000000"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_bad_values_name_their_key() {
        let c = GatewayConfig::from_toml_layers(&[]).unwrap();
        assert_eq!(
            c.snapshot_file(),
            PathBuf::from("./data/gateway/snapshot.json")
        );
        let e = GatewayConfig::from_toml_layers(&["public_url = \"ftp://x\""]).unwrap_err();
        assert!(e.to_string().contains("public_url"), "{e}");
        let e = GatewayConfig::from_toml_layers(&["[sync]\npoll_wait_seconds = 0"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("MCPGW_GATEWAY_SYNC__POLL_WAIT_SECONDS"),
            "{e}"
        );
        let e =
            GatewayConfig::from_toml_layers(&["[registry.api_key]\nvalue = \"a\"\nfile = \"b\""])
                .unwrap_err();
        assert!(e.to_string().contains("registry.api_key"), "{e}");
        let e = GatewayConfig::from_toml_layers(&["nope = 1"]).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
