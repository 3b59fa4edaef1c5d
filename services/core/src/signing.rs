//! Asymmetric signing keys for tokens this platform issues (the auth-server's vended tokens),
//! and the public JWKs it publishes.
//!
//! Keys are ECDSA P-256 (ES256): small, fast, and supported by every JOSE library. The key id
//! is the RFC 7638 thumbprint of the public key, so it is stable and derived, never chosen.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretBox};
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("the key is not a PKCS#8 P-256 private key")]
    BadKey,
    #[error("signing failed: {0}")]
    Sign(String),
}

/// A private signing key and its public JWK.
pub struct SigningKey {
    pkcs8: SecretBox<Vec<u8>>,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(kid={})", self.kid())
    }
}

impl SigningKey {
    /// A fresh P-256 key.
    pub fn generate() -> Self {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("generating a P-256 key cannot fail with the system RNG");
        Self::from_pkcs8(doc.as_ref()).expect("a freshly generated key parses")
    }

    /// Loads a PKCS#8 (DER) P-256 private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, SigningError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| SigningError::BadKey)?;
        // The public key is the uncompressed point 0x04 || X || Y.
        let public = pair.public_key().as_ref();
        if public.len() != 65 || public[0] != 4 {
            return Err(SigningError::BadKey);
        }
        let x = URL_SAFE_NO_PAD.encode(&public[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&public[33..65]);
        let thumbprint = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint.as_bytes()));
        let jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::ES256),
                key_id: Some(kid),
                ..Default::default()
            },
            algorithm: AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x,
                y,
            }),
        };
        Ok(Self {
            pkcs8: SecretBox::new(Box::new(der.to_vec())),
            encoding: EncodingKey::from_ec_der(der),
            jwk,
        })
    }

    pub fn kid(&self) -> &str {
        self.jwk.common.key_id.as_deref().unwrap_or_default()
    }

    /// The public key, for a JWKS.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The private key (PKCS#8 DER), for storing it sealed.
    pub fn pkcs8_der(&self) -> &[u8] {
        self.pkcs8.expose_secret()
    }

    /// Signs `claims` as a compact JWS with this key's `kid` and the given `typ`.
    pub fn sign<T: Serialize>(&self, claims: &T, typ: &str) -> Result<String, SigningError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid().to_owned());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| SigningError::Sign(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_through_pkcs8_with_the_same_kid() {
        let key = SigningKey::generate();
        let again = SigningKey::from_pkcs8(key.pkcs8_der()).unwrap();
        assert_eq!(key.kid(), again.kid());
        assert_eq!(key.kid().len(), 43);
        assert!(SigningKey::from_pkcs8(b"not a key").is_err());
        assert!(!format!("{key:?}").contains(&URL_SAFE_NO_PAD.encode(key.pkcs8_der())));
    }
}
