//! Secrets: where they come from, and how stored credentials are sealed.
//!
//! Upstream credentials (bearer tokens, API keys, client secrets, header values) are stored
//! sealed with AES-256-GCM. Each sealed value records the id of the key that sealed it, so keys
//! can be rotated: the primary key seals, every key in the ring can open. The associated data
//! binds a ciphertext to the record and field it belongs to, so a sealed value copied into
//! another record does not open there.
//!
//! Keys come from config, a file, or AWS Secrets Manager. Plain key material is held in
//! `secrecy` types and never appears in `Debug` output or logs.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A credential sealed at rest.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// Id of the key that sealed it.
    pub kid: String,
    /// Base64 of the 96-bit nonce.
    pub nonce: String,
    /// Base64 of ciphertext and tag.
    pub ciphertext: String,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecret(kid={})", self.kid)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("sealing key {0} must be base64 of exactly 32 bytes")]
    BadKey(String),
    #[error("no key with id {0} is configured; add the old key to the previous keys to open it")]
    UnknownKey(String),
    #[error("a sealed value could not be opened (wrong key, or it was moved between records)")]
    Open,
    #[error("reading {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("AWS Secrets Manager: {0}")]
    SecretsManager(String),
}

struct Key {
    kid: String,
    cipher: Aes256Gcm,
}

/// The set of keys that open sealed values; the first one seals.
pub struct Keyring {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        write!(f, "Keyring(kids={kids:?})")
    }
}

fn key_id(material: &[u8]) -> String {
    let digest = Sha256::digest(material);
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

impl Keyring {
    /// Builds a ring from base64 keys; `primary` seals, `previous` only open.
    pub fn from_base64(
        primary: &SecretString,
        previous: &[SecretString],
    ) -> Result<Self, SecretError> {
        let mut keys = Vec::with_capacity(1 + previous.len());
        for (i, encoded) in std::iter::once(primary).chain(previous).enumerate() {
            let label = if i == 0 {
                "primary".to_owned()
            } else {
                format!("previous[{}]", i - 1)
            };
            let raw = SecretBox::new(Box::new(
                B64.decode(encoded.expose_secret().trim())
                    .map_err(|_| SecretError::BadKey(label.clone()))?,
            ));
            if raw.expose_secret().len() != 32 {
                return Err(SecretError::BadKey(label));
            }
            let cipher = Aes256Gcm::new_from_slice(raw.expose_secret())
                .map_err(|_| SecretError::BadKey(label))?;
            keys.push(Key {
                kid: key_id(raw.expose_secret()),
                cipher,
            });
        }
        Ok(Self { keys })
    }

    /// A new random base64 key, for first starts and `generate-key` commands.
    pub fn generate_base64() -> SecretString {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        SecretString::from(B64.encode(raw))
    }

    /// Reads the key at `path`, or creates it (mode 0600) when it does not exist yet.
    pub fn load_or_create_file(path: &Path) -> Result<SecretString, SecretError> {
        let err = |source| SecretError::File {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(SecretString::from(text.trim().to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate_base64();
                match write_private(path, key.expose_secret().as_bytes(), IfExists::Keep) {
                    Ok(()) => Ok(key),
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        std::fs::read_to_string(path)
                            .map(|t| SecretString::from(t.trim().to_owned()))
                            .map_err(err)
                    }
                    Err(e) => Err(err(e)),
                }
            }
            Err(e) => Err(err(e)),
        }
    }

    pub fn primary_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// Seals `plain`, bound to `context` (e.g. `server:<id>:upstream_auth.token`).
    pub fn seal(&self, context: &str, plain: &str) -> SealedSecret {
        let key = &self.keys[0];
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        SealedSecret {
            kid: key.kid.clone(),
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(ciphertext),
        }
    }

    /// Seals a serializable value into one URL-safe text (a cookie value, an authorization
    /// code): its JSON, sealed bound to `context`, as base64url. Only a holder of the key can
    /// read or forge one, so state that must survive a redirect needs no server-side table.
    pub fn seal_text<T: Serialize>(&self, context: &str, value: &T) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let json = serde_json::to_string(value).expect("a sealable value serializes to JSON");
        let sealed = self.seal(context, &json);
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&sealed).expect("a sealed value serializes"))
    }

    /// Opens a [`Keyring::seal_text`] text; `None` when it is not one sealed by this keyring
    /// for `context` (tampered, another context, an unknown key) or does not parse as `T`.
    pub fn open_text<T: serde::de::DeserializeOwned>(
        &self,
        context: &str,
        text: &str,
    ) -> Option<T> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
        let sealed: SealedSecret = serde_json::from_slice(&raw).ok()?;
        let json = self.open(context, &sealed).ok()?;
        serde_json::from_str(json.expose_secret()).ok()
    }

    /// Opens a sealed value; fails when the key is unknown or the context differs.
    pub fn open(&self, context: &str, sealed: &SealedSecret) -> Result<SecretString, SecretError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == sealed.kid)
            .ok_or_else(|| SecretError::UnknownKey(sealed.kid.clone()))?;
        let nonce = B64.decode(&sealed.nonce).map_err(|_| SecretError::Open)?;
        let ciphertext = B64
            .decode(&sealed.ciphertext)
            .map_err(|_| SecretError::Open)?;
        if nonce.len() != 12 {
            return Err(SecretError::Open);
        }
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Open)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| SecretError::Open)
    }
}

/// What [`write_private`] does when the file exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    /// Replace it (atomically: readers see the old or the new contents, never a mix).
    Replace,
    /// Leave it and fail with `ErrorKind::AlreadyExists`, so that processes racing to create
    /// the same file agree on the first one.
    Keep,
}

/// Writes `contents` to `path` readable by its owner only (mode 0600), durably and atomically:
/// a temporary file in the same directory is written and fsynced, then renamed (`Replace`) or
/// hard-linked (`Keep`) into place, and the directory fsynced. Creates the directory if needed.
/// For keys, passwords and tokens that services and tools leave on disk.
pub fn write_private(path: &Path, contents: &[u8], if_exists: IfExists) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut suffix = [0u8; 8];
    rand::rng().fill_bytes(&mut suffix);
    let tmp = dir.join(format!(".{name}.tmp-{}", hex(&suffix)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    let placed = written.and_then(|()| match if_exists {
        IfExists::Replace => std::fs::rename(&tmp, path),
        IfExists::Keep => std::fs::hard_link(&tmp, path),
    });
    // After a rename there is nothing left to remove; after a link or a failure, the temporary name.
    let _ = std::fs::remove_file(&tmp);
    placed?;
    std::fs::File::open(dir).and_then(|d| d.sync_all())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How to reach AWS Secrets Manager.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsManagerConfig {
    /// AWS region; empty = the SDK's default chain.
    #[serde(default)]
    pub region: String,
    /// Endpoint override (an emulator in tests); empty = the real service.
    #[serde(default)]
    pub endpoint_url: String,
}

/// Reads a secret's string value from AWS Secrets Manager.
///
/// `credentials` is for tests against an emulator; production passes `None` and uses the
/// SDK's default chain (the ECS task role).
pub async fn fetch_from_secrets_manager(
    config: &SecretsManagerConfig,
    secret_id: &str,
    credentials: Option<aws_sdk_secretsmanager::config::Credentials>,
) -> Result<SecretString, SecretError> {
    let client = secrets_manager_client(config, credentials).await;
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| {
            SecretError::SecretsManager(format!(
                "reading secret {secret_id:?}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ))
        })?;
    out.secret_string()
        .map(|s| SecretString::from(s.to_owned()))
        .ok_or_else(|| {
            SecretError::SecretsManager(format!(
                "secret {secret_id:?} has no string value (binary secrets are not supported)"
            ))
        })
}

/// A Secrets Manager client honouring the region and endpoint override.
pub async fn secrets_manager_client(
    config: &SecretsManagerConfig,
    credentials: Option<aws_sdk_secretsmanager::config::Credentials>,
) -> aws_sdk_secretsmanager::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if !config.region.is_empty() {
        loader = loader.region(aws_config::Region::new(config.region.clone()));
    }
    if !config.endpoint_url.is_empty() {
        loader = loader.endpoint_url(config.endpoint_url.clone());
    }
    if let Some(creds) = credentials {
        loader = loader.credentials_provider(creds);
    }
    aws_sdk_secretsmanager::Client::new(&loader.load().await)
}

/// Where one secret comes from: inline in the config, a file, or AWS Secrets Manager.
///
/// At most one of the three may be set ([`SecretSource::check`]); none set means "not
/// configured", and the service decides what that means (a generated local key, no password).
/// In TOML: `[store.password]` with `value`, `file` or `secret_id`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// The secret itself (prefer `file` or `secret_id`: config files and environments leak).
    #[serde(default = "empty_secret")]
    pub value: SecretString,
    /// A file whose contents (trimmed) are the secret, e.g. a mounted container secret.
    #[serde(default)]
    pub file: String,
    /// Name or ARN of an AWS Secrets Manager secret whose string value is the secret.
    #[serde(default)]
    pub secret_id: String,
    /// With `secret_id`: the secret's string is a JSON object and the secret is this key's
    /// value (the `password` of an RDS- or DocumentDB-managed master user secret).
    #[serde(default)]
    pub json_key: String,
}

fn empty_secret() -> SecretString {
    SecretString::from(String::new())
}

impl Default for SecretSource {
    fn default() -> Self {
        Self {
            value: empty_secret(),
            file: String::new(),
            secret_id: String::new(),
            json_key: String::new(),
        }
    }
}

impl SecretSource {
    /// How many of `value`, `file` and `secret_id` are set.
    fn set_count(&self) -> usize {
        [
            !self.value.expose_secret().is_empty(),
            !self.file.is_empty(),
            !self.secret_id.is_empty(),
        ]
        .iter()
        .filter(|s| **s)
        .count()
    }

    /// Whether any source is set.
    pub fn is_configured(&self) -> bool {
        self.set_count() > 0
    }

    /// Refuses more than one source, so it is never unclear which one is used.
    pub fn check(&self) -> Result<(), String> {
        if self.set_count() > 1 {
            return Err("give only one of value, file and secret_id".to_owned());
        }
        if !self.json_key.is_empty() && self.secret_id.is_empty() {
            return Err(
                "json_key names a key of a Secrets Manager secret: set secret_id too".to_owned(),
            );
        }
        Ok(())
    }

    /// Reads the secret from wherever it is configured; `None` when nothing is.
    pub async fn resolve(
        &self,
        aws: &SecretsManagerConfig,
    ) -> Result<Option<SecretString>, SecretError> {
        if !self.value.expose_secret().is_empty() {
            return Ok(Some(self.value.clone()));
        }
        if !self.file.is_empty() {
            let text = std::fs::read_to_string(&self.file).map_err(|source| SecretError::File {
                path: self.file.clone(),
                source,
            })?;
            return Ok(Some(SecretString::from(text.trim().to_owned())));
        }
        if !self.secret_id.is_empty() {
            let text = fetch_from_secrets_manager(aws, &self.secret_id, None).await?;
            if self.json_key.is_empty() {
                return Ok(Some(text));
            }
            return json_field(&self.secret_id, text.expose_secret(), &self.json_key).map(Some);
        }
        Ok(None)
    }

    /// Whether the secret can change without this process knowing (Secrets Manager rotates
    /// it): such a secret is worth reading again.
    pub fn is_rotatable(&self) -> bool {
        !self.secret_id.is_empty()
    }
}

/// Loads the sealing keyring, the same way in every service: the primary key from
/// `secrets.sealing_key` (a [`SecretSource`]), the keys it replaced from
/// `secrets.previous_sealing_keys`. With no source set, `local` (the embedded SQLite default's
/// `<data_dir>/<service>.key`) is read or created once; without `local`, `None` (the gateway
/// then cannot open sealed values, and says so per server).
pub async fn load_sealing_keyring(
    sealing_key: &SecretSource,
    previous: &[SecretString],
    aws: &SecretsManagerConfig,
    local: Option<&Path>,
) -> Result<Option<Keyring>, SecretError> {
    let primary = match (sealing_key.resolve(aws).await?, local) {
        (Some(key), _) => key,
        (None, Some(path)) => Keyring::load_or_create_file(path)?,
        (None, None) => return Ok(None),
    };
    Keyring::from_base64(&primary, previous).map(Some)
}

/// [`load_sealing_keyring`] for a service whose SQLite default generates `local` (the registry,
/// the auth-server): always a ring, errors worded with the config key.
pub async fn load_sealing_keyring_or_local(
    sealing_key: &SecretSource,
    previous: &[SecretString],
    aws: &SecretsManagerConfig,
    local: &Path,
) -> anyhow::Result<Keyring> {
    use anyhow::Context;
    load_sealing_keyring(sealing_key, previous, aws, Some(local))
        .await
        .context("loading secrets.sealing_key (and previous_sealing_keys)")?
        .context("a local sealing key is always created when none is configured")
}

/// The string value of `key` in a JSON object secret; errors name the secret and the key but
/// never show the secret's text.
fn json_field(secret_id: &str, text: &str, key: &str) -> Result<SecretString, SecretError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| {
        SecretError::SecretsManager(format!(
            "secret {secret_id:?} is not a JSON object, so json_key {key:?} cannot be read from it"
        ))
    })?;
    match value.get(key) {
        Some(serde_json::Value::String(s)) => Ok(SecretString::from(s.clone())),
        Some(_) => Err(SecretError::SecretsManager(format!(
            "key {key:?} of secret {secret_id:?} is not a string"
        ))),
        None => Err(SecretError::SecretsManager(format!(
            "secret {secret_id:?} has no key {key:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::from_base64(&Keyring::generate_base64(), &[]).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_in_its_context() {
        let ring = ring();
        let sealed = ring.seal("server:1:token", "s3cret");
        assert_eq!(
            ring.open("server:1:token", &sealed)
                .unwrap()
                .expose_secret(),
            "s3cret"
        );
        assert!(matches!(
            ring.open("server:2:token", &sealed),
            Err(SecretError::Open)
        ));
        assert!(!format!("{sealed:?}").contains(&sealed.ciphertext));
    }

    #[test]
    fn a_sealed_text_opens_only_unchanged_in_its_context() {
        let ring = ring();
        let text = ring.seal_text("console:session", &("alice", 42));
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(
            ring.open_text::<(String, u32)>("console:session", &text),
            Some(("alice".to_owned(), 42))
        );
        assert_eq!(
            ring.open_text::<(String, u32)>("console:login", &text),
            None
        );
        let mut tampered = text.clone().into_bytes();
        let i = tampered.len() / 2;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            ring.open_text::<(String, u32)>("console:session", &tampered),
            None
        );
        assert_eq!(
            ring.open_text::<(String, u32)>("console:session", "not sealed"),
            None
        );
    }

    #[test]
    fn private_files_are_owner_only_replaced_whole_or_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/key");
        write_private(&path, b"first", IfExists::Keep).unwrap();
        let err = write_private(&path, b"second", IfExists::Keep).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        write_private(&path, b"third", IfExists::Replace).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"third");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["key"]);
    }

    #[test]
    fn a_json_key_picks_one_string_out_of_a_json_secret() {
        let text = r#"{"username": "mcpgw", "password": "s3cret", "port": 5432}"#;
        assert_eq!(
            json_field("db", text, "password").unwrap().expose_secret(),
            "s3cret"
        );
        for (text, key, expected) in [
            (text, "missing", "has no key \"missing\""),
            (text, "port", "is not a string"),
            ("not json s3cret", "password", "is not a JSON object"),
        ] {
            let err = json_field("db", text, key).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains("s3cret"), "the secret must not show: {err}");
        }
        let source = SecretSource {
            json_key: "password".into(),
            ..Default::default()
        };
        assert!(source.check().unwrap_err().contains("set secret_id"));
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old_key = Keyring::generate_base64();
        let old = Keyring::from_base64(&old_key, &[]).unwrap();
        let sealed = old.seal("c", "v");
        let rotated = Keyring::from_base64(&Keyring::generate_base64(), &[old_key]).unwrap();
        assert_eq!(rotated.open("c", &sealed).unwrap().expose_secret(), "v");
        assert_ne!(rotated.seal("c", "v").kid, sealed.kid);
        let other = ring();
        assert!(matches!(
            other.open("c", &sealed),
            Err(SecretError::UnknownKey(_))
        ));
    }

    #[test]
    fn a_short_key_is_refused() {
        let err =
            Keyring::from_base64(&SecretString::from(B64.encode([0u8; 16])), &[]).unwrap_err();
        assert!(err.to_string().contains("32 bytes"));
    }

    #[tokio::test]
    async fn the_sealing_keyring_opens_values_of_previous_keys_and_falls_back_to_the_local_file() {
        let old = Keyring::generate_base64();
        let sealed = Keyring::from_base64(&old, &[]).unwrap().seal("c", "v");
        let source = SecretSource {
            value: Keyring::generate_base64(),
            ..SecretSource::default()
        };
        let aws = SecretsManagerConfig::default();
        let ring = load_sealing_keyring(&source, &[old], &aws, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ring.open("c", &sealed).unwrap().expose_secret(), "v");

        let none = SecretSource::default();
        assert!(
            load_sealing_keyring(&none, &[], &aws, None)
                .await
                .unwrap()
                .is_none()
        );
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("svc.key");
        let first = load_sealing_keyring(&none, &[], &aws, Some(&local))
            .await
            .unwrap()
            .unwrap();
        let again = load_sealing_keyring(&none, &[], &aws, Some(&local))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.primary_kid(), again.primary_kid());
    }

    #[test]
    fn a_key_file_is_created_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/registry.key");
        let first = Keyring::load_or_create_file(&path).unwrap();
        let second = Keyring::load_or_create_file(&path).unwrap();
        assert_eq!(first.expose_secret(), second.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[tokio::test]
    async fn a_secret_source_reads_its_one_configured_place() {
        let none = SecretSource::default();
        assert!(!none.is_configured());
        let aws = SecretsManagerConfig::default();
        assert!(none.resolve(&aws).await.unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let file = SecretSource {
            file: path.display().to_string(),
            ..Default::default()
        };
        let got = file.resolve(&aws).await.unwrap().unwrap();
        assert_eq!(got.expose_secret(), "s3cret");
        let both = SecretSource {
            value: SecretString::from("inline-secret"),
            ..file
        };
        assert!(both.check().is_err());
        assert!(!format!("{both:?}").contains("inline-secret"));
    }
}
