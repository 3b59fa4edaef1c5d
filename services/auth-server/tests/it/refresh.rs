//! Refresh tokens of registered clients over HTTP: rotation, reuse ending the sign-in, the
//! binding to client and resource, and every way a sign-in is ended (RFC 7009 `/oauth/revoke`,
//! the Tokens page's revocation, forgetting the consent).

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, Browser, Reply, TestApp, pkce, spawn_with};
use crate::registration::{REDIRECT, allow, authorize_query_for, location_query, register_client};

both_backends!(
    a_refresh_rotates_the_token_and_a_reused_one_ends_the_sign_in,
    a_refresh_is_bound_to_its_client_and_resource,
    revoking_a_token_the_sign_in_or_the_consent_ends_the_sign_in,
);

const GATEWAY: &str = "[resource]\nurl = \"https://gw.example.com/\"\n";
const WEATHER: &str = "https://gw.example.com/weather/mcp";

/// Signs `b`'s user in to `client` for `resource` (allowing it if asked): the token response.
async fn sign_in(app: &TestApp, b: &Browser, client: &str, resource: Option<&str>) -> Reply {
    let (verifier, challenge) = pkce();
    let query = authorize_query_for(client, REDIRECT, &challenge, resource);
    // The page the first time; once allowed, straight back with the code.
    let first = b.get(&format!("/oauth/authorize?{query}")).await;
    let q = if first.status == StatusCode::SEE_OTHER {
        location_query(&first)
    } else {
        allow(b, &query).await
    };
    let r = token(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", REDIRECT),
            ("client_id", client),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r
}

async fn token(app: &TestApp, fields: &[(&str, &str)]) -> Reply {
    Browser::new(&app.base)
        .post_form("/oauth/token", fields)
        .await
}

async fn refresh(app: &TestApp, client: &str, rt: &str, resource: Option<&str>) -> Reply {
    let mut fields = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
        ("client_id", client),
    ];
    fields.extend(resource.map(|r| ("resource", r)));
    token(app, &fields).await
}

fn text(r: &Reply, key: &str) -> String {
    r.body[key].as_str().unwrap_or_default().to_owned()
}

fn jti_of(access_token: &str) -> String {
    use base64::Engine;
    let payload = access_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

async fn revoked(app: &TestApp, access_token: &str) -> bool {
    let t = app.store().get_vended_token(&jti_of(access_token)).await;
    t.unwrap().unwrap().revoked_at.is_some()
}

fn refused(r: &Reply, words: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body["error"], "invalid_grant", "{}", r.text);
    assert!(text(r, "error_description").contains(words), "{}", r.text);
}

async fn a_refresh_rotates_the_token_and_a_reused_one_ends_the_sign_in(backend: Backend) {
    let app = spawn_with(backend, GATEWAY).await;
    let meta = app
        .browser()
        .get("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        meta.body["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        meta.body["revocation_endpoint"],
        format!("{}/oauth/revoke", app.running.public_url)
    );
    let client = register_client(&app).await;
    let b = app.user("rita", &[]).await;
    let first = sign_in(&app, &b, &client, Some(WEATHER)).await;
    let rt1 = text(&first, "refresh_token");
    assert!(rt1.starts_with("mcpgw_rt."), "{}", first.text);
    assert_eq!(first.body["expires_in"], 900);

    let second = refresh(&app, &client, &rt1, None).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_eq!(second.header("cache-control").as_deref(), Some("no-store"));
    let rt2 = text(&second, "refresh_token");
    assert!(rt2.starts_with("mcpgw_rt.") && rt2 != rt1);
    let at2 = text(&second, "access_token");
    assert_ne!(jti_of(&at2), jti_of(&text(&first, "access_token")));
    // The refreshed token is the same sign-in: the same user and resource.
    let third = refresh(&app, &client, &rt2, Some(WEATHER)).await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.text);
    let rt3 = text(&third, "refresh_token");
    let listed = b.get("/api/v1/tokens").await;
    let mine: Vec<&Value> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["client_id"] == client.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "one row per sign-in: {}", listed.text);
    assert_eq!(mine[0]["jti"], jti_of(&text(&third, "access_token")));

    // rt1 again: someone else holds the sign-in. It ends, with every token it issued.
    refused(&refresh(&app, &client, &rt1, None).await, "already used");
    refused(&refresh(&app, &client, &rt3, None).await, "not valid");
    for r in [&first, &second, &third] {
        assert!(revoked(&app, &text(r, "access_token")).await, "{}", r.text);
    }
    let revocations = app.browser().get("/api/v1/revocations").await;
    assert!(
        revocations.text.contains(&jti_of(&at2)),
        "gateways learn of it: {}",
        revocations.text
    );
}

async fn a_refresh_is_bound_to_its_client_and_resource(backend: Backend) {
    let app = spawn_with(backend, GATEWAY).await;
    let client = register_client(&app).await;
    let other = register_client(&app).await;
    let b = app.user("sam", &[]).await;
    let rt = text(
        &sign_in(&app, &b, &client, Some(WEATHER)).await,
        "refresh_token",
    );
    refused(
        &refresh(&app, &other, &rt, None).await,
        "issued to another client",
    );
    refused(
        &refresh(&app, &client, &rt, Some("https://gw.example.com/mcp")).await,
        "resource differs",
    );
    // Neither refusal used the token up.
    let ok = refresh(&app, &client, &rt, Some(WEATHER)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let unknown = refresh(&app, "dcr.nobody", &rt, None).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED, "{}", unknown.text);
    assert_eq!(unknown.body["error"], "invalid_client");
    let missing = token(
        &app,
        &[("grant_type", "refresh_token"), ("client_id", &client)],
    )
    .await;
    assert_eq!(missing.body["error"], "invalid_request", "{}", missing.text);

    // With refresh tokens off: none issued, the grant is unsupported.
    let off = spawn_with(
        backend,
        &format!("{GATEWAY}[oauth.refresh]\nenabled = false\n"),
    )
    .await;
    let client = register_client_without_refresh(&off).await;
    let b = off.user("sam", &[]).await;
    let r = sign_in(&off, &b, &client, None).await;
    assert!(r.body.get("refresh_token").is_none(), "{}", r.text);
    let grant = refresh(&off, &client, &rt, None).await;
    assert_eq!(
        grant.body["error"], "unsupported_grant_type",
        "{}",
        grant.text
    );
}

async fn register_client_without_refresh(app: &TestApp) -> String {
    let b = Browser::new(&app.base);
    let r = b
        .send(
            b.request(Method::POST, "/oauth/register")
                .json(&serde_json::json!({
                    "redirect_uris": [REDIRECT],
                    "grant_types": ["authorization_code", "refresh_token"],
                })),
        )
        .await;
    assert_eq!(
        r.body["grant_types"],
        serde_json::json!(["authorization_code"])
    );
    text(&r, "client_id")
}

async fn revoking_a_token_the_sign_in_or_the_consent_ends_the_sign_in(backend: Backend) {
    let app = spawn_with(backend, GATEWAY).await;
    let client = register_client(&app).await;
    let b = app.user("tess", &[]).await;
    let revoke = |fields: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Browser::new(&app.base)
                .post_form("/oauth/revoke", &fields)
                .await
        }
    };

    // RFC 7009 with the refresh token: the sign-in ends.
    let one = sign_in(&app, &b, &client, None).await;
    let r = revoke(vec![
        ("token", text(&one, "refresh_token")),
        ("token_type_hint", "refresh_token".into()),
        ("client_id", client.clone()),
    ])
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(revoked(&app, &text(&one, "access_token")).await);
    refused(
        &refresh(&app, &client, &text(&one, "refresh_token"), None).await,
        "not valid",
    );
    // Unknown tokens are answered the same; an unknown client is not.
    let r = revoke(vec![
        ("token", "mcpgw_rt.nope".into()),
        ("client_id", client.clone()),
    ])
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = revoke(vec![
        ("token", "x".into()),
        ("client_id", "dcr.nobody".into()),
    ])
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);

    // RFC 7009 with the access token: another client's is left alone, the client's own ends
    // its sign-in.
    let two = sign_in(&app, &b, &client, None).await;
    let other = register_client(&app).await;
    let at = text(&two, "access_token");
    revoke(vec![("token", at.clone()), ("client_id", other)]).await;
    assert!(!revoked(&app, &at).await);
    let r = revoke(vec![("token", at.clone()), ("client_id", client.clone())]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(revoked(&app, &at).await);
    refused(
        &refresh(&app, &client, &text(&two, "refresh_token"), None).await,
        "not valid",
    );

    // The Tokens page revokes the sign-in's row (its newest access token): the same.
    let three = sign_in(&app, &b, &client, None).await;
    let three = refresh(&app, &client, &text(&three, "refresh_token"), None).await;
    let jti = jti_of(&text(&three, "access_token"));
    let r = b
        .api(Method::DELETE, &format!("/api/v1/tokens/{jti}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    refused(
        &refresh(&app, &client, &text(&three, "refresh_token"), None).await,
        "not valid",
    );

    // Forgetting the consent ends the user's sign-ins of that client.
    let four = sign_in(&app, &b, &client, None).await;
    let r = b
        .api(
            Method::DELETE,
            &format!("/api/v1/oauth/consents/{client}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(revoked(&app, &text(&four, "access_token")).await);
    refused(
        &refresh(&app, &client, &text(&four, "refresh_token"), None).await,
        "not valid",
    );
}
