//! Tokens from real identity providers: Keycloak (on PostgreSQL, as in production) and a second
//! OIDC provider (panva's oidc-provider), both started by `scripts/test.sh`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use mcpgw_test_support::keycloak::{self as fixture, FixtureRealm};

use crate::helpers::{Backend, TestApp, server_body, spawn_with};

fn env(name: &str, start: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with `make test`, or start it with `scripts/deps/{start}` and export its URL")
    })
}

/// A registry trusting `issuer` for `audience`, with one scope document.
async fn registry_trusting(issuer: &str, audience: &str, scope: Value) -> TestApp {
    let app = spawn_with(
        Backend::Sqlite,
        &format!("[auth]\n[[auth.issuers]]\nissuer = \"{issuer}\"\naudiences = [\"{audience}\"]\n"),
    )
    .await;
    let name = scope["name"].as_str().unwrap().to_owned();
    let r = app
        .call(Method::PUT, &format!("/api/v1/scopes/{name}"), Some(scope))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    app
}

/// A realm (made by mcpgw-setup from a spec) with a group, a dev user `alice` in it, and an
/// m2m client `mcpgw-m2m` whose tokens carry `audience` and the `groups` claim, whose service
/// account is in the group too (so M2M tokens carry it), and which may use the password grant
/// (for alice's user tokens).
async fn realm(audience: &str) -> FixtureRealm {
    let spec = format!(
        r#"
[realm]
name = "t"

[[groups]]
name = "registry-publishers"

[[clients]]
client_id = "mcpgw-m2m"
kind = "m2m"
password_grant = true
service_account_groups = ["registry-publishers"]
mappers = [
  {{ type = "audience", name = "aud", audience = "{audience}" }},
  {{ type = "groups", name = "groups" }},
]

[[dev_users]]
username = "alice"
email = "alice@example.test"
first_name = "Alice"
last_name = "Test"
groups = ["registry-publishers"]
"#
    );
    fixture::test_realm(&spec, None).await
}

fn publishers_scope() -> Value {
    json!({"name": "publishers", "group_mappings": ["registry-publishers"],
           "ui_permissions": {"list_service": ["all"], "register_service": ["all"]}})
}

#[tokio::test]
async fn keycloak_client_credentials_and_user_tokens_are_accepted_with_groups_mapped_to_scopes() {
    let realm = realm("mcpgw-registry").await;
    let issuer = realm.issuer();
    let app = registry_trusting(&issuer, "mcpgw-registry", publishers_scope()).await;
    let token_url = format!("{issuer}/protocol/openid-connect/token");
    let m2m_secret = realm.client_secret("mcpgw-m2m").await.unwrap();
    let alice_password = realm.user_password("alice").await.unwrap();

    let m2m = fixture::access_token(
        &token_url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "mcpgw-m2m"),
            ("client_secret", m2m_secret.as_str()),
        ],
    )
    .await;
    let me = app
        .call_as(Some(&m2m), Method::GET, "/api/v1/me", None, &[])
        .await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(
        me.body["permissions"],
        json!(["servers:read", "servers:create"])
    );
    let r = app
        .call_as(
            Some(&m2m),
            Method::POST,
            "/api/v1/servers",
            Some(server_body("from-keycloak")),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    let user = fixture::access_token(
        &token_url,
        &[
            ("grant_type", "password"),
            ("client_id", "mcpgw-m2m"),
            ("client_secret", m2m_secret.as_str()),
            ("username", "alice"),
            ("password", alice_password.as_str()),
        ],
    )
    .await;
    let me = app
        .call_as(Some(&user), Method::GET, "/api/v1/me", None, &[])
        .await;
    assert_eq!(
        (me.body["kind"].as_str(), me.body["display_name"].as_str()),
        (Some("user"), Some("alice")),
        "{:?}",
        me.body
    );
    // Keycloak's ID token for the same login is not an access token.
    let id_token: Value = reqwest::Client::new()
        .post(&token_url)
        .form(&[
            ("grant_type", "password"),
            ("client_id", "mcpgw-m2m"),
            ("client_secret", m2m_secret.as_str()),
            ("username", "alice"),
            ("password", alice_password.as_str()),
            ("scope", "openid"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = app
        .call_as(
            Some(id_token["id_token"].as_str().unwrap()),
            Method::GET,
            "/api/v1/me",
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    // A registry expecting another audience refuses Keycloak's token.
    let other = registry_trusting(&issuer, "some-other-api", publishers_scope()).await;
    let r = other
        .call_as(Some(&m2m), Method::GET, "/api/v1/me", None, &[])
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    realm.delete().await.unwrap();
}

#[tokio::test]
async fn a_second_oidc_provider_works_through_the_generic_path_with_token_scopes() {
    let issuer = env("MCPGW_TEST_OIDC_URL", "oidc.sh start");
    // The token's scope `mcp` names a scope document directly.
    let scope = json!({"name": "mcp", "ui_permissions": {"list_service": ["all"]}});
    let app = registry_trusting(&issuer, "mcp-gateway", scope).await;
    let discovery: Value = reqwest::get(format!("{issuer}/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_url = discovery["token_endpoint"].as_str().unwrap();
    let m2m = fixture::access_token(
        token_url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "mcpgw-m2m"),
            ("client_secret", "mcpgw-m2m-secret"),
            ("scope", "mcp"),
        ],
    )
    .await;
    let me = app
        .call_as(Some(&m2m), Method::GET, "/api/v1/me", None, &[])
        .await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body["permissions"], json!(["servers:read"]));
    assert_eq!(me.body["kind"], "service");
    let r = app
        .call_as(
            Some(&m2m),
            Method::POST,
            "/api/v1/servers",
            Some(server_body("nope")),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// The classic key-confusion attack against real Keycloak keys: take the realm's published RSA
/// public key (as the PEM an attacker would), use it as an HS256 secret, and forge claims.
#[tokio::test]
async fn hs256_signed_with_keycloaks_rsa_public_key_is_refused() {
    use aws_lc_rs::encoding::AsDer;
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    let realm = realm("mcpgw-registry").await;
    let issuer = realm.issuer();
    let app = registry_trusting(&issuer, "mcpgw-registry", publishers_scope()).await;
    let jwks: Value = reqwest::get(format!("{issuer}/protocol/openid-connect/certs"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rsa = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kty"] == "RSA" && k["use"] == "sig")
        .expect("an RSA signing key");
    let n = URL_SAFE_NO_PAD.decode(rsa["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(rsa["e"].as_str().unwrap()).unwrap();
    let der = aws_lc_rs::rsa::PublicKeyComponents { n, e }
        .as_der()
        .unwrap();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der.as_ref())
    );
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": issuer, "sub": "attacker", "aud": "mcpgw-registry", "exp": now + 300,
                        "typ": "Bearer", "groups": ["registry-publishers"]});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = rsa["kid"].as_str().map(str::to_owned);
    for secret in [pem.as_bytes(), der.as_ref()] {
        let forged = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap();
        let r = app
            .call_as(Some(&forged), Method::GET, "/api/v1/me", None, &[])
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "invalid_token"),
            "{:?}",
            r.body
        );
        assert!(
            r.body["detail"].as_str().unwrap().contains("HS256"),
            "{:?}",
            r.body
        );
    }
    realm.delete().await.unwrap();
}

/// Two trusted issuers may hand out the same `sub`: each is its own principal (and audit
/// actor); a token without a `sub` is nobody and is refused.
#[tokio::test]
async fn principals_are_keyed_by_issuer_and_subject_and_a_token_needs_a_subject() {
    use mcpgw_test_support::TestIssuer;
    let (one, two) = (TestIssuer::start().await, TestIssuer::start().await);
    let issuers: String = [&one, &two]
        .iter()
        .map(|i| {
            format!(
                "[[auth.issuers]]\nissuer = \"{}\"\naudiences = [\"mcpgw-registry\"]\n",
                i.issuer
            )
        })
        .collect();
    let app = spawn_with(Backend::Sqlite, &format!("[auth]\n{issuers}")).await;
    let mut subjects = Vec::new();
    for idp in [&one, &two] {
        let token = idp.sign(&idp.claims("alice", &[], "mcpgw-registry"));
        let me = app
            .call_as(Some(&token), Method::GET, "/api/v1/me", None, &[])
            .await;
        assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
        assert_eq!(me.body["subject"], format!("jwt:{}#alice", idp.issuer));
        subjects.push(me.body["subject"].clone());
    }
    assert_ne!(subjects[0], subjects[1]);

    let mut claims = one.claims("alice", &[], "mcpgw-registry");
    claims.as_object_mut().unwrap().remove("sub");
    let r = app
        .call_as(
            Some(&one.sign(&claims)),
            Method::GET,
            "/api/v1/me",
            None,
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "invalid_token"),
        "{:?}",
        r.body
    );
    assert!(
        r.body["detail"].as_str().unwrap().contains("`sub`"),
        "{:?}",
        r.body
    );
}
