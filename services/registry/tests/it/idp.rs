//! Tokens from real identity providers: Keycloak (on PostgreSQL, as in production) and a second
//! OIDC provider (panva's oidc-provider), both started by `scripts/test.sh`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, server_body, spawn_with, unique_name};

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

/// Keycloak's admin REST API, authenticated as the bootstrap admin.
struct KeycloakAdmin {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl KeycloakAdmin {
    async fn connect() -> Self {
        let base = env("MCPGW_TEST_KEYCLOAK_URL", "keycloak.sh start");
        let password = env(
            "MCPGW_TEST_KEYCLOAK_ADMIN_PASSWORD",
            "keycloak.sh admin-password",
        );
        let http = reqwest::Client::new();
        let r: Value = http
            .post(format!(
                "{base}/realms/master/protocol/openid-connect/token"
            ))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", "admin"),
                ("password", &password),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = r["access_token"]
            .as_str()
            .expect("an admin token")
            .to_owned();
        Self { base, token, http }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/admin/realms{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn create(&self, path: &str, body: Value) {
        let (status, body) = self.send(Method::POST, path, Some(body)).await;
        assert!(status.is_success(), "POST {path}: {status} {body}");
    }

    async fn first_id(&self, path: &str) -> String {
        let (_, list) = self.send(Method::GET, path, None).await;
        list[0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("GET {path}: {list}"))
            .to_owned()
    }
}

/// A realm with a group, a user in it, and a confidential client whose tokens carry the
/// registry's audience and the `groups` claim (as the setup binary will configure).
async fn realm(kc: &KeycloakAdmin, audience: &str) -> String {
    let realm = unique_name("t").replace('_', "-");
    kc.create("", json!({"realm": realm, "enabled": true}))
        .await;
    kc.create(
        &format!("/{realm}/groups"),
        json!({"name": "registry-publishers"}),
    )
    .await;
    kc.create(
        &format!("/{realm}/users"),
        json!({"username": "alice", "enabled": true, "email": "alice@example.test", "emailVerified": true,
               "firstName": "Alice", "lastName": "Test", "groups": ["/registry-publishers"],
               "credentials": [{"type": "password", "value": "alice-password", "temporary": false}]}),
    )
    .await;
    kc.create(
        &format!("/{realm}/clients"),
        json!({"clientId": "mcpgw-m2m", "secret": "m2m-secret", "publicClient": false,
               "serviceAccountsEnabled": true, "standardFlowEnabled": false, "directAccessGrantsEnabled": true,
               "protocolMappers": [
                 {"name": "aud", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
                  "config": {"included.custom.audience": audience, "access.token.claim": "true"}},
                 {"name": "groups", "protocol": "openid-connect", "protocolMapper": "oidc-group-membership-mapper",
                  "config": {"claim.name": "groups", "full.path": "false", "access.token.claim": "true"}}]}),
    )
    .await;
    // The client's service account joins the group too, so M2M tokens carry it.
    let client = kc
        .first_id(&format!("/{realm}/clients?clientId=mcpgw-m2m"))
        .await;
    let (_, account) = kc
        .send(
            Method::GET,
            &format!("/{realm}/clients/{client}/service-account-user"),
            None,
        )
        .await;
    let group = kc
        .first_id(&format!("/{realm}/groups?search=registry-publishers"))
        .await;
    let (status, _) = kc
        .send(
            Method::PUT,
            &format!(
                "/{realm}/users/{}/groups/{group}",
                account["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert!(status.is_success());
    realm
}

async fn token(url: &str, form: &[(&str, &str)]) -> String {
    let r: Value = reqwest::Client::new()
        .post(url)
        .form(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {r}"))
        .to_owned()
}

fn publishers_scope() -> Value {
    json!({"name": "publishers", "group_mappings": ["registry-publishers"],
           "ui_permissions": {"list_service": ["all"], "register_service": ["all"]}})
}

#[tokio::test]
async fn keycloak_client_credentials_and_user_tokens_are_accepted_with_groups_mapped_to_scopes() {
    let kc = KeycloakAdmin::connect().await;
    let realm = realm(&kc, "mcpgw-registry").await;
    let issuer = format!("{}/realms/{realm}", kc.base);
    let app = registry_trusting(&issuer, "mcpgw-registry", publishers_scope()).await;
    let token_url = format!("{issuer}/protocol/openid-connect/token");

    let m2m = token(
        &token_url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "mcpgw-m2m"),
            ("client_secret", "m2m-secret"),
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

    let user = token(
        &token_url,
        &[
            ("grant_type", "password"),
            ("client_id", "mcpgw-m2m"),
            ("client_secret", "m2m-secret"),
            ("username", "alice"),
            ("password", "alice-password"),
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
            ("client_secret", "m2m-secret"),
            ("username", "alice"),
            ("password", "alice-password"),
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
    let m2m = token(
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

    let kc = KeycloakAdmin::connect().await;
    let realm = realm(&kc, "mcpgw-registry").await;
    let issuer = format!("{}/realms/{realm}", kc.base);
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
}
