//! The browser login against a real Keycloak (on PostgreSQL, started by `scripts/test.sh`):
//! the realm, client and user are made by mcpgw-setup from a spec, then the login is driven
//! over HTTP as a browser does it (redirects, Keycloak's login form, the callback).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, spawn_with};
use crate::oidc::sign_in_with;

/// A realm (made by mcpgw-setup from a spec) with group `mcp-users`, a dev user `alice` in it,
/// and the web client `mcpgw-web` (authorization code with PKCE, any loopback port) whose
/// tokens carry `groups`.
const SPEC: &str = r#"
[realm]
name = "login"

[[groups]]
name = "mcp-users"

[[clients]]
client_id = "mcpgw-web"
kind = "web"
redirect_uris = ["http://127.0.0.1:*"]
post_logout_redirect_uris = ["http://127.0.0.1:*"]
mappers = [{ type = "groups", name = "groups" }]

[[dev_users]]
username = "alice"
email = "alice@example.test"
first_name = "Alice"
last_name = "Test"
groups = ["mcp-users"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_login_through_keycloak_starts_a_session_with_its_groups() {
    let realm = mcpgw_test_support::keycloak::test_realm(SPEC, None).await;
    let web_secret = realm.client_secret("mcpgw-web").await.unwrap();
    let alice_password = realm.user_password("alice").await.unwrap();
    let issuer = realm.issuer();
    let app = spawn_with(
        Backend::Sqlite,
        &format!(
            "[group_scopes]\nmcp-users = [\"weather/read\"]\n\
             [[oidc.providers]]\nid = \"keycloak\"\nname = \"Keycloak\"\nissuer = \"{issuer}\"\n\
             client_id = \"mcpgw-web\"\nscopes = [\"openid\", \"profile\"]\n\
             [oidc.providers.client_secret]\nvalue = \"{web_secret}\"\n"
        ),
    )
    .await;
    let b = app.browser();
    // Keycloak's login page, its form, the redirect back with the code, the session.
    let callback = sign_in_with(&app, &b, "keycloak", "alice", &alice_password).await;
    let r = b.get(&callback).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let me = b.get("/api/v1/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["username"], "alice");
    assert_eq!(me.body["provider"], "keycloak");
    assert_eq!(me.body["groups"], json!(["mcp-users"]));
    assert_eq!(me.body["scopes"], json!(["weather/read"]));
    realm.delete().await.unwrap();
}
