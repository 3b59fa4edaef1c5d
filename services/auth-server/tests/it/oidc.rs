//! OIDC login against the second OIDC provider (`scripts/deps/oidc.sh`, panva's oidc-provider):
//! authorization code with PKCE, state and nonce, groups from the ID token, RP-initiated logout.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, Browser, Reply, TestApp, spawn_with};

both_backends!(
    an_oidc_login_with_pkce_starts_a_session_with_the_providers_groups,
    logout_of_an_oidc_session_ends_it_at_the_provider_with_the_id_token_hint,
    a_callback_with_a_wrong_state_or_no_login_in_progress_starts_no_session,
    a_callback_is_used_once,
    a_denied_login_and_an_unreachable_provider_answer_a_page_not_a_session,
);

/// The issuer of the running test provider.
pub(crate) fn oidc_url() -> String {
    std::env::var("MCPGW_TEST_OIDC_URL").unwrap_or_else(|_| {
        panic!(
            "MCPGW_TEST_OIDC_URL is not set: run the suite with `make test`, or start the provider with \
             `scripts/deps/oidc.sh install && scripts/deps/oidc.sh start` and export the issuer it prints \
             as MCPGW_TEST_OIDC_URL"
        )
    })
}

pub(crate) fn provider_toml(issuer: &str) -> String {
    format!(
        "[group_scopes]\nmcp-users = [\"weather/read\"]\n\
         [[oidc.providers]]\nid = \"second\"\nname = \"Second IdP\"\nissuer = \"{issuer}\"\n\
         client_id = \"mcpgw-web\"\nscopes = [\"openid\", \"profile\", \"groups\"]\n\
         [oidc.providers.client_secret]\nvalue = \"mcpgw-web-secret\"\n"
    )
}

async fn spawn_oidc(backend: Backend) -> TestApp {
    spawn_with(backend, &provider_toml(&oidc_url())).await
}

fn resolve(base: &str, location: &str) -> String {
    url::Url::parse(base)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

/// Starts a login at the auth-server and walks the provider's pages as a browser would, up to
/// the redirect back to the auth-server. Returns that callback path (with its query).
async fn sign_in_at_provider(app: &TestApp, b: &Browser, password: &str) -> String {
    sign_in_with(app, b, "second", "alice", password).await
}

/// [`sign_in_at_provider`] for any configured provider and user: follows the provider's
/// redirects, fills its login form (any provider whose form posts `username` and `password`,
/// Keycloak's included) and stops at the redirect back to the auth-server.
pub(crate) async fn sign_in_with(
    app: &TestApp,
    b: &Browser,
    provider: &str,
    username: &str,
    password: &str,
) -> String {
    sign_in_returning(app, b, provider, username, password, "/api/v1/me").await
}

/// [`sign_in_with`], asking to come back to `return_to` after the callback.
pub(crate) async fn sign_in_returning(
    app: &TestApp,
    b: &Browser,
    provider: &str,
    username: &str,
    password: &str,
    return_to: &str,
) -> String {
    let return_to: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    let r = b
        .get(&format!("/login/oidc/{provider}?return_to={return_to}"))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let mut location = r.header("location").unwrap();
    let idp = Browser::new("");
    for _ in 0..20 {
        if location.starts_with(&app.base) {
            return location[app.base.len()..].to_owned();
        }
        let r = idp.get(&location).await;
        if r.status.is_redirection() {
            location = resolve(&location, &r.header("location").unwrap());
            continue;
        }
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let action = r
            .text
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .map(|a| a.replace("&amp;", "&"))
            .unwrap_or_else(|| panic!("a login form at the provider: {}", r.text));
        let r = idp
            .post_form(
                &resolve(&location, &action),
                &[("username", username), ("password", password)],
            )
            .await;
        assert!(r.status.is_redirection(), "{}", r.text);
        location = resolve(&location, &r.header("location").unwrap());
    }
    panic!("the provider never sent the browser back");
}

fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn an_oidc_login_with_pkce_starts_a_session_with_the_providers_groups(backend: Backend) {
    let app = spawn_oidc(backend).await;
    let b = app.browser();
    let page = b.get("/login").await;
    assert!(
        page.text.contains("Sign in with Second IdP"),
        "{}",
        page.text
    );
    // The authorization request carries PKCE (S256), state and nonce.
    let probe = app.browser();
    let r = probe.get("/login/oidc/second").await;
    let auth = url::Url::parse(&r.header("location").unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = auth.query_pairs().into_owned().collect();
    assert!(auth.as_str().starts_with(&oidc_url()), "{auth}");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 16 && q["nonce"].len() >= 16);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "mcpgw-web");
    assert_eq!(
        q["redirect_uri"],
        format!("{}/callback", app.running.public_url)
    );
    assert!(!auth.as_str().contains("mcpgw-web-secret"));
    let pending = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("mcpgw_oidc="))
        .expect("the login in progress is in a cookie");
    assert!(
        pending.contains("HttpOnly") && pending.contains("SameSite=Lax"),
        "{pending}"
    );
    assert!(
        !pending.contains(&q["state"]),
        "the state is sealed, not readable"
    );

    let callback = sign_in_at_provider(&app, &b, "alice-password").await;
    assert!(callback.starts_with("/callback?"), "{callback}");
    let r = b.get(&callback).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.header("location").as_deref(), Some("/api/v1/me"));
    assert!(
        b.cookie("mcpgw_oidc").is_none(),
        "the login cookie is cleared"
    );
    let me = b.get("/api/v1/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["subject"], "second:alice");
    assert_eq!(me.body["username"], "alice");
    assert_eq!(me.body["provider"], "second");
    assert_eq!(me.body["groups"], json!(["mcp-users"]));
    assert_eq!(me.body["scopes"], json!(["weather/read"]));
    assert_eq!(me.body["admin"], false);
    // The OIDC user mints tokens like anyone else.
    let t = b.mint(json!({"scopes": ["weather/read"]})).await;
    assert_eq!(t.status, StatusCode::CREATED, "{}", t.text);
    assert_eq!(
        jwt_claims(t.body["access_token"].as_str().unwrap())["sub"],
        "second:alice"
    );
    // The ID token is kept sealed, never in clear.
    let id = b.cookie("mcpgw_session").unwrap();
    let stored = app
        .store()
        .get_session(&auth_server::session::hash_id(&id))
        .await
        .unwrap()
        .unwrap();
    let sealed = stored.id_token.expect("the ID token is kept for logout");
    assert!(!sealed.ciphertext.starts_with("eyJ"));
}

async fn logout_of_an_oidc_session_ends_it_at_the_provider_with_the_id_token_hint(
    backend: Backend,
) {
    let app = spawn_oidc(backend).await;
    let b = app.browser();
    let callback = sign_in_at_provider(&app, &b, "alice-password").await;
    assert_eq!(b.get(&callback).await.status, StatusCode::SEE_OTHER);
    let csrf = b.csrf().await;
    let r = b
        .send(
            b.request(Method::POST, "/logout")
                .header("x-csrf-token", csrf),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let to = url::Url::parse(&r.header("location").unwrap()).unwrap();
    assert!(to.as_str().starts_with(&oidc_url()), "{to}");
    let q: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "mcpgw-web");
    let hint = jwt_claims(&q["id_token_hint"]);
    assert_eq!(hint["iss"], json!(oidc_url()));
    assert_eq!(hint["aud"], "mcpgw-web");
    assert_eq!(hint["sub"], "alice");
    assert_eq!(b.get("/api/v1/me").await.status, StatusCode::UNAUTHORIZED);
    // The provider accepts the request (its confirmation page).
    let r = Browser::new("").get(to.as_str()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn a_callback_with_a_wrong_state_or_no_login_in_progress_starts_no_session(backend: Backend) {
    let app = spawn_oidc(backend).await;
    let b = app.browser();
    let callback = sign_in_at_provider(&app, &b, "alice-password").await;
    let url = url::Url::parse(&format!("{}{callback}", app.base)).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    let forged = format!(
        "/callback?code={}&state=forged&iss={}",
        q["code"],
        url::form_urlencoded::byte_serialize(q["iss"].as_bytes()).collect::<String>()
    );
    let r: Reply = b.get(&forged).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(b.cookie("mcpgw_session").is_none());
    // Another browser (no login cookie) with the genuine callback: refused too.
    let other = app.browser();
    let r = other.get(&callback).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(other.cookie("mcpgw_session").is_none());
    let r = other.get("/callback?code=x&state=y&extra=1").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn a_callback_is_used_once(backend: Backend) {
    let app = spawn_oidc(backend).await;
    let b = app.browser();
    let callback = sign_in_at_provider(&app, &b, "alice-password").await;
    let pending = b.cookie("mcpgw_oidc").unwrap();
    assert_eq!(b.get(&callback).await.status, StatusCode::SEE_OTHER);
    // Replaying the callback with the old login cookie: the code is spent at the provider.
    let replay = app.browser();
    replay.set_cookie("mcpgw_oidc", &pending);
    let r = replay.get(&callback).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert!(replay.cookie("mcpgw_session").is_none());
}

async fn a_denied_login_and_an_unreachable_provider_answer_a_page_not_a_session(backend: Backend) {
    let app = spawn_oidc(backend).await;
    let b = app.browser();
    let r = b.get("/login/oidc/second").await;
    let auth = url::Url::parse(&r.header("location").unwrap()).unwrap();
    let state: String = auth
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let r = b
        .get(&format!(
            "/callback?error=access_denied&error_description=%3Cscript%3E&state={state}"
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.text.contains("access_denied"));
    assert!(!r.text.contains("<script>"), "the description is escaped");
    assert!(b.cookie("mcpgw_session").is_none());
    let r = b.get("/login/oidc/nobody").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let down = spawn_with(backend, &provider_toml("http://127.0.0.1:9/realms/gone")).await;
    let r = down.browser().get("/login/oidc/second").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert!(r.text.contains("discovery"), "{}", r.text);
    // Password sign-in still works while the provider is down.
    let admin = down.browser();
    assert_eq!(
        admin.login("admin", &down.admin_password).await.status,
        StatusCode::SEE_OTHER
    );
}
