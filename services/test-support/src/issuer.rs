//! A token issuer on loopback that serves an OpenID discovery document and a JWKS, and signs
//! tokens with keys the test controls.
//!
//! It is a stand-in for an IdP in tests of token handling (expired, tampered, rotated keys, an
//! IdP that goes down). Tests of the real login and token flows use Keycloak and a second OIDC
//! provider (`scripts/deps/keycloak.sh`, `scripts/deps/oidc.sh`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use mcpgw_core::signing::SigningKey;
use serde_json::{Value, json};
/// A loopback token issuer.
pub struct TestIssuer {
    pub issuer: String,
    keys: Mutex<Vec<Jwk>>,
    signing: Mutex<Arc<SigningKey>>,
    up: AtomicBool,
}

impl TestIssuer {
    /// Starts serving at `http://127.0.0.1:<port>/realms/test` with one published key.
    pub async fn start() -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let key = Arc::new(SigningKey::generate());
        let issuer = Arc::new(Self {
            issuer: format!("http://{addr}/realms/test"),
            keys: Mutex::new(vec![key.public_jwk().clone()]),
            signing: Mutex::new(key),
            up: AtomicBool::new(true),
        });
        let discovery = issuer.clone();
        let certs = issuer.clone();
        let app = axum::Router::new()
            .route(
                "/realms/test/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let i = discovery.clone();
                    async move {
                        axum::Json(
                            json!({"issuer": i.issuer, "jwks_uri": format!("{}/certs", i.issuer)}),
                        )
                    }
                }),
            )
            .route(
                "/realms/test/certs",
                axum::routing::get(move || {
                    let i = certs.clone();
                    async move {
                        if !i.up.load(Ordering::SeqCst) {
                            return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                        }
                        let keys = i.keys.lock().expect("lock").clone();
                        Ok(axum::Json(JwkSet { keys }))
                    }
                }),
            );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        issuer
    }

    /// Publishes a new key and signs with it from now on (the old key stays published).
    pub fn rotate(&self) -> Arc<SigningKey> {
        let key = Arc::new(SigningKey::generate());
        self.keys
            .lock()
            .expect("lock")
            .push(key.public_jwk().clone());
        *self.signing.lock().expect("lock") = key.clone();
        key
    }

    /// Takes the JWKS endpoint down (503) or back up.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    /// Access-token claims for `sub` with `groups`, valid for 5 minutes, for `audience`.
    pub fn claims(&self, sub: &str, groups: &[&str], audience: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.issuer, "sub": sub, "aud": audience, "exp": now + 300, "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(), "groups": groups,
            "preferred_username": sub, "typ": "Bearer"
        })
    }

    /// Signs claims with the current key.
    pub fn sign(&self, claims: &Value) -> String {
        let key = self.signing.lock().expect("lock").clone();
        key.sign(claims, "JWT").expect("signing works")
    }
}
