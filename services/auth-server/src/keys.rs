//! The auth-server's token signing keys: creation, rotation, the JWKS.
//!
//! Rules of this module:
//! - Keys are ES256 (`core::signing::SigningKey`), stored sealed with the keyring under context
//!   `signing_key:<kid>`; the private key never leaves the process unsealed.
//! - The key with the highest generation signs. Every mint reads which key that is from the
//!   store, so a rotation made by any replica takes effect on every replica at the next mint.
//! - A rotation marks the previous key to retire after `max token lifetime + grace`, so it
//!   stays in the JWKS until every token it signed has expired; then it leaves the JWKS and is
//!   deleted. The grace covers mints that read the old key just before a rotation.
//! - Rotation happens through the admin endpoint and when the current key is older than
//!   `keys.rotation_period_seconds` (checked by a background task on every replica; the store's
//!   unique generation lets exactly one replica win).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use mcpgw_core::secrets::Keyring;
use mcpgw_core::signing::SigningKey;
use mcpgw_core::time::Timestamp;
use secrecy::ExposeSecret;
use tokio::sync::{Mutex, RwLock};

use crate::error::{AuthError, Result};
use crate::store::{AuditRecord, AuthStore, SigningKeyRecord, StoreError};

/// Extra time a retired key stays published beyond the longest token lifetime.
pub const RETIRE_GRACE_SECONDS: i64 = 300;

/// Least time between two reloads of the published keys for an unknown `kid`.
const RELOAD_MIN_INTERVAL: StdDuration = StdDuration::from_secs(1);

fn context(kid: &str) -> String {
    format!("signing_key:{kid}")
}

/// Signs with the current key and answers which keys are published.
pub struct KeyManager {
    store: Arc<dyn AuthStore>,
    keyring: Arc<Keyring>,
    max_token_ttl_seconds: u64,
    /// Unsealed keys by kid (a key is unsealed once per process).
    signing: Mutex<HashMap<String, Arc<SigningKey>>>,
    /// Decoding keys of the published keys, for checking our own tokens in `/validate`.
    verifying: RwLock<VerifyingKeys>,
}

#[derive(Default)]
struct VerifyingKeys {
    keys: HashMap<String, Arc<DecodingKey>>,
    loaded_at: Option<Instant>,
}

impl KeyManager {
    pub fn new(
        store: Arc<dyn AuthStore>,
        keyring: Arc<Keyring>,
        max_token_ttl_seconds: u64,
    ) -> Self {
        Self {
            store,
            keyring,
            max_token_ttl_seconds,
            signing: Mutex::new(HashMap::new()),
            verifying: RwLock::new(VerifyingKeys::default()),
        }
    }

    fn seal(&self, key: &SigningKey, generation: i64) -> Result<SigningKeyRecord> {
        let der =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.pkcs8_der());
        Ok(SigningKeyRecord {
            kid: key.kid().to_owned(),
            generation,
            public_jwk: serde_json::to_string(key.public_jwk())
                .map_err(|e| AuthError::Internal(format!("serializing a JWK: {e}")))?,
            sealed_key: self.keyring.seal(&context(key.kid()), &der),
            created_at: Timestamp::now(),
            retire_after: None,
        })
    }

    fn unseal(&self, record: &SigningKeyRecord) -> Result<SigningKey> {
        let der = self
            .keyring
            .open(&context(&record.kid), &record.sealed_key)?;
        let raw = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            der.expose_secret(),
        )
        .map_err(|_| AuthError::Internal(format!("signing key {} is not base64", record.kid)))?;
        Ok(SigningKey::from_pkcs8(&raw)?)
    }

    /// Creates the first key unless one exists (another replica may create it concurrently:
    /// the loser sees `Conflict` and uses the winner's).
    pub async fn ensure_key(&self) -> Result<()> {
        if self.store.current_signing_key().await?.is_some() {
            return Ok(());
        }
        let key = SigningKey::generate();
        let record = self.seal(&key, 1)?;
        let audit = AuditRecord::new(
            "system:bootstrap",
            None,
            "signing_key.create",
            "signing_key",
            &record.kid,
            serde_json::json!({"generation": 1, "alg": "ES256"}),
        );
        match self.store.insert_first_signing_key(&record, &audit).await {
            Ok(()) => {
                tracing::info!(kid = %record.kid, "created the first token signing key");
                Ok(())
            }
            Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The key that signs now.
    pub async fn current(&self) -> Result<Arc<SigningKey>> {
        let record = self
            .store
            .current_signing_key()
            .await?
            .ok_or_else(|| AuthError::Internal("no signing key exists".to_owned()))?;
        let mut cache = self.signing.lock().await;
        if let Some(k) = cache.get(&record.kid) {
            return Ok(k.clone());
        }
        let key = Arc::new(self.unseal(&record)?);
        cache.insert(record.kid.clone(), key.clone());
        Ok(key)
    }

    /// Replaces the signing key; the previous one stays published until its tokens expire.
    /// Returns the new key's record.
    pub async fn rotate(&self, actor: &str, request_id: Option<&str>) -> Result<SigningKeyRecord> {
        let current = self
            .store
            .current_signing_key()
            .await?
            .ok_or_else(|| AuthError::Internal("no signing key exists".to_owned()))?;
        let key = SigningKey::generate();
        let record = self.seal(&key, current.generation + 1)?;
        let retire_after = Timestamp::from_datetime(
            Timestamp::now().as_datetime()
                + Duration::seconds(self.max_token_ttl_seconds as i64 + RETIRE_GRACE_SECONDS),
        );
        let audit = AuditRecord::new(
            actor,
            request_id,
            "signing_key.rotate",
            "signing_key",
            &record.kid,
            serde_json::json!({
                "generation": record.generation,
                "previous_kid": current.kid,
                "previous_retire_after": retire_after,
            }),
        );
        self.store
            .rotate_signing_key(&record, retire_after, &audit)
            .await?;
        tracing::info!(kid = %record.kid, generation = record.generation, "rotated the token signing key");
        self.signing
            .lock()
            .await
            .insert(record.kid.clone(), Arc::new(key));
        Ok(record)
    }

    /// Rotates when the current key was created `period` or longer before `now`. Another
    /// replica rotating first is not an error. Returns the new kid when this call rotated.
    pub async fn rotate_if_due(
        &self,
        period: StdDuration,
        now: Timestamp,
    ) -> Result<Option<String>> {
        let Some(current) = self.store.current_signing_key().await? else {
            return Ok(None);
        };
        let age = now.as_datetime() - current.created_at.as_datetime();
        if age.num_seconds() < period.as_secs() as i64 {
            return Ok(None);
        }
        match self.rotate("system:key-rotation", None).await {
            Ok(record) => Ok(Some(record.kid)),
            Err(AuthError::Store(StoreError::Conflict(_))) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The published public keys, newest first.
    pub async fn jwks(&self) -> Result<JwkSet> {
        let records = self.store.published_signing_keys(Timestamp::now()).await?;
        let keys = records
            .iter()
            .map(|r| {
                serde_json::from_str::<Jwk>(&r.public_jwk).map_err(|e| {
                    AuthError::Internal(format!("stored JWK {} does not parse: {e}", r.kid))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(JwkSet { keys })
    }

    /// The verifying key for `kid` among the published keys (reloaded when `kid` is unknown,
    /// at most once a second).
    pub async fn verifying_key(&self, kid: &str) -> Result<Option<Arc<DecodingKey>>> {
        {
            let cached = self.verifying.read().await;
            if let Some(k) = cached.keys.get(kid) {
                return Ok(Some(k.clone()));
            }
            if cached
                .loaded_at
                .is_some_and(|t| t.elapsed() < RELOAD_MIN_INTERVAL)
            {
                return Ok(None);
            }
        }
        let set = self.jwks().await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let (Some(id), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)) {
                keys.insert(id, Arc::new(key));
            }
        }
        let mut cached = self.verifying.write().await;
        cached.keys = keys;
        cached.loaded_at = Some(Instant::now());
        Ok(cached.keys.get(kid).cloned())
    }

    /// Deletes keys whose retirement time has passed (their private keys with them).
    pub async fn prune(&self) -> Result<u64> {
        Ok(self
            .store
            .delete_retired_signing_keys(Timestamp::now())
            .await?)
    }
}
