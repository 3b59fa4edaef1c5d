//! Token validation against a real JWKS endpoint served on loopback, with keys this test
//! controls (publish, rotate, take the endpoint down).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use super::*;
use crate::signing::SigningKey;

struct Idp {
    issuer: String,
    keys: std::sync::Mutex<Vec<Jwk>>,
    up: AtomicBool,
    hits: AtomicUsize,
}

use jsonwebtoken::jwk::Jwk;

async fn idp() -> Arc<Idp> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let idp = Arc::new(Idp {
        issuer: format!("http://{addr}/realms/test"),
        keys: std::sync::Mutex::new(Vec::new()),
        up: AtomicBool::new(true),
        hits: AtomicUsize::new(0),
    });
    let state = idp.clone();
    let app = axum::Router::new()
        .route(
            "/realms/test/.well-known/openid-configuration",
            axum::routing::get({
                let state = state.clone();
                move || {
                    let state = state.clone();
                    async move {
                        axum::Json(json!({
                            "issuer": state.issuer,
                            "jwks_uri": format!("{}/certs", state.issuer),
                        }))
                    }
                }
            }),
        )
        .route(
            "/realms/test/certs",
            axum::routing::get(move || {
                let state = state.clone();
                async move {
                    state.hits.fetch_add(1, Ordering::SeqCst);
                    if !state.up.load(Ordering::SeqCst) {
                        return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                    }
                    let keys = state.keys.lock().unwrap().clone();
                    Ok(axum::Json(JwkSet { keys }))
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    idp
}

fn config(idp: &Idp) -> IssuerConfig {
    IssuerConfig {
        issuer: idp.issuer.clone(),
        jwks_uri: String::new(),
        audiences: vec!["mcp-gateway".to_owned()],
        algorithms: default_algorithms(),
        token_types: default_token_types(),
        groups_claim: "groups".to_owned(),
        revocations_url: String::new(),
        resource_base: None,
    }
}

fn validator(idp: &Idp, settings: ValidatorSettings) -> TokenValidator {
    TokenValidator::new(vec![config(idp)], settings).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(idp: &Idp) -> Value {
    json!({
        "iss": idp.issuer, "sub": "user-1", "aud": "mcp-gateway", "exp": now() + 300,
        "iat": now(), "jti": "t-1", "groups": ["/mcp-users", "ops"], "scope": "openid mcp:tools",
        "azp": "web", "preferred_username": "alice", "typ": "Bearer"
    })
}

fn publish(idp: &Idp, key: &SigningKey) {
    idp.keys.lock().unwrap().push(key.public_jwk().clone());
}

#[tokio::test]
async fn a_valid_token_is_accepted_and_its_claims_extracted() {
    let idp = idp().await;
    let key = SigningKey::generate();
    publish(&idp, &key);
    let v = validator(&idp, ValidatorSettings::default());
    let t = v
        .validate(&key.sign(&claims(&idp), "JWT").unwrap())
        .await
        .unwrap();
    assert_eq!(t.subject, "user-1");
    assert_eq!(t.groups, ["mcp-users", "ops"]);
    assert_eq!(t.scopes, ["openid", "mcp:tools"]);
    assert_eq!(t.client_id.as_deref(), Some("web"));
    assert_eq!(t.username.as_deref(), Some("alice"));
    assert_eq!(t.token_id.as_deref(), Some("t-1"));
    assert_eq!(t.audiences, ["mcp-gateway"]);
}

#[tokio::test]
async fn expired_not_yet_valid_wrong_issuer_and_wrong_audience_are_refused() {
    let idp = idp().await;
    let key = SigningKey::generate();
    publish(&idp, &key);
    let v = validator(&idp, ValidatorSettings::default());
    let with = |patch: Value| {
        let mut c = claims(&idp);
        for (k, val) in patch.as_object().unwrap() {
            c[k] = val.clone();
        }
        key.sign(&c, "JWT").unwrap()
    };
    assert_eq!(
        v.validate(&with(json!({"exp": now() - 120}))).await,
        Err(TokenError::Expired)
    );
    // Within the leeway is fine.
    assert!(v.validate(&with(json!({"exp": now() - 5}))).await.is_ok());
    assert_eq!(
        v.validate(&with(json!({"nbf": now() + 600}))).await,
        Err(TokenError::NotYetValid)
    );
    assert_eq!(
        v.validate(&with(json!({"iss": "https://evil.example/realms/test"})))
            .await,
        Err(TokenError::UntrustedIssuer)
    );
    assert_eq!(
        v.validate(&with(json!({"aud": "someone-else"}))).await,
        Err(TokenError::Audience)
    );
    assert_eq!(
        v.validate(&with(json!({"aud": null}))).await,
        Err(TokenError::MissingClaim("aud".to_owned()))
    );
}

#[tokio::test]
async fn id_tokens_are_refused_by_every_marker_and_access_token_shapes_pass() {
    let idp = idp().await;
    let key = SigningKey::generate();
    publish(&idp, &key);
    // Header types are not what tells an ID token apart: accept any, as for an IdP whose
    // tokens carry no `typ`.
    let v = TokenValidator::new(
        vec![IssuerConfig {
            token_types: vec![],
            ..config(&idp)
        }],
        ValidatorSettings::default(),
    )
    .unwrap();
    let with = |patch: Value, drop: &[&str]| {
        let mut c = claims(&idp);
        for (k, val) in patch.as_object().unwrap() {
            c[k] = val.clone();
        }
        for k in drop {
            c.as_object_mut().unwrap().remove(*k);
        }
        key.sign(&c, "JWT").unwrap()
    };
    for (patch, why) in [
        (json!({"nonce": "n-1"}), "it carries `nonce`"),
        (json!({"at_hash": "x"}), "it carries `at_hash`"),
        (json!({"c_hash": "x"}), "it carries `c_hash`"),
        (json!({"typ": "ID"}), "claim typ \"ID\""),
        (json!({"token_use": "id"}), "claim token_use \"id\""),
    ] {
        assert_eq!(
            v.validate(&with(patch.clone(), &[])).await,
            Err(TokenError::IdToken(why.to_owned())),
            "{patch}"
        );
    }
    assert_eq!(
        v.validate(&with(json!({"typ": "Refresh"}), &[])).await,
        Err(TokenError::TokenType("claim typ \"Refresh\"".to_owned()))
    );
    // Keycloak (`typ: Bearer`), RFC 9068 (`typ: at+jwt` in the header), Cognito access tokens
    // and Entra/Okta/Auth0 shapes (no `typ` claim at all) pass.
    for (patch, drop) in [
        (json!({"typ": "Bearer"}), &[][..]),
        (json!({}), &["typ"][..]),
        (json!({"token_use": "access"}), &["typ"][..]),
        (
            json!({"scp": ["mcp.read"], "oid": "o-1", "tid": "t-1"}),
            &["typ"][..],
        ),
    ] {
        let token = with(patch.clone(), drop);
        assert!(v.validate(&token).await.is_ok(), "{patch} without {drop:?}");
    }
}

#[tokio::test]
async fn a_token_without_a_subject_is_refused_with_what_to_change() {
    let idp = idp().await;
    let key = SigningKey::generate();
    publish(&idp, &key);
    let v = validator(&idp, ValidatorSettings::default());
    for sub in [json!(null), json!(""), json!(42)] {
        let mut c = claims(&idp);
        c["sub"] = sub.clone();
        let err = v.validate(&key.sign(&c, "JWT").unwrap()).await.unwrap_err();
        assert_eq!(err, TokenError::NoSubject, "sub {sub}");
        assert!(err.to_string().contains("`sub`"), "{err}");
    }
    let mut c = claims(&idp);
    c.as_object_mut().unwrap().remove("sub");
    assert_eq!(
        v.validate(&key.sign(&c, "JWT").unwrap()).await,
        Err(TokenError::NoSubject)
    );
}

#[tokio::test]
async fn a_tampered_signature_alg_none_and_hmac_with_the_public_key_are_refused() {
    let idp = idp().await;
    let key = SigningKey::generate();
    publish(&idp, &key);
    let v = validator(&idp, ValidatorSettings::default());
    let good = key.sign(&claims(&idp), "JWT").unwrap();
    // Change the payload, keep the signature.
    let parts: Vec<&str> = good.split('.').collect();
    let mut forged = claims(&idp);
    forged["groups"] = json!(["admins"]);
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(v.validate(&tampered).await, Err(TokenError::Signature));
    // alg: none, no signature.
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"x"}"#);
    let none_token = format!("{none_header}.{forged_payload}.");
    assert!(matches!(
        v.validate(&none_token).await,
        Err(TokenError::Malformed(_))
    ));
    // HS256 keyed with the published public key (the classic key-confusion attack).
    let public_json = serde_json::to_vec(key.public_jwk()).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid().to_owned());
    let hmac =
        jsonwebtoken::encode(&header, &forged, &EncodingKey::from_secret(&public_json)).unwrap();
    assert_eq!(
        v.validate(&hmac).await,
        Err(TokenError::Algorithm("HS256".to_owned()))
    );
    // Not a JWT at all (a registry API key's shape): the refusal says what to send instead.
    assert_eq!(v.validate("mcpgw_abc.def").await, Err(TokenError::NotAJwt));
}

#[tokio::test]
async fn an_unknown_kid_triggers_one_rate_limited_refresh_and_rotation_is_picked_up() {
    let idp = idp().await;
    let old = SigningKey::generate();
    publish(&idp, &old);
    let settings = ValidatorSettings {
        refresh_min_interval: Duration::from_millis(300),
        ..Default::default()
    };
    let v = validator(&idp, settings);
    v.validate(&old.sign(&claims(&idp), "JWT").unwrap())
        .await
        .unwrap();
    assert_eq!(v.jwks_fetches(&idp.issuer).await, 1);
    // Right after a fetch, an unknown kid does not trigger another one.
    let stranger_early = SigningKey::generate().sign(&claims(&idp), "JWT").unwrap();
    assert!(matches!(
        v.validate(&stranger_early).await,
        Err(TokenError::UnknownKey(_))
    ));
    assert_eq!(v.jwks_fetches(&idp.issuer).await, 1);
    tokio::time::sleep(Duration::from_millis(350)).await;
    // Later, a token with a kid nobody published: one refresh, then refused; a burst adds no
    // fetch.
    let stranger = SigningKey::generate();
    let bogus = stranger.sign(&claims(&idp), "JWT").unwrap();
    for _ in 0..20 {
        assert!(matches!(
            v.validate(&bogus).await,
            Err(TokenError::UnknownKey(_))
        ));
    }
    assert_eq!(
        v.jwks_fetches(&idp.issuer).await,
        2,
        "refreshes are rate-limited"
    );
    // The IdP rotates to a new key: after the interval, the new kid is fetched and accepted.
    let new = SigningKey::generate();
    publish(&idp, &new);
    tokio::time::sleep(Duration::from_millis(350)).await;
    v.validate(&new.sign(&claims(&idp), "at+jwt").unwrap())
        .await
        .unwrap();
    assert_eq!(v.jwks_fetches(&idp.issuer).await, 3);
    // Tokens of the old key still validate from the cache.
    v.validate(&old.sign(&claims(&idp), "JWT").unwrap())
        .await
        .unwrap();
    assert_eq!(v.jwks_fetches(&idp.issuer).await, 3);
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_idp_is_down() {
    let idp = idp().await;
    let key = SigningKey::generate();
    publish(&idp, &key);
    let settings = ValidatorSettings {
        jwks_ttl: Duration::from_millis(100),
        refresh_min_interval: Duration::from_millis(50),
        ..Default::default()
    };
    let v = validator(&idp, settings);
    v.validate(&key.sign(&claims(&idp), "JWT").unwrap())
        .await
        .unwrap();
    idp.up.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The cache is stale and the refresh fails: the cached key still verifies.
    v.validate(&key.sign(&claims(&idp), "JWT").unwrap())
        .await
        .unwrap();
    assert!(
        idp.hits.load(Ordering::SeqCst) >= 2,
        "a refresh was attempted"
    );
    // A validator that never reached the IdP says so.
    let cold = validator(&idp, ValidatorSettings::default());
    assert!(matches!(
        cold.validate(&key.sign(&claims(&idp), "JWT").unwrap())
            .await,
        Err(TokenError::KeysUnavailable(_))
    ));
}

#[tokio::test]
async fn a_wrong_header_type_or_a_missing_kid_is_refused() {
    let idp = idp().await;
    let key = SigningKey::generate();
    publish(&idp, &key);
    let v = validator(&idp, ValidatorSettings::default());
    assert!(matches!(
        v.validate(&key.sign(&claims(&idp), "logout+jwt").unwrap())
            .await,
        Err(TokenError::TokenType(_))
    ));
    let der = key.pkcs8_der().to_vec();
    let header = Header::new(Algorithm::ES256);
    let no_kid =
        jsonwebtoken::encode(&header, &claims(&idp), &EncodingKey::from_ec_der(&der)).unwrap();
    assert_eq!(v.validate(&no_kid).await, Err(TokenError::NoKeyId));
}

#[tokio::test]
async fn a_resource_server_accepts_its_own_resource_urls_as_audiences_and_nothing_near_them() {
    let idp = idp().await;
    let key = SigningKey::generate();
    publish(&idp, &key);
    let base = "https://gw.example.com";
    let v = TokenValidator::new(
        vec![IssuerConfig {
            resource_base: Some(base.to_owned()),
            ..config(&idp)
        }],
        ValidatorSettings::default(),
    )
    .unwrap();
    let with_aud = |aud: Value| {
        let mut c = claims(&idp);
        c["aud"] = aud;
        key.sign(&c, "JWT").unwrap()
    };
    for ok in [
        json!("mcp-gateway"),
        json!("https://gw.example.com/mcp"),
        json!(["https://gw.example.com/weather/mcp"]),
        json!(["other", "https://gw.example.com/mcp"]),
    ] {
        let t = v.validate(&with_aud(ok.clone())).await;
        assert!(t.is_ok(), "{ok}: {t:?}");
    }
    for bad in [
        json!("https://gw.example.com"),
        json!("https://gw.example.com/a/b/mcp"),
        json!("https://gw.example.com.evil.example/mcp"),
        json!("https://gw.example.com//mcp"),
        json!(["someone-else"]),
    ] {
        assert_eq!(
            v.validate(&with_aud(bad.clone())).await,
            Err(TokenError::Audience),
            "{bad}"
        );
    }
    assert_eq!(
        resource_audience(base, "https://gw.example.com/mcp"),
        Some(ResourceAudience::Aggregated)
    );
    assert_eq!(
        resource_audience(base, "https://gw.example.com/weather/mcp"),
        Some(ResourceAudience::Server("weather"))
    );
    assert_eq!(resource_audience(base, "mcp-gateway"), None);
}

#[test]
fn symmetric_algorithms_and_empty_audiences_are_refused_in_config() {
    let base = IssuerConfig {
        issuer: "https://idp".to_owned(),
        jwks_uri: String::new(),
        audiences: vec!["a".to_owned()],
        algorithms: vec![Algorithm::HS256],
        token_types: vec![],
        groups_claim: "groups".to_owned(),
        revocations_url: String::new(),
        resource_base: None,
    };
    assert!(TokenValidator::new(vec![base.clone()], ValidatorSettings::default()).is_err());
    let no_aud = IssuerConfig {
        audiences: vec![],
        algorithms: default_algorithms(),
        ..base
    };
    assert!(TokenValidator::new(vec![no_aud], ValidatorSettings::default()).is_err());
}
