//! The browser login against a real Keycloak (on PostgreSQL, started by `scripts/test.sh`):
//! the realm, client and user are made through Keycloak's admin API, then the login is driven
//! over HTTP as a browser does it (redirects, Keycloak's login form, the callback).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, spawn_with};
use crate::oidc::sign_in_with;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with `make test` (it starts Keycloak)")
    })
}

async fn admin_token(base: &str) -> String {
    let r: Value = reqwest::Client::new()
        .post(format!(
            "{base}/realms/master/protocol/openid-connect/token"
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", "admin"),
            ("password", &env("MCPGW_TEST_KEYCLOAK_ADMIN_PASSWORD")),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"]
        .as_str()
        .expect("an admin token")
        .to_owned()
}

async fn admin(base: &str, token: &str, method: Method, path: &str, body: Value) {
    let r = reqwest::Client::new()
        .request(method, format!("{base}/admin/realms{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_login_through_keycloak_starts_a_session_with_its_groups() {
    let kc = env("MCPGW_TEST_KEYCLOAK_URL");
    let token = admin_token(&kc).await;
    let realm = format!("login-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    admin(
        &kc,
        &token,
        Method::POST,
        "",
        json!({"realm": realm, "enabled": true}),
    )
    .await;
    admin(
        &kc,
        &token,
        Method::POST,
        &format!("/{realm}/groups"),
        json!({"name": "mcp-users"}),
    )
    .await;
    admin(
        &kc,
        &token,
        Method::POST,
        &format!("/{realm}/users"),
        json!({"username": "alice", "enabled": true, "email": "alice@example.test", "emailVerified": true,
               "firstName": "Alice", "lastName": "Test", "groups": ["/mcp-users"],
               "credentials": [{"type": "password", "value": "alice-password", "temporary": false}]}),
    )
    .await;
    admin(
        &kc,
        &token,
        Method::POST,
        &format!("/{realm}/clients"),
        json!({"clientId": "mcpgw-web", "secret": "web-secret", "publicClient": false,
               "standardFlowEnabled": true, "directAccessGrantsEnabled": false,
               "redirectUris": ["http://127.0.0.1:*"], "attributes": {"pkce.code.challenge.method": "S256",
               "post.logout.redirect.uris": "http://127.0.0.1:*"},
               "protocolMappers": [{"name": "groups", "protocol": "openid-connect",
                 "protocolMapper": "oidc-group-membership-mapper",
                 "config": {"claim.name": "groups", "full.path": "false", "access.token.claim": "true",
                            "id.token.claim": "true", "userinfo.token.claim": "true"}}]}),
    )
    .await;
    let issuer = format!("{kc}/realms/{realm}");
    let app = spawn_with(
        Backend::Sqlite,
        &format!(
            "[group_scopes]\nmcp-users = [\"weather/read\"]\n\
             [[oidc.providers]]\nid = \"keycloak\"\nname = \"Keycloak\"\nissuer = \"{issuer}\"\n\
             client_id = \"mcpgw-web\"\nscopes = [\"openid\", \"profile\"]\n\
             [oidc.providers.client_secret]\nvalue = \"web-secret\"\n"
        ),
    )
    .await;
    let b = app.browser();
    // Keycloak's login page, its form, the redirect back with the code, the session.
    let callback = sign_in_with(&app, &b, "keycloak", "alice", "alice-password").await;
    let r = b.get(&callback).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let me = b.get("/api/v1/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["username"], "alice");
    assert_eq!(me.body["provider"], "keycloak");
    assert_eq!(me.body["groups"], json!(["mcp-users"]));
    assert_eq!(me.body["scopes"], json!(["weather/read"]));
}
