//! API keys: `mcpgw_<id>.<secret>`.
//!
//! The id is public and names the stored record; the secret is 256 random bits, stored only as
//! its SHA-256 and compared in constant time. A key is refused once revoked or expired.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgw_core::auth::{Permission, Principal, PrincipalKind};
use mcpgw_core::time::Timestamp;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::ApiKeyRecord;

pub const PREFIX: &str = "mcpgw_";
/// The id of the admin key created at first start.
pub const BOOTSTRAP_ID: &str = "bootstrap";

/// A freshly minted key: the record to store and the only copy of the plain key.
pub struct MintedKey {
    pub record: ApiKeyRecord,
    pub plain: String,
}

fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Mints a key. `id` is random unless given (the bootstrap key has a fixed id, so that two
/// replicas starting at once cannot both create one).
pub fn mint(
    id: Option<&str>,
    name: &str,
    permissions: Vec<mcpgw_core::auth::Permission>,
    created_by: &str,
    expires_at: Option<Timestamp>,
) -> MintedKey {
    let mut rng = rand::rng();
    let id = match id {
        Some(id) => id.to_owned(),
        None => {
            let mut raw = [0u8; 8];
            rng.fill_bytes(&mut raw);
            raw.iter().map(|b| format!("{b:02x}")).collect()
        }
    };
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let secret = URL_SAFE_NO_PAD.encode(secret);
    MintedKey {
        plain: format!("{PREFIX}{id}.{secret}"),
        record: ApiKeyRecord {
            id,
            name: name.to_owned(),
            secret_hash: hash(&secret),
            permissions,
            created_by: created_by.to_owned(),
            created_at: Timestamp::now(),
            expires_at,
            revoked_at: None,
        },
    }
}

/// Splits a presented key into id and secret; `None` if it is not shaped like one of ours.
pub fn parse(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('.')?;
    let id_ok = !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric());
    let secret_ok = (20..=128).contains(&secret.len());
    (id_ok && secret_ok).then_some((id, secret))
}

/// Checks a presented secret against a stored record.
pub fn verify(record: &ApiKeyRecord, secret: &str, now: Timestamp) -> bool {
    let matches: bool = hash(secret)
        .as_bytes()
        .ct_eq(record.secret_hash.as_bytes())
        .into();
    matches && record.revoked_at.is_none() && record.expires_at.is_none_or(|e| e > now)
}

/// Recently read key records, so that a request does not cost a store read for its key.
///
/// The secret is still checked against the record on every request; only the record is cached.
/// A revocation made through this replica applies at once (it removes the entry); one made
/// through another replica applies within the time to live.
pub struct KeyCache {
    ttl: std::time::Duration,
    entries:
        std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, ApiKeyRecord)>>,
}

/// Most records kept; past it the cache starts over (ids are not attacker-chosen: unknown ids are
/// never cached).
const KEY_CACHE_LIMIT: usize = 10_000;

impl KeyCache {
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            entries: Default::default(),
        }
    }

    pub fn get(&self, id: &str) -> Option<ApiKeyRecord> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(id)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, r)| r.clone())
    }

    pub fn put(&self, record: &ApiKeyRecord) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= KEY_CACHE_LIMIT {
            entries.clear();
        }
        entries.insert(
            record.id.clone(),
            (std::time::Instant::now(), record.clone()),
        );
    }

    pub fn remove(&self, id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// The principal a valid key stands for.
///
/// `gateway:delegate` (act as any caller) counts only on a delegate key as the registry mints
/// one: holding that permission alone, minted by the registry process itself (a `system:`
/// principal: its own record at start, or the `registry` CLI on its host). Admin keys minted
/// before the permission became machine-only, and keys minted through the API, never carry it.
pub fn principal(record: &ApiKeyRecord) -> Principal {
    let minted_by_the_registry = record.created_by.starts_with("system:")
        && record.permissions == [Permission::GatewayDelegate];
    Principal {
        subject: format!("api_key:{}", record.id),
        display_name: record.name.clone(),
        kind: PrincipalKind::ApiKey,
        permissions: record
            .permissions
            .iter()
            .copied()
            .filter(|p| *p != Permission::GatewayDelegate || minted_by_the_registry)
            .collect(),
        scoped: Default::default(),
        identity: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpgw_core::auth::Permission;

    #[test]
    fn a_minted_key_verifies_and_a_tampered_one_does_not() {
        let k = mint(None, "ci", vec![Permission::ServersRead], "test", None);
        let (id, secret) = parse(&k.plain).unwrap();
        assert_eq!(id, k.record.id);
        assert!(verify(&k.record, secret, Timestamp::now()));
        let mut tampered = secret.to_owned();
        tampered.replace_range(0..1, if secret.starts_with('A') { "B" } else { "A" });
        assert!(!verify(&k.record, &tampered, Timestamp::now()));
        let mut revoked = k.record.clone();
        revoked.revoked_at = Some(Timestamp::now());
        assert!(!verify(&revoked, secret, Timestamp::now()));
    }

    #[test]
    fn foreign_tokens_are_not_parsed_as_keys() {
        assert!(parse("eyJhbGciOi.x.y").is_none());
        assert!(parse("mcpgw_.abc").is_none());
        assert!(parse("mcpgw_id.short").is_none());
    }
}
