//! Dynamic Client Registration (RFC 7591) and the code flow of a registered MCP client: the
//! policy and limits of `/oauth/register`, the page the user allows the sign-in on, loopback
//! redirects on any port, and the administrators' list and revocation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgw_core::time::Timestamp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, Browser, Reply, TestApp, hidden_field, pkce, spawn_with};

both_backends!(
    an_mcp_client_registers_and_signs_in_once_the_user_allows_it,
    a_user_who_denies_sends_access_denied_and_a_bad_csrf_token_issues_nothing,
    registration_refuses_what_the_policy_does_not_allow_with_rfc_7591_errors,
    registrations_past_a_limit_answer_429,
    administrators_list_and_revoke_clients_and_unused_clients_expire,
    a_resource_becomes_the_tokens_only_audience_and_must_be_a_gateway_endpoint,
    an_allowed_client_is_not_asked_again_until_the_resource_changes_or_the_user_revokes,
);

pub(crate) const REDIRECT: &str = "http://127.0.0.1:33418/callback";

async fn register(app: &TestApp, body: Value) -> Reply {
    let b = Browser::new(&app.base);
    b.send(b.request(Method::POST, "/oauth/register").json(&body))
        .await
}

pub(crate) async fn register_client(app: &TestApp) -> String {
    let r = register(
        app,
        json!({
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "Test <MCP> client",
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(r.body["token_endpoint_auth_method"], "none");
    assert_eq!(
        r.body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(r.body["redirect_uris"], json!([REDIRECT]));
    r.body["client_id"].as_str().unwrap().to_owned()
}

fn authorize_query(client: &str, redirect_uri: &str, challenge: &str) -> String {
    authorize_query_for(client, redirect_uri, challenge, None)
}

pub(crate) fn authorize_query_for(
    client: &str,
    redirect_uri: &str,
    challenge: &str,
    resource: Option<&str>,
) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.extend_pairs([
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect_uri),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("state", "st-9"),
    ]);
    if let Some(r) = resource {
        q.append_pair("resource", r);
    }
    q.finish()
}

/// Allows the sign-in on the page `b` is shown for `query`: the redirect with the code.
pub(crate) async fn allow(b: &Browser, query: &str) -> std::collections::HashMap<String, String> {
    let page = b.get(&format!("/oauth/authorize?{query}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let csrf = hidden_field(&page.text, "csrf_token").unwrap();
    let allowed = b
        .post_form(
            "/oauth/authorize",
            &[
                ("request", query),
                ("csrf_token", &csrf),
                ("decision", "allow"),
            ],
        )
        .await;
    location_query(&allowed)
}

fn audience_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["aud"].clone()
}

pub(crate) fn location_query(r: &Reply) -> std::collections::HashMap<String, String> {
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let location = r.header("location").unwrap();
    url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

async fn an_mcp_client_registers_and_signs_in_once_the_user_allows_it(backend: Backend) {
    let app = spawn_with(backend, "").await;
    let meta = app
        .browser()
        .get("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        meta.body["registration_endpoint"],
        format!("{}/oauth/register", app.running.public_url)
    );
    let oidc = app.browser().get("/.well-known/openid-configuration").await;
    assert_eq!(
        oidc.body["registration_endpoint"],
        meta.body["registration_endpoint"]
    );
    let api = app.browser().get("/api/v1/openapi.json").await;
    for (path, method) in [
        ("/oauth/register", "post"),
        ("/oauth/authorize", "get"),
        ("/oauth/authorize", "post"),
        ("/api/v1/oauth/clients", "get"),
        ("/api/v1/oauth/clients/{client_id}", "delete"),
        ("/api/v1/oauth/consents", "get"),
        ("/api/v1/oauth/consents/{client_id}", "delete"),
    ] {
        assert!(
            api.body["paths"][path][method].is_object(),
            "{method} {path} is documented"
        );
    }
    let client = register_client(&app).await;
    assert!(client.starts_with("dcr."), "{client}");

    // Without a session: to the login page, which comes back here.
    let (verifier, challenge) = pkce();
    // The client listens on another port than it registered: loopback ports do not count.
    let redirect = "http://127.0.0.1:51234/callback";
    let query = authorize_query(&client, redirect, &challenge);
    let anonymous = app
        .browser()
        .get(&format!("/oauth/authorize?{query}"))
        .await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert!(
        anonymous
            .header("location")
            .unwrap()
            .starts_with("/login?return_to="),
        "{:?}",
        anonymous.header("location")
    );

    let b = app.user("carol", &["team"]).await;
    let page = b.get(&format!("/oauth/authorize?{query}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text.contains("Test &lt;MCP&gt; client"),
        "{}",
        page.text
    );
    assert!(page.text.contains("127.0.0.1") && page.text.contains("carol"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:51234;"),
        "{csp}"
    );
    let csrf = hidden_field(&page.text, "csrf_token").unwrap();
    let request = hidden_field(&page.text, "request").unwrap();
    assert_eq!(request, query);
    let allowed = b
        .post_form(
            "/oauth/authorize",
            &[
                ("request", &request),
                ("csrf_token", &csrf),
                ("decision", "allow"),
            ],
        )
        .await;
    assert!(
        allowed.header("location").unwrap().starts_with(redirect),
        "{:?}",
        allowed.header("location")
    );
    let q = location_query(&allowed);
    assert_eq!(q["state"], "st-9");

    let token = Browser::new(&app.base)
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &q["code"]),
                ("redirect_uri", redirect),
                ("client_id", &client),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(token.status, StatusCode::OK, "{}", token.text);
    assert_eq!(token.body["expires_in"], 900);
    let payload = token.body["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    // For the gateway only: not for this server's token API.
    assert_eq!(claims["aud"], json!(["mcp-gateway"]));
    assert_eq!(claims["client_id"], client);
    assert_eq!(claims["sub"], "local:carol");

    // A registered client may rely on PKCE alone (the TypeScript SDK sends no state): the
    // answer then carries none.
    let (_, challenge) = pkce();
    let stateless = authorize_query(&client, redirect, &challenge).replace("&state=st-9", "");
    // (Allowed above: remembered, so straight back with the code.)
    let q = location_query(&b.get(&format!("/oauth/authorize?{stateless}")).await);
    assert!(q.contains_key("code") && !q.contains_key("state"), "{q:?}");

    // A redirect URI that differs in more than the port is refused without a redirect.
    let other = authorize_query(&client, "http://127.0.0.1:51234/other", &challenge);
    let refused = b.get(&format!("/oauth/authorize?{other}")).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.header("location").is_none());
}

async fn a_user_who_denies_sends_access_denied_and_a_bad_csrf_token_issues_nothing(
    backend: Backend,
) {
    let app = spawn_with(backend, "").await;
    let client = register_client(&app).await;
    let (_, challenge) = pkce();
    let query = authorize_query(&client, REDIRECT, &challenge);
    let b = app.user("dave", &[]).await;
    let page = b.get(&format!("/oauth/authorize?{query}")).await;
    let csrf = hidden_field(&page.text, "csrf_token").unwrap();
    let denied = b
        .post_form(
            "/oauth/authorize",
            &[
                ("request", &query),
                ("csrf_token", &csrf),
                ("decision", "deny"),
            ],
        )
        .await;
    let q = location_query(&denied);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st-9");
    assert!(!q.contains_key("code"));
    let forged = b
        .post_form(
            "/oauth/authorize",
            &[
                ("request", &query),
                ("csrf_token", "not-the-token"),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text);
    assert!(forged.header("location").is_none());
}

async fn registration_refuses_what_the_policy_does_not_allow_with_rfc_7591_errors(
    backend: Backend,
) {
    let app = spawn_with(
        backend,
        "[oauth.registration]\ncustom_schemes = [\"com.example.app\"]\n",
    )
    .await;
    for (body, error) in [
        (
            json!({"redirect_uris": ["http://app.example.com/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["org.other:/cb"]}),
            "invalid_redirect_uri",
        ),
        (json!({"client_name": "no uris"}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "grant_types": ["implicit"]}),
            "invalid_client_metadata",
        ),
    ] {
        let r = register(&app, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.body["error"], error, "{body}");
        assert!(r.body["error_description"].is_string());
    }
    let b = Browser::new(&app.base);
    let not_json = b
        .send(
            b.request(Method::POST, "/oauth/register")
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    assert_eq!(not_json.body["error"], "invalid_client_metadata");
    let custom = register(&app, json!({"redirect_uris": ["com.example.app:/oauth"]})).await;
    assert_eq!(custom.status, StatusCode::CREATED, "{}", custom.text);

    let off = spawn_with(backend, "[oauth.registration]\nenabled = false\n").await;
    let r = register(&off, json!({"redirect_uris": [REDIRECT]})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let meta = off
        .browser()
        .get("/.well-known/oauth-authorization-server")
        .await;
    assert!(meta.body.get("registration_endpoint").is_none());
}

async fn registrations_past_a_limit_answer_429(backend: Backend) {
    let app = spawn_with(
        backend,
        "[login]\ntrusted_proxy_hops = 1\n\
         [oauth.registration]\nregistrations_per_hour = 3\nregistrations_per_hour_per_address = 2\n",
    )
    .await;
    let from = |address: &str| {
        let b = app.browser_at(address);
        async move {
            b.send(
                b.request(Method::POST, "/oauth/register")
                    .json(&json!({"redirect_uris": [REDIRECT]})),
            )
            .await
        }
    };
    assert_eq!(from("198.51.100.1").await.status, StatusCode::CREATED);
    assert_eq!(from("198.51.100.1").await.status, StatusCode::CREATED);
    let third = from("198.51.100.1").await;
    assert_eq!(
        third.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        third.text
    );
    assert_eq!(third.body["error"], "temporarily_unavailable");
    let wait: u64 = third.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait), "{wait}");
    // Another address has its own allowance, until everyone's is used up.
    assert_eq!(from("198.51.100.2").await.status, StatusCode::CREATED);
    assert_eq!(
        from("198.51.100.3").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    let full = spawn_with(backend, "[oauth.registration]\nmax_clients = 1\n").await;
    assert_eq!(
        register(&full, json!({"redirect_uris": [REDIRECT]}))
            .await
            .status,
        StatusCode::CREATED
    );
    let r = register(&full, json!({"redirect_uris": [REDIRECT]})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["error"], "temporarily_unavailable");
}

async fn administrators_list_and_revoke_clients_and_unused_clients_expire(backend: Backend) {
    let app = spawn_with(backend, "").await;
    let client = register_client(&app).await;
    let admin = app.admin().await;
    let list = admin.api(Method::GET, "/api/v1/oauth/clients", None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_eq!(list.body["items"][0]["client_id"], client);
    assert_eq!(
        list.body["items"][0]["metadata"]["client_name"],
        "Test <MCP> client"
    );
    let user = app.user("erin", &[]).await;
    let r = user.api(Method::GET, "/api/v1/oauth/clients", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let path = format!("/api/v1/oauth/clients/{client}");
    assert_eq!(
        user.api(Method::DELETE, &path, None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        admin.api(Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    let again = admin.api(Method::DELETE, &path, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.code(), "oauth_client_not_found");
    let (_, challenge) = pkce();
    let query = authorize_query(&client, REDIRECT, &challenge);
    let gone = user.get(&format!("/oauth/authorize?{query}")).await;
    assert_eq!(gone.status, StatusCode::BAD_REQUEST);

    // A client unused for longer than unused_client_days is deleted by housekeeping.
    let stale = register_client(&app).await;
    let fresh = register_client(&app).await;
    let mut old = app.store().get_oauth_client(&stale).await.unwrap().unwrap();
    let audit = || auth_server::store::AuditRecord::new("test", None, "t", "t", "t", json!({}));
    app.store()
        .delete_oauth_client(&stale, &audit())
        .await
        .unwrap();
    let long_ago =
        Timestamp::from_datetime(Timestamp::now().as_datetime() - chrono::Duration::days(31));
    old.last_used_at = long_ago;
    old.created_at = long_ago;
    let limits = auth_server::store::RegistrationLimits {
        max_clients: 100,
        max_recent: 100,
        max_recent_per_address: 100,
        since: Timestamp::now(),
    };
    app.store()
        .insert_oauth_client(&old, limits, &audit())
        .await
        .unwrap();
    auth_server::app::housekeeping(&app.running.state).await;
    assert!(
        app.store()
            .get_oauth_client(&stale)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        app.store()
            .get_oauth_client(&fresh)
            .await
            .unwrap()
            .is_some()
    );
}

async fn a_resource_becomes_the_tokens_only_audience_and_must_be_a_gateway_endpoint(
    backend: Backend,
) {
    let app = spawn_with(backend, "[resource]\nurl = \"https://gw.example.com/\"\n").await;
    let client = register_client(&app).await;
    let b = app.user("frank", &[]).await;
    let exchange = |code: String, verifier: String, resource: Option<&'static str>| {
        let app = &app;
        let client = client.clone();
        async move {
            let mut fields = vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code),
                ("redirect_uri", REDIRECT.to_owned()),
                ("client_id", client),
                ("code_verifier", verifier),
            ];
            if let Some(r) = resource {
                fields.push(("resource", r.to_owned()));
            }
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Browser::new(&app.base)
                .post_form("/oauth/token", &fields)
                .await
        }
    };
    for (resource, aud) in [
        (
            "https://gw.example.com/weather/mcp",
            "https://gw.example.com/weather/mcp",
        ),
        ("https://gw.example.com/mcp", "https://gw.example.com/mcp"),
    ] {
        let (verifier, challenge) = pkce();
        let q = allow(
            &b,
            &authorize_query_for(&client, REDIRECT, &challenge, Some(resource)),
        )
        .await;
        let token = exchange(q["code"].clone(), verifier, Some(resource)).await;
        assert_eq!(token.status, StatusCode::OK, "{}", token.text);
        assert_eq!(
            audience_of(token.body["access_token"].as_str().unwrap()),
            json!([aud])
        );
    }
    // Sent again at the token endpoint, it must be the same.
    let (verifier, challenge) = pkce();
    let q = allow(
        &b,
        &authorize_query_for(
            &client,
            REDIRECT,
            &challenge,
            Some("https://gw.example.com/weather/mcp"),
        ),
    )
    .await;
    let other = exchange(
        q["code"].clone(),
        verifier,
        Some("https://gw.example.com/mcp"),
    )
    .await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST, "{}", other.text);
    assert_eq!(other.body["error"], "invalid_target");
    // Not an endpoint of the gateway: back to the client with invalid_target, before any page.
    for bad in [
        "https://gw.example.com",
        "https://other.example.com/mcp",
        "https://gw.example.com/a/b/mcp",
    ] {
        let (_, challenge) = pkce();
        let r = b
            .get(&format!(
                "/oauth/authorize?{}",
                authorize_query_for(&client, REDIRECT, &challenge, Some(bad))
            ))
            .await;
        assert_eq!(location_query(&r)["error"], "invalid_target", "{bad}");
    }
}

async fn an_allowed_client_is_not_asked_again_until_the_resource_changes_or_the_user_revokes(
    backend: Backend,
) {
    let app = spawn_with(backend, "[resource]\nurl = \"https://gw.example.com\"\n").await;
    let client = register_client(&app).await;
    let b = app.user("grace", &[]).await;
    const WEATHER: &str = "https://gw.example.com/weather/mcp";
    let weather = Some(WEATHER);
    let query =
        |resource: Option<&str>| authorize_query_for(&client, REDIRECT, &pkce().1, resource);
    assert!(allow(&b, &query(weather)).await.contains_key("code"));

    // Allowed once: the next sign-in of the same client for the same resource has no page.
    let again = b.get(&format!("/oauth/authorize?{}", query(weather))).await;
    assert!(
        location_query(&again).contains_key("code"),
        "{}",
        again.text
    );
    // Signing in again (a new session) goes straight on too, so the login form's
    // form-action must allow the client's redirect origin (browsers apply it to the chain).
    let fresh = app.browser();
    let return_to = format!("/oauth/authorize?{}", query(weather));
    let enc: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    let form = fresh.get(&format!("/login?return_to={enc}")).await;
    let csp = form.header("content-security-policy").unwrap();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:33418"),
        "{csp}"
    );
    let signed_in = fresh
        .login_returning("grace", "user-password-1", Some(&return_to))
        .await;
    assert_eq!(
        signed_in.header("location").as_deref(),
        Some(return_to.as_str())
    );
    let straight = fresh.get(&return_to).await;
    assert!(location_query(&straight).contains_key("code"));
    // Another resource asks again.
    let other = b
        .get(&format!(
            "/oauth/authorize?{}",
            query(Some("https://gw.example.com/mcp"))
        ))
        .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
    // Another user is asked for themselves.
    let h = app.user("heidi", &[]).await;
    let theirs = h.get(&format!("/oauth/authorize?{}", query(weather))).await;
    assert_eq!(theirs.status, StatusCode::OK);

    let listed = b.api(Method::GET, "/api/v1/oauth/consents", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.body["items"][0]["client_id"], client);
    assert_eq!(listed.body["items"][0]["resource"], WEATHER);
    let path = format!("/api/v1/oauth/consents/{client}");
    assert_eq!(
        b.api_with(Method::DELETE, &path, None, None).await.status,
        StatusCode::FORBIDDEN,
        "a cookie DELETE needs the CSRF token"
    );
    assert_eq!(
        b.api(Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    let gone = b.api(Method::DELETE, &path, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.code(), "oauth_consent_not_found");
    let asked = b.get(&format!("/oauth/authorize?{}", query(weather))).await;
    assert_eq!(asked.status, StatusCode::OK, "revoked: asked again");

    // Deleting the client forgets what anyone allowed it.
    assert!(allow(&b, &query(weather)).await.contains_key("code"));
    let admin = app.admin().await;
    let delete = format!("/api/v1/oauth/clients/{client}");
    assert_eq!(
        admin.api(Method::DELETE, &delete, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(
        app.store()
            .get_consent("local:grace", &client)
            .await
            .unwrap()
            .is_none()
    );
}
