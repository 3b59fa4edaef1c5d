//! Configuration loading shared by every mcpgw binary.
//!
//! Layers, later ones winning:
//! 1. defaults: a commented TOML file embedded in the binary (each service's `config/default.toml`);
//! 2. an optional TOML file given with `--config`;
//! 3. environment variables with the service's prefix, `__` separating nested keys
//!    (`MCPGW_REGISTRY_STORE__URL` sets `store.url`).
//!
//! Errors name both the key and the environment variable that would set it. Cross-field rules
//! are checked by each service's `validate()` after loading. Tests build config values
//! directly; nothing here reads the process environment except [`load`].

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::de::DeserializeOwned;

/// A configuration problem, worded for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// An error about one key, naming its environment variable too.
    pub fn key(env_prefix: &str, key: &str, message: impl std::fmt::Display) -> Self {
        Self(format!(
            "config key `{key}` (env {}): {message}",
            env_var_for(env_prefix, key)
        ))
    }
}

/// The environment variable that sets `key` (`store.url` → `MCPGW_REGISTRY_STORE__URL`).
pub fn env_var_for(env_prefix: &str, key: &str) -> String {
    format!("{env_prefix}{}", key.replace('.', "__").to_uppercase())
}

/// Loads `T` from the embedded defaults, an optional file and the environment.
pub fn load<T: DeserializeOwned>(
    defaults_toml: &str,
    file: Option<&Path>,
    env_prefix: &str,
) -> Result<T, ConfigError> {
    let mut figment = Figment::new().merge(Toml::string(defaults_toml));
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError(format!(
                "config file {} does not exist or is not a file; pass an existing TOML file to --config",
                path.display()
            )));
        }
        figment = figment.merge(Toml::file(path));
    }
    // `<PREFIX>CONFIG` names the config file itself (read by the command line), not a key.
    figment = figment.merge(Env::prefixed(env_prefix).split("__").ignore(&["config"]));
    extract(figment, env_prefix)
}

/// Loads `T` from the embedded defaults plus layers of TOML text (later layers win), ignoring
/// the environment. For tests, which pass config in and never set environment variables.
pub fn load_from_str<T: DeserializeOwned>(
    defaults_toml: &str,
    layers: &[&str],
    env_prefix: &str,
) -> Result<T, ConfigError> {
    let mut figment = Figment::new().merge(Toml::string(defaults_toml));
    for layer in layers {
        figment = figment.merge(Toml::string(layer));
    }
    extract(figment, env_prefix)
}

fn extract<T: DeserializeOwned>(figment: Figment, env_prefix: &str) -> Result<T, ConfigError> {
    figment.extract::<T>().map_err(|errors| {
        let lines: Vec<String> = errors
            .into_iter()
            .map(|e| {
                let key = e.path.join(".");
                let source = e
                    .metadata
                    .as_ref()
                    .map(|m| format!(" (from {})", m.name))
                    .unwrap_or_default();
                if key.is_empty() {
                    format!("{}{source}", e.kind)
                } else {
                    format!(
                        "config key `{key}` (env {}): {}{source}",
                        env_var_for(env_prefix, &key),
                        e.kind
                    )
                }
            })
            .collect();
        ConfigError(lines.join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        listen: String,
        store: Store,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Store {
        pool_size: u32,
    }

    const DEFAULTS: &str = "listen = \"127.0.0.1:1\"\n[store]\npool_size = 4\n";

    #[test]
    fn overrides_win_over_defaults() {
        let s: Sample = load_from_str(DEFAULTS, &["[store]\npool_size = 9\n"], "MCPGW_T_").unwrap();
        assert_eq!(s.store.pool_size, 9);
        assert_eq!(s.listen, "127.0.0.1:1");
    }

    #[test]
    fn a_bad_value_names_the_key_and_the_env_var() {
        let err =
            load_from_str::<Sample>(DEFAULTS, &["[store]\npool_size = \"many\"\n"], "MCPGW_T_")
                .unwrap_err()
                .to_string();
        assert!(err.contains("`store.pool_size`"), "{err}");
        assert!(err.contains("MCPGW_T_STORE__POOL_SIZE"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let err = load_from_str::<Sample>(DEFAULTS, &["[store]\npool_sise = 3\n"], "MCPGW_T_")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pool_sise"), "{err}");
    }

    #[test]
    fn a_missing_config_file_says_what_to_do() {
        let err = load::<Sample>(DEFAULTS, Some(Path::new("/nonexistent/x.toml")), "MCPGW_T_")
            .unwrap_err()
            .to_string();
        assert!(err.contains("--config"), "{err}");
    }
}
