//! Where the deployment is: from `terraform output -json`, overridden by flags and
//! environment variables. Checked before anything else runs, without touching the network.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use url::Url;

use crate::error::{Result, SetupError};

/// Whether dev-only objects (test users with known passwords) belong in this deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Dev,
    Prod,
}

impl Environment {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "dev" | "development" | "local" | "test" => Some(Self::Dev),
            "prod" | "production" | "staging" => Some(Self::Prod),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Prod => "prod",
        }
    }
}

/// Values as given, before checking: each may come from a flag (or its environment
/// variable) or from a Terraform output of the same name.
#[derive(Debug, Clone, Default)]
pub struct RawInputs {
    pub values: BTreeMap<&'static str, String>,
}

/// The Terraform output names this program reads (also the flag names, with `-` for `_`).
pub mod output {
    pub const ENVIRONMENT: &str = "environment";
    pub const AWS_REGION: &str = "aws_region";
    pub const KEYCLOAK_URL: &str = "keycloak_url";
    pub const KEYCLOAK_ADMIN_SECRET_ID: &str = "keycloak_admin_secret_id";
    pub const REGISTRY_URL: &str = "registry_url";
    pub const GATEWAY_URL: &str = "gateway_url";
    pub const AUTH_SERVER_URL: &str = "auth_server_url";
    pub const DOCUMENTDB_ENDPOINT: &str = "documentdb_endpoint";
    pub const DOCUMENTDB_SECRET_ID: &str = "documentdb_secret_id";
    pub const DOCUMENTDB_DATABASE: &str = "documentdb_database";
    pub const AURORA_ENDPOINT: &str = "aurora_endpoint";
    pub const AURORA_SECRET_ID: &str = "aurora_secret_id";
    pub const AURORA_DATABASE: &str = "aurora_database";
    pub const SECRET_PREFIX: &str = "secret_prefix";

    /// Every name above, for checking a Terraform outputs file.
    pub const ALL: &[&str] = &[
        ENVIRONMENT,
        AWS_REGION,
        KEYCLOAK_URL,
        KEYCLOAK_ADMIN_SECRET_ID,
        REGISTRY_URL,
        GATEWAY_URL,
        AUTH_SERVER_URL,
        DOCUMENTDB_ENDPOINT,
        DOCUMENTDB_SECRET_ID,
        DOCUMENTDB_DATABASE,
        AURORA_ENDPOINT,
        AURORA_SECRET_ID,
        AURORA_DATABASE,
        SECRET_PREFIX,
    ];
}

impl RawInputs {
    /// Reads `terraform output -json` (an object of `{"value": …, "type": …, "sensitive": …}`).
    /// Outputs this program does not read are ignored; those it reads must be strings
    /// (or numbers).
    pub fn from_terraform_outputs(text: &str, origin: &str) -> Result<Self> {
        let top: Value = serde_json::from_str(text).map_err(|e| {
            SetupError::input(format!(
                "{origin} is not JSON ({e}); expected the output of `terraform output -json`"
            ))
        })?;
        let Value::Object(entries) = top else {
            return Err(SetupError::input(format!(
                "{origin} is not a JSON object; expected the output of `terraform output -json`"
            )));
        };
        let mut raw = Self::default();
        for name in output::ALL {
            let Some(entry) = entries.get(*name) else {
                continue;
            };
            let value = entry.get("value").ok_or_else(|| {
                SetupError::input(format!(
                    "{origin}: output {name:?} has no \"value\"; expected the output of `terraform output -json`"
                ))
            })?;
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Null => continue,
                other => {
                    return Err(SetupError::input(format!(
                        "{origin}: output {name:?} must be a string, not {other}"
                    )));
                }
            };
            if !text.is_empty() {
                raw.values.insert(name, text);
            }
        }
        Ok(raw)
    }

    pub fn from_terraform_file(path: &Path) -> Result<Self> {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(path)
        }
        .map_err(|e| {
            SetupError::input(format!(
                "cannot read the Terraform outputs file {}: {e}",
                path.display()
            ))
            .with_hint("write it with `terraform output -json > outputs.json` in the deployment's Terraform directory")
        })?;
        Self::from_terraform_outputs(&text, &path.display().to_string())
    }

    /// Values in `over` replace those here (flags over Terraform outputs).
    pub fn overlay(mut self, over: RawInputs) -> Self {
        self.values.extend(over.values);
        self
    }

    pub fn set(&mut self, name: &'static str, value: Option<String>) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.values.insert(name, v);
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// A database to connect to: a full URL, or an endpoint whose credentials are in a secret.
#[derive(Debug, Clone)]
pub enum DatabaseTarget {
    Url(SecretString),
    /// `host[:port]` and the id of a secret holding `{"username": …, "password": …}` (the
    /// format of RDS and DocumentDB managed master-user secrets).
    Endpoint {
        endpoint: String,
        secret_id: String,
    },
}

/// Where Keycloak's admin credentials come from.
#[derive(Debug, Clone)]
pub enum AdminCredentials {
    Given {
        username: String,
        password: SecretString,
    },
    /// A secret holding `{"username": …, "password": …}`, or just the password (username
    /// `admin`).
    Secret(String),
}

/// Checked inputs.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub environment: Environment,
    pub aws_region: Option<String>,
    pub keycloak_url: Option<Url>,
    pub keycloak_admin: Option<AdminCredentials>,
    pub registry_url: Option<Url>,
    pub gateway_url: Option<Url>,
    pub auth_server_url: Option<Url>,
    pub documentdb: Option<DatabaseTarget>,
    pub documentdb_database: String,
    pub documentdb_ca_file: Option<std::path::PathBuf>,
    /// TLS to databases reached by endpoint + secret.
    pub database_tls: bool,
    pub aurora: Option<DatabaseTarget>,
    pub aurora_database: String,
    /// Prefix of the secrets this program creates (`<prefix>/keycloak/<client id>`).
    pub secret_prefix: String,
    pub wait_endpoints: Duration,
    pub wait_keycloak: Duration,
}

/// Flag-only inputs (secrets and settings that never come from Terraform outputs).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub keycloak_admin_user: Option<String>,
    pub keycloak_admin_password: Option<SecretString>,
    pub mongodb_url: Option<SecretString>,
    pub postgres_url: Option<SecretString>,
    /// The RDS CA bundle DocumentDB's certificates chain to (used with documentdb_endpoint).
    pub documentdb_ca_file: Option<std::path::PathBuf>,
    /// TLS to databases reached by endpoint + secret (default on; off only for local stacks).
    pub database_tls: Option<bool>,
    pub wait_endpoints: Option<Duration>,
    pub wait_keycloak: Option<Duration>,
}

fn parse_url(name: &str, text: &str) -> Result<Url> {
    let url = Url::parse(text).map_err(|e| {
        SetupError::input(format!(
            "{name} {text:?} is not a URL ({e}); give it as https://host[:port][/path]"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(SetupError::input(format!(
            "{name} {text:?} must be an http:// or https:// URL with a host"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(SetupError::input(format!(
            "{name} {text:?} must not have a query or fragment"
        )));
    }
    Ok(url)
}

fn check_secret_id(name: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 2048
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(SetupError::input(format!(
            "{name} {id:?} is not a Secrets Manager secret name or ARN (letters, digits and /_+=.@-: only)"
        )))
    }
}

fn check_endpoint(name: &str, endpoint: &str) -> Result<()> {
    let (host, port) = match endpoint.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (endpoint, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(SetupError::input(format!(
            "{name} {endpoint:?} is not host[:port]"
        )))
    }
}

impl Inputs {
    /// Checks every value that is present; [`Inputs::require`] then asks for what the
    /// selected steps need.
    pub fn resolve(raw: &RawInputs, over: Overrides) -> Result<Self> {
        let url = |name: &'static str| -> Result<Option<Url>> {
            raw.get(name).map(|t| parse_url(name, t)).transpose()
        };
        let environment = match raw.get(output::ENVIRONMENT) {
            None => Environment::Prod,
            Some(t) => Environment::parse(t).ok_or_else(|| {
                SetupError::input(format!(
                    "environment {t:?} is neither dev nor prod (dev-only users are created only in dev)"
                ))
            })?,
        };
        let keycloak_admin = match (
            over.keycloak_admin_password,
            raw.get(output::KEYCLOAK_ADMIN_SECRET_ID),
        ) {
            (Some(password), _) => Some(AdminCredentials::Given {
                username: over
                    .keycloak_admin_user
                    .unwrap_or_else(|| "admin".to_owned()),
                password,
            }),
            (None, Some(id)) => {
                check_secret_id(output::KEYCLOAK_ADMIN_SECRET_ID, id)?;
                Some(AdminCredentials::Secret(id.to_owned()))
            }
            (None, None) => None,
        };
        let database = |url: Option<SecretString>,
                        endpoint: &'static str,
                        secret: &'static str|
         -> Result<Option<DatabaseTarget>> {
            if let Some(u) = url {
                return Ok(Some(DatabaseTarget::Url(u)));
            }
            match (raw.get(endpoint), raw.get(secret)) {
                (Some(e), Some(s)) => {
                    check_endpoint(endpoint, e)?;
                    check_secret_id(secret, s)?;
                    Ok(Some(DatabaseTarget::Endpoint {
                        endpoint: e.to_owned(),
                        secret_id: s.to_owned(),
                    }))
                }
                (Some(_), None) => Err(SetupError::input(format!(
                    "{endpoint} is given but {secret} is not: both are needed to connect"
                ))),
                (None, Some(_)) => Err(SetupError::input(format!(
                    "{secret} is given but {endpoint} is not: both are needed to connect"
                ))),
                (None, None) => Ok(None),
            }
        };
        let secret_prefix = raw.get(output::SECRET_PREFIX).unwrap_or("mcpgw").to_owned();
        check_secret_id(output::SECRET_PREFIX, &secret_prefix)?;
        let name = |key: &'static str, default: &str| -> Result<String> {
            let v = raw.get(key).unwrap_or(default);
            let ok = !v.is_empty()
                && v.len() <= 63
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c));
            if ok {
                Ok(v.to_owned())
            } else {
                Err(SetupError::input(format!(
                    "{key} {v:?} is not a database name (letters, digits, _ and -, at most 63)"
                )))
            }
        };
        Ok(Self {
            environment,
            aws_region: raw.get(output::AWS_REGION).map(str::to_owned),
            keycloak_url: url(output::KEYCLOAK_URL)?,
            keycloak_admin,
            registry_url: url(output::REGISTRY_URL)?,
            gateway_url: url(output::GATEWAY_URL)?,
            auth_server_url: url(output::AUTH_SERVER_URL)?,
            documentdb: database(
                over.mongodb_url,
                output::DOCUMENTDB_ENDPOINT,
                output::DOCUMENTDB_SECRET_ID,
            )?,
            documentdb_database: name(output::DOCUMENTDB_DATABASE, "mcpgw_registry")?,
            documentdb_ca_file: match over.documentdb_ca_file {
                Some(path) if !path.is_file() => {
                    return Err(SetupError::input(format!(
                        "--documentdb-ca-file {} is not a readable file",
                        path.display()
                    ))
                    .with_hint(
                        "download the RDS CA bundle (global-bundle.pem) from AWS and give its path",
                    ));
                }
                other => other,
            },
            database_tls: over.database_tls.unwrap_or(true),
            aurora: database(
                over.postgres_url,
                output::AURORA_ENDPOINT,
                output::AURORA_SECRET_ID,
            )?,
            aurora_database: name(output::AURORA_DATABASE, "mcpgw_auth")?,
            secret_prefix,
            wait_endpoints: over.wait_endpoints.unwrap_or(Duration::from_secs(600)),
            wait_keycloak: over.wait_keycloak.unwrap_or(Duration::from_secs(300)),
        })
    }

    /// The URLs the endpoints step waits for, with their names.
    pub fn endpoints(&self) -> Vec<(&'static str, &Url)> {
        [
            (output::KEYCLOAK_URL, &self.keycloak_url),
            (output::REGISTRY_URL, &self.registry_url),
            (output::GATEWAY_URL, &self.gateway_url),
            (output::AUTH_SERVER_URL, &self.auth_server_url),
        ]
        .into_iter()
        .filter_map(|(n, u)| u.as_ref().map(|u| (n, u)))
        .collect()
    }
}

/// "missing X" with where it can come from.
pub fn missing(name: &str, needed_by: &str) -> SetupError {
    let flag = name.replace('_', "-");
    SetupError::input(format!(
        "{name} is missing: the {needed_by} step needs it"
    ))
    .with_hint(format!(
        "give --{flag}, or a Terraform output named {name} (--terraform-outputs), or skip the step with --skip {needed_by}"
    ))
}
