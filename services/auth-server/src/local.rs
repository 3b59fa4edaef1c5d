//! The embedded identity provider: local users with argon2id password hashes.
//!
//! Rules of this module:
//! - Passwords are hashed with argon2id (cost from `local.password_hash`); the PHC string keeps
//!   its own parameters, so a cost change applies to new hashes without breaking old ones.
//! - Hashing and verifying run on the blocking pool: they take tens of milliseconds of CPU.
//! - An unknown or disabled user costs the same work as a wrong password (a verification
//!   against a dummy hash made with the same parameters), and every failure gets the same
//!   answer, so neither timing nor wording tells which usernames exist.
//! - Generated passwords are 24 characters of base64url from 18 random bytes (144 bits).

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgw_core::validate::FieldError;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use crate::config::PasswordHashConfig;

/// Longest password accepted (argon2 accepts any length; this bounds the work per request).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A local username: 1–64 of lowercase letters, digits, `.`, `_`, `-`, `@`, starting with a
/// letter or digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        mcpgw_core::validate::identifier("username", text, 64, "._-@").map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Hashes and verifies passwords with one set of argon2id parameters.
#[derive(Clone)]
pub struct PasswordHasherConfig {
    params: Params,
    /// A hash of a random password, verified against when the user does not exist.
    dummy_hash: String,
}

impl std::fmt::Debug for PasswordHasherConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PasswordHasher(argon2id m={} t={} p={})",
            self.params.m_cost(),
            self.params.t_cost(),
            self.params.p_cost()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("the hashing task failed: {0}")]
    Task(String),
}

impl PasswordHasherConfig {
    pub fn new(config: PasswordHashConfig) -> Result<Self, PasswordError> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| PasswordError::Params(e.to_string()))?;
        let mut this = Self {
            params,
            dummy_hash: String::new(),
        };
        this.dummy_hash = this.hash_now(&generate_password())?;
        Ok(this)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    fn hash_now(&self, password: &SecretString) -> Result<String, PasswordError> {
        self.argon2()
            .hash_password(password.expose_secret().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    }

    /// The PHC string of `password` with a fresh salt.
    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.hash_now(&password))
            .await
            .map_err(|e| PasswordError::Task(e.to_string()))?
    }

    /// Whether `password` matches `stored` (a PHC string). With `stored = None` (no such user)
    /// the same work is done against the dummy hash and the answer is `false`.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> bool {
        let this = self.clone();
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let matched = tokio::task::spawn_blocking(move || {
            let bytes = password.expose_secret().as_bytes();
            this.argon2().verify_password(bytes, hash.as_str()).is_ok()
        })
        .await
        .unwrap_or(false);
        known && matched
    }
}

/// A new random password for the bootstrap administrator.
pub fn generate_password() -> SecretString {
    let mut raw = [0u8; 18];
    rand::rng().fill_bytes(&mut raw);
    SecretString::from(URL_SAFE_NO_PAD.encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasherConfig {
        PasswordHasherConfig::new(PasswordHashConfig {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_password_verifies_only_against_its_own_hash() {
        let hasher = cheap();
        let hash = hasher.hash(SecretString::from("right")).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
        assert!(
            hasher
                .verify(SecretString::from("right"), Some(hash.clone()))
                .await
        );
        assert!(
            !hasher
                .verify(SecretString::from("wrong"), Some(hash.clone()))
                .await
        );
        assert!(!hasher.verify(SecretString::from("right"), None).await);
        assert!(
            !hasher
                .verify(SecretString::from("right"), Some("not a hash".into()))
                .await
        );
    }

    #[test]
    fn usernames_are_lowercase_identifiers() {
        assert!(Username::parse("alice.smith@corp").is_ok());
        for bad in ["", "Alice", "-x", "a b", &"a".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn generated_passwords_are_long_and_different() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.expose_secret().len(), 24);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
