//! Configuration loading shared by every mcpgw binary.
//!
//! Layers, later ones winning:
//! 1. defaults: a commented TOML file embedded in the binary (each service's `config/default.toml`);
//! 2. an optional TOML file given with `--config`;
//! 3. environment variables with the service's prefix, `__` separating nested keys
//!    (`MCPGW_REGISTRY_STORE__URL` sets `store.url`).
//!
//! Errors name both the key and the environment variable that would set it. A key that was
//! renamed ([`RENAMED`]) is refused under its old name with the new key and its variable, so an
//! upgrade fails loudly at start and in `--check-config` instead of running without the value.
//! Cross-field rules are checked by each service's `validate()` after loading. Tests build config values
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

/// Keys renamed across every service (old, new). The sealing key had two shapes under two
/// names (flat `encryption_key*` in the registry and auth-server, a `[secrets.sealing_key]`
/// table in the gateway); it is now the table everywhere.
pub const RENAMED: &[(&str, &str)] = &[
    ("secrets.encryption_key", "secrets.sealing_key.value"),
    ("secrets.encryption_key_file", "secrets.sealing_key.file"),
    (
        "secrets.encryption_key_secret_id",
        "secrets.sealing_key.secret_id",
    ),
    (
        "secrets.previous_encryption_keys",
        "secrets.previous_sealing_keys",
    ),
];

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
                if let figment::error::Kind::UnknownField(field, _) = &e.kind {
                    // figment's path already ends with the unknown field itself.
                    let old = if key.ends_with(field.as_str()) {
                        key.clone()
                    } else {
                        format!("{key}.{field}")
                    };
                    if let Some((_, new)) = RENAMED.iter().find(|(o, _)| *o == old) {
                        return format!(
                            "config key `{old}` (env {}) was renamed: use `{new}` (env {}){source}",
                            env_var_for(env_prefix, &old),
                            env_var_for(env_prefix, new)
                        );
                    }
                }
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

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialised, to see which keys are refused")]
    struct WithSecrets {
        secrets: Secrets,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialised, to see which keys are refused")]
    struct Secrets {
        #[serde(default)]
        previous_sealing_keys: Vec<String>,
    }

    #[test]
    fn an_old_sealing_key_name_is_refused_naming_the_new_key_and_its_env_var() {
        for (old, new, new_env) in [
            (
                "encryption_key = \"k\"",
                "secrets.sealing_key.value",
                "MCPGW_T_SECRETS__SEALING_KEY__VALUE",
            ),
            (
                "encryption_key_secret_id = \"k\"",
                "secrets.sealing_key.secret_id",
                "MCPGW_T_SECRETS__SEALING_KEY__SECRET_ID",
            ),
            (
                "previous_encryption_keys = []",
                "secrets.previous_sealing_keys",
                "MCPGW_T_SECRETS__PREVIOUS_SEALING_KEYS",
            ),
        ] {
            let layer = format!("[secrets]\n{old}\n");
            let err = load_from_str::<WithSecrets>("", &[&layer], "MCPGW_T_")
                .unwrap_err()
                .to_string();
            assert!(err.contains("was renamed"), "{err}");
            assert!(err.contains(new) && err.contains(new_env), "{err}");
        }
    }

    #[test]
    fn a_missing_config_file_says_what_to_do() {
        let err = load::<Sample>(DEFAULTS, Some(Path::new("/nonexistent/x.toml")), "MCPGW_T_")
            .unwrap_err()
            .to_string();
        assert!(err.contains("--config"), "{err}");
    }
}
