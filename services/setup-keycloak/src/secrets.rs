//! Where setup reads credentials and stores the secrets it generates: AWS Secrets Manager
//! (deployments; the emulator in tests) or a directory of files (docker compose, local).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::SdkError;
use base64::Engine;
use mcpgw_core::secrets::{SecretsManagerConfig, secrets_manager_client};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use crate::error::{Result, SetupError, error_chain};

#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The secret's current value; `None` when it does not exist.
    async fn get(&self, id: &str) -> Result<Option<SecretString>>;
    /// Creates the secret or replaces its value.
    async fn put(&self, id: &str, value: &SecretString, description: &str) -> Result<()>;
    /// For messages: "AWS Secrets Manager (eu-west-1)", "directory ./secrets".
    fn describe(&self) -> String;
}

/// A new random secret: 32 bytes, URL-safe base64 (fits any form field or header).
pub fn generate() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

pub struct AwsSecrets {
    client: aws_sdk_secretsmanager::Client,
    label: String,
}

impl AwsSecrets {
    /// A client on the SDK's default chain (ECS task role, profile, environment), with an
    /// optional region and endpoint override (an emulator).
    pub async fn new(region: Option<&str>, endpoint_url: Option<&str>) -> Self {
        let config = SecretsManagerConfig {
            region: region.unwrap_or_default().to_owned(),
            endpoint_url: endpoint_url.unwrap_or_default().to_owned(),
        };
        let client = secrets_manager_client(&config, None).await;
        let region = client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "no region".to_owned());
        let label = match endpoint_url {
            Some(e) => format!("AWS Secrets Manager at {e} ({region})"),
            None => format!("AWS Secrets Manager ({region})"),
        };
        Self { client, label }
    }
}

/// Sorts an SDK failure into a failure class, with the service's own message.
fn classify<E, R>(what: &str, e: &SdkError<E, R>) -> SetupError
where
    E: std::error::Error + aws_sdk_secretsmanager::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => SetupError::unreachable(
            format!("{what}: AWS Secrets Manager did not answer: {}", error_chain(e)),
        )
        .with_hint("check the region, the network path to Secrets Manager, and --aws-endpoint-url if you use an emulator"),
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("unknown");
            let message = se.err().message().unwrap_or_default();
            let text = format!("{what}: {code}: {message}");
            if matches!(
                code,
                "AccessDeniedException"
                    | "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "ExpiredTokenException"
            ) {
                SetupError::credentials(text).with_hint(
                    "run with AWS credentials allowed to read and write the mcpgw secrets (secretsmanager:GetSecretValue, CreateSecret, PutSecretValue)",
                )
            } else {
                SetupError::apply(text)
            }
        }
        SdkError::ConstructionFailure(_) => {
            SetupError::credentials(format!("{what}: {}", error_chain(e))).with_hint(
                "no AWS credentials or region were found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and AWS_REGION",
            )
        }
        _ => SetupError::apply(format!("{what}: {}", error_chain(e))),
    }
}

#[async_trait]
impl SecretStore for AwsSecrets {
    async fn get(&self, id: &str) -> Result<Option<SecretString>> {
        match self.client.get_secret_value().secret_id(id).send().await {
            Ok(out) => out
                .secret_string()
                .map(|s| Some(SecretString::from(s.to_owned())))
                .ok_or_else(|| {
                    SetupError::input(format!(
                        "secret {id:?} has no string value (binary secrets are not supported)"
                    ))
                }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(classify(&format!("reading secret {id:?}"), &e)),
        }
    }

    async fn put(&self, id: &str, value: &SecretString, description: &str) -> Result<()> {
        let created = self
            .client
            .create_secret()
            .name(id)
            .description(description)
            .secret_string(value.expose_secret())
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_exists_exception()) =>
            {
                self.client
                    .put_secret_value()
                    .secret_id(id)
                    .secret_string(value.expose_secret())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| classify(&format!("writing secret {id:?}"), &e))
            }
            Err(e) => Err(classify(&format!("creating secret {id:?}"), &e)),
        }
    }

    fn describe(&self) -> String {
        self.label.clone()
    }
}

/// One file per secret under a directory (`<dir>/<id>`, mode 0600), for docker compose
/// (mounted into the containers) and local runs.
pub struct DirSecrets {
    dir: PathBuf,
}

impl DirSecrets {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    fn path(&self, id: &str) -> Result<PathBuf> {
        let ok = !id.is_empty()
            && id.len() <= 512
            && id.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_+=.@-".contains(c))
            });
        if !ok {
            return Err(SetupError::input(format!(
                "secret name {id:?} cannot be a file under {}: use letters, digits, _+=.@- and / between parts",
                self.dir.display()
            )));
        }
        Ok(self.dir.join(id))
    }
}

#[async_trait]
impl SecretStore for DirSecrets {
    async fn get(&self, id: &str) -> Result<Option<SecretString>> {
        let path = self.path(id)?;
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => Ok(Some(SecretString::from(text.trim().to_owned()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SetupError::apply(format!(
                "reading secret file {}: {e}",
                path.display()
            ))),
        }
    }

    async fn put(&self, id: &str, value: &SecretString, _description: &str) -> Result<()> {
        let path = self.path(id)?;
        let value = value.expose_secret().to_owned();
        tokio::task::spawn_blocking(move || write_private(&path, value.as_bytes()))
            .await
            .map_err(|e| SetupError::internal(format!("writing a secret file: {e}")))?
    }

    fn describe(&self) -> String {
        format!("directory {}", self.dir.display())
    }
}

/// Writes `bytes` to `path` atomically, readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use mcpgw_core::secrets::{IfExists, write_private};
    write_private(path, bytes, IfExists::Replace).map_err(|e| {
        SetupError::apply(format!("writing {}: {e}", path.display()))
            .with_hint("check that the secrets directory exists and is writable")
    })
}
