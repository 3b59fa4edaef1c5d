//! The OAuth authorization code flow with PKCE for registered clients (the registry's web
//! console): `/oauth/authorize`, `/oauth/token`, the sign-in token at the registry's validator,
//! and token management with that token as a bearer.

use std::collections::HashMap;
use std::time::Duration;

use auth_server::oauth::AuthorizationCode;
use auth_server::tokens::Principal;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgw_core::token::{IssuerConfig, TokenValidator, ValidatorSettings};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::both_backends;
use crate::helpers::{Backend, Browser, Reply, TestApp, hidden_field, pkce, spawn_with};

both_backends!(
    a_local_user_signs_in_through_the_code_flow_and_the_registry_accepts_the_token,
    an_oidc_user_comes_back_to_the_authorization_request_after_signing_in,
    a_code_is_exchanged_once_and_a_replay_revokes_its_token,
    the_token_endpoint_refuses_what_does_not_match_the_code,
    authorization_errors_before_the_client_is_known_never_redirect,
    authorization_errors_after_the_client_is_known_go_back_to_it,
    a_sign_in_token_manages_the_users_tokens_without_csrf_and_can_sign_out,
    agent_tokens_and_clients_without_manage_tokens_are_refused_on_the_token_api,
    sign_in_tokens_do_not_count_against_mints_per_hour,
    the_metadata_and_openapi_describe_the_code_flow,
);

const CONSOLE: &str = "registry-console";
const CALLBACK: &str = "http://127.0.0.1:7860/oauth/callback";
const OTHER_CALLBACK: &str = "http://localhost:7860/oauth/other";
const READ_ONLY: &str = "read-only";
const READ_ONLY_CALLBACK: &str = "https://ro.example.com/cb";

fn clients_toml() -> String {
    format!(
        "[group_scopes]\nteam = [\"weather/read\", \"weather/write\"]\n\
         [[oauth.clients]]\nid = \"{CONSOLE}\"\nredirect_uris = [\"{CALLBACK}\", \"{OTHER_CALLBACK}\"]\n\
         audience = \"mcp-registry\"\nmanage_tokens = true\n\
         [[oauth.clients]]\nid = \"{READ_ONLY}\"\nredirect_uris = [\"{READ_ONLY_CALLBACK}\"]\n\
         audience = \"read-only-api\"\ntoken_ttl_seconds = 600\n"
    )
}

async fn spawn_clients(backend: Backend, extra: &str) -> TestApp {
    spawn_with(backend, &format!("{}{extra}", clients_toml())).await
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `/oauth/authorize?…` for `pairs`, in order.
fn authorize_path(pairs: &[(&str, &str)]) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("/oauth/authorize?{q}")
}

fn request_path(client: &str, redirect_uri: &str, challenge: &str, state: &str) -> String {
    authorize_path(&[
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect_uri),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("state", state),
    ])
}

/// The query of a redirect to a client, and the URL without it.
fn redirect_query(r: &Reply) -> (String, HashMap<String, String>) {
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let location = r.header("location").expect("a Location");
    let url = url::Url::parse(&location).unwrap_or_else(|e| panic!("{location}: {e}"));
    let q = url.query_pairs().into_owned().collect();
    (
        format!("{}{}", &url[..url::Position::BeforePath], url.path()),
        q,
    )
}

/// A code for the signed-in browser `b`; returns (code, verifier).
async fn code_for(b: &Browser, client: &str, redirect_uri: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let r = b
        .get(&request_path(client, redirect_uri, &challenge, "st-1"))
        .await;
    let (to, q) = redirect_query(&r);
    assert_eq!(to, redirect_uri);
    assert_eq!(q["state"], "st-1");
    (q["code"].clone(), verifier)
}

/// `POST /oauth/token` from a client with no cookies.
async fn token_request(app: &TestApp, fields: &[(&str, &str)]) -> Reply {
    Browser::new(&app.base)
        .post_form("/oauth/token", fields)
        .await
}

async fn exchange(
    app: &TestApp,
    client: &str,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
) -> Reply {
    token_request(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", client),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// A sign-in token of `client` for the signed-in browser `b`.
async fn sign_in_token(app: &TestApp, b: &Browser, client: &str, redirect_uri: &str) -> String {
    let (code, verifier) = code_for(b, client, redirect_uri).await;
    let r = exchange(app, client, redirect_uri, &code, &verifier).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["access_token"].as_str().unwrap().to_owned()
}

fn claims(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let mut decode = || -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap()
    };
    (decode(), decode())
}

/// core's validator configured as the registry would be: `[[auth.issuers]]` with the
/// auth-server as issuer, the console client's audience, and its revocation list.
fn registry_validator(app: &TestApp) -> TokenValidator {
    let issuer: IssuerConfig = serde_json::from_value(json!({
        "issuer": app.running.public_url,
        "audiences": ["mcp-registry"],
        "revocations_url": format!("{}/api/v1/revocations", app.running.public_url),
    }))
    .unwrap();
    TokenValidator::new(
        vec![issuer],
        ValidatorSettings {
            refresh_min_interval: Duration::ZERO,
            revocation_refresh: Duration::ZERO,
            ..Default::default()
        },
    )
    .unwrap()
}

async fn bearer(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Reply {
    let b = Browser::new(&app.base);
    let mut req = b.request(method, path).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    b.send(req).await
}

async fn metric(app: &TestApp, line_start: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", app.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

async fn a_local_user_signs_in_through_the_code_flow_and_the_registry_accepts_the_token(
    backend: Backend,
) {
    let app = spawn_clients(backend, "").await;
    app.add_user("alice", "alice-password-1", &["team"], false)
        .await;
    let b = app.browser();
    let (verifier, challenge) = pkce();
    let request = request_path(CONSOLE, CALLBACK, &challenge, "xyz state/1");

    // No session: to the login page, which will come back to this exact request.
    let r = b.get(&request).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let login = r.header("location").unwrap();
    assert_eq!(login, format!("/login?return_to={}", enc(&request)));
    let form = b.get(&login).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert_eq!(
        hidden_field(&form.text, "return_to").as_deref(),
        Some(request.as_str())
    );
    // Browsers apply the form's `form-action` to every redirect after the post: the login page
    // must allow the clients' redirect origins, or the browser stops at the last hop.
    let csp = form.header("content-security-policy").unwrap();
    for origin in [
        "'self'",
        "http://127.0.0.1:7860",
        "http://localhost:7860",
        "https://ro.example.com",
    ] {
        assert!(
            csp.contains(&format!(" {origin}")),
            "{origin} missing: {csp}"
        );
    }
    assert!(!csp.contains("/oauth/callback"), "origins only: {csp}");
    let token = hidden_field(&form.text, "form_token").unwrap();
    let r = b
        .post_form(
            "/login",
            &[
                ("username", "alice"),
                ("password", "alice-password-1"),
                ("form_token", &token),
                ("return_to", &request),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.header("location").as_deref(), Some(request.as_str()));

    // Back at the authorization endpoint, now with a session: a code for the client.
    let r = b.get(&request).await;
    let (to, q) = redirect_query(&r);
    assert_eq!(to, CALLBACK);
    assert_eq!(q["state"], "xyz state/1");
    assert_eq!(q["iss"], app.running.public_url);
    let code = q["code"].clone();
    assert!(!code.contains("alice"), "the code is sealed");

    let r = exchange(&app, CONSOLE, CALLBACK, &code, &verifier).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 28800);
    assert_eq!(r.body["scope"], "weather/read weather/write");
    let access = r.body["access_token"].as_str().unwrap();
    let (header, c) = claims(access);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(c["iss"], json!(app.running.public_url));
    assert_eq!(c["aud"], json!(["mcp-registry", app.running.public_url]));
    assert_eq!(c["sub"], "local:alice");
    assert_eq!(c["preferred_username"], "alice");
    assert_eq!(c["groups"], json!(["team"]));
    assert_eq!(c["scope"], "weather/read weather/write");
    assert_eq!(c["client_id"], CONSOLE);
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        28800
    );
    assert_eq!(c["nbf"], c["iat"]);

    // The registry's validator accepts it and sees the user.
    let v = registry_validator(&app);
    let verified = v.validate(access).await.expect("the registry accepts it");
    assert_eq!(verified.subject, "local:alice");
    assert_eq!(verified.groups, vec!["team"]);
    assert_eq!(verified.scopes, vec!["weather/read", "weather/write"]);
    assert_eq!(verified.client_id.as_deref(), Some(CONSOLE));
    assert_eq!(verified.token_id.as_deref(), c["jti"].as_str());
    // The gateway's /validate does not: the token is not for the gateway's audience.
    let r = bearer(&app, Method::GET, "/validate", access, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);

    // In the user's token list (revocable like any token) and in the audit log.
    let list = b.get("/api/v1/tokens").await;
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", list.text);
    assert_eq!(items[0]["jti"], c["jti"]);
    assert_eq!(items[0]["description"], "registry-console sign-in");
    assert_eq!(items[0]["client_id"], CONSOLE);
    assert_eq!(items[0]["audience"], "mcp-registry");
    let admin = app.admin().await;
    let audit = admin.get("/api/v1/audit?action=oauth.token").await;
    let records = audit.body["items"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{}", audit.text);
    assert_eq!(records[0]["actor"], "local:alice");
    assert_eq!(records[0]["resource_id"], c["jti"]);
    assert_eq!(records[0]["details"]["client_id"], CONSOLE);
    assert!(!audit.text.contains(access), "the token is never stored");
    assert_eq!(
        metric(&app, "mcpgw_auth_oauth_codes_total{event=\"issued\"}").await,
        1.0
    );
    assert_eq!(
        metric(&app, "mcpgw_auth_oauth_codes_total{event=\"exchanged\"}").await,
        1.0
    );

    // Revoked (the console's logout): the registry refuses it from its next revocation poll.
    let revoke = b
        .api(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", c["jti"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT, "{}", revoke.text);
    assert!(
        v.validate(access).await.is_err(),
        "a revoked sign-in token is refused"
    );
}

async fn an_oidc_user_comes_back_to_the_authorization_request_after_signing_in(backend: Backend) {
    let oidc = crate::oidc::provider_toml(&crate::oidc::oidc_url());
    // The provider's table brings its own group_scopes; the clients come after it.
    let toml = format!(
        "{oidc}[[oauth.clients]]\nid = \"{CONSOLE}\"\nredirect_uris = [\"{CALLBACK}\"]\naudience = \"mcp-registry\"\n"
    );
    let app = spawn_with(backend, &toml).await;
    let b = app.browser();
    let (verifier, challenge) = pkce();
    let request = request_path(CONSOLE, CALLBACK, &challenge, "s-oidc");
    let r = b.get(&request).await;
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("/login?return_to={}", enc(&request)).as_str())
    );
    let callback =
        crate::oidc::sign_in_returning(&app, &b, "second", "alice", "alice-password", &request)
            .await;
    let r = b.get(&callback).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.header("location").as_deref(), Some(request.as_str()));
    let (to, q) = redirect_query(&b.get(&request).await);
    assert_eq!(to, CALLBACK);
    assert_eq!(q["state"], "s-oidc");
    let r = exchange(&app, CONSOLE, CALLBACK, &q["code"], &verifier).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (_, c) = claims(r.body["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], "second:alice");
    assert_eq!(c["groups"], json!(["mcp-users"]));
    assert_eq!(c["scope"], "weather/read");
}

async fn a_code_is_exchanged_once_and_a_replay_revokes_its_token(backend: Backend) {
    let app = spawn_clients(backend, "").await;
    let b = app.user("alice", &["team"]).await;
    let (code, verifier) = code_for(&b, CONSOLE, CALLBACK).await;
    let first = exchange(&app, CONSOLE, CALLBACK, &code, &verifier).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let access = first.body["access_token"].as_str().unwrap();
    let me = bearer(&app, Method::GET, "/api/v1/me", access, None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);

    let again = exchange(&app, CONSOLE, CALLBACK, &code, &verifier).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.text);
    assert_eq!(again.body["error"], "invalid_grant");
    assert!(
        again.body["error_description"]
            .as_str()
            .unwrap()
            .contains("already been used"),
        "{}",
        again.text
    );
    assert!(again.body.get("access_token").is_none());
    // Whoever redeemed it first may have stolen it: that token is revoked.
    let me = bearer(&app, Method::GET, "/api/v1/me", access, None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.text);
    assert!(me.text.contains("revoked"), "{}", me.text);
    assert_eq!(
        metric(&app, "mcpgw_auth_oauth_codes_total{event=\"replayed\"}").await,
        1.0
    );
}

/// Form fields of a token request.
type Form = Vec<(String, String)>;

async fn the_token_endpoint_refuses_what_does_not_match_the_code(backend: Backend) {
    let app = spawn_clients(backend, "").await;
    let b = app.user("alice", &["team"]).await;
    let (code, verifier) = code_for(&b, CONSOLE, CALLBACK).await;
    let (other_verifier, _) = pkce();
    let grant = |code: &str, redirect: &str, client: &str, verifier: &str| {
        vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".to_owned(), code.to_owned()),
            ("redirect_uri".to_owned(), redirect.to_owned()),
            ("client_id".to_owned(), client.to_owned()),
            ("code_verifier".to_owned(), verifier.to_owned()),
        ]
    };
    let mut tampered = code.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    // A code sealed 61 s ago, as the server would have issued it then.
    let mut old = AuthorizationCode::new(
        CONSOLE,
        CALLBACK,
        &URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        &Principal {
            subject: "local:alice".into(),
            username: "alice".into(),
            groups: vec!["team".into()],
            scopes: vec!["weather/read".into()],
        },
        None,
    );
    old.issued_at -= 61;
    let expired = old.seal(&app.running.state.keyring);
    let mut fresh = old.clone();
    fresh.issued_at += 61;
    fresh.id = uuid::Uuid::new_v4().to_string();
    let fresh = fresh.seal(&app.running.state.keyring);

    let cases: Vec<(Form, StatusCode, &str, &str)> = vec![
        (
            grant(&code, CALLBACK, CONSOLE, &other_verifier),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code_verifier",
        ),
        (
            grant(&code, OTHER_CALLBACK, CONSOLE, &verifier),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri",
        ),
        (
            grant(&code, CALLBACK, READ_ONLY, &verifier),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "another client",
        ),
        (
            grant(&code, CALLBACK, "nobody", &verifier),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "nobody",
        ),
        (
            grant(&tampered, CALLBACK, CONSOLE, &verifier),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "not one this server issued",
        ),
        (
            grant(&expired, CALLBACK, CONSOLE, &verifier),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "expired",
        ),
        (
            grant(&code, CALLBACK, CONSOLE, "short"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code_verifier",
        ),
        (
            grant(&code, CALLBACK, CONSOLE, ""),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code_verifier is required",
        ),
        (
            grant(&code, "", CONSOLE, &verifier),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri is required",
        ),
        (
            vec![
                ("grant_type".into(), "client_credentials".into()),
                ("client_id".into(), CONSOLE.into()),
            ],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "client_credentials",
        ),
        (
            {
                let mut g = grant(&code, CALLBACK, CONSOLE, &verifier);
                g.push(("client_secret".into(), "x".into()));
                g
            },
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_secret",
        ),
        (
            {
                let mut g = grant(&code, CALLBACK, CONSOLE, &verifier);
                g.push(("code".into(), "again".into()));
                g
            },
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "more than once",
        ),
    ];
    for (fields, status, error, mentions) in &cases {
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = token_request(&app, &pairs).await;
        assert_eq!(r.status, *status, "{fields:?}: {}", r.text);
        assert_eq!(r.body["error"], *error, "{fields:?}: {}", r.text);
        assert!(
            r.body["error_description"]
                .as_str()
                .unwrap()
                .contains(mentions),
            "{fields:?}: {}",
            r.text
        );
        assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    }
    // Not a form, or too large.
    let client = Browser::new(&app.base);
    let r = client
        .send(
            client
                .request(Method::POST, "/oauth/token")
                .json(&json!({"grant_type": "authorization_code"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body["error"], "invalid_request");
    let big = "a".repeat(9000);
    let r = token_request(&app, &[("code", big.as_str())]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("8192 bytes"), "{}", r.text);
    assert_eq!(
        metric(&app, "mcpgw_auth_oauth_codes_total{event=\"refused\"}").await,
        (cases.len() + 2) as f64
    );

    // None of these consumed the code; a code freshly sealed the same way is good too (so the
    // expired case failed on its age alone).
    let r = exchange(&app, CONSOLE, CALLBACK, &fresh, &verifier).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = exchange(&app, CONSOLE, CALLBACK, &code, &verifier).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn authorization_errors_before_the_client_is_known_never_redirect(backend: Backend) {
    let app = spawn_clients(backend, "").await;
    let b = app.user("alice", &["team"]).await;
    let (_, challenge) = pkce();
    let good = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", CONSOLE),
            ("redirect_uri", CALLBACK),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "s"),
        ];
        pairs.extend_from_slice(extra);
        pairs
    };
    let replace = |key: &str, value: &'static str| {
        let mut pairs = good(&[]);
        for p in &mut pairs {
            if p.0 == key {
                p.1 = value;
            }
        }
        pairs
    };
    let without = |key: &str| {
        let mut pairs = good(&[]);
        pairs.retain(|p| p.0 != key);
        pairs
    };
    let cases = [
        (
            replace("redirect_uri", "https://evil.example.com/cb"),
            "is not registered",
        ),
        // Registered, but for another client.
        (
            replace("redirect_uri", READ_ONLY_CALLBACK),
            "is not registered",
        ),
        // Exact comparison: a longer path is another URI.
        (
            replace("redirect_uri", "http://127.0.0.1:7860/oauth/callback/x"),
            "is not registered",
        ),
        (without("redirect_uri"), "redirect_uri is required"),
        (replace("client_id", "nobody"), "not a registered client"),
        (without("client_id"), "client_id is required"),
        (good(&[("client_id", CONSOLE)]), "more than once"),
        (good(&[("prompt", "none")]), "prompt"),
    ];
    for (pairs, mentions) in &cases {
        let r = b.get(&authorize_path(pairs)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{pairs:?}: {}", r.text);
        assert!(
            r.header("location").is_none(),
            "{pairs:?}: never a redirect"
        );
        assert!(r.text.contains(mentions), "{pairs:?}: {}", r.text);
    }
}

async fn authorization_errors_after_the_client_is_known_go_back_to_it(backend: Backend) {
    let app = spawn_clients(backend, "").await;
    // No session: parameter errors are answered before any login.
    let b = app.browser();
    let (_, challenge) = pkce();
    let with = |key: &str, value: Option<&'static str>| {
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", CONSOLE),
            ("redirect_uri", OTHER_CALLBACK),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "st"),
        ];
        pairs.retain(|p| p.0 != key);
        if let Some(v) = value {
            pairs.push((key, v));
        }
        authorize_path(&pairs)
    };
    let long_state: &'static str = Box::leak("s".repeat(513).into_boxed_str());
    let cases = [
        (
            with("code_challenge_method", Some("plain")),
            "invalid_request",
            "S256",
            true,
        ),
        (
            with("code_challenge_method", None),
            "invalid_request",
            "S256",
            true,
        ),
        (
            with("code_challenge", None),
            "invalid_request",
            "code_challenge is required",
            true,
        ),
        (
            with("code_challenge", Some("too-short")),
            "invalid_request",
            "43-128",
            true,
        ),
        (
            with("response_type", Some("token")),
            "unsupported_response_type",
            "code",
            true,
        ),
        (
            with("response_type", None),
            "invalid_request",
            "response_type",
            true,
        ),
        (
            with("scope", Some("a\"b")),
            "invalid_scope",
            "not a scope",
            true,
        ),
        (
            with("state", None),
            "invalid_request",
            "state is required",
            false,
        ),
        (
            with("state", Some(long_state)),
            "invalid_request",
            "512 bytes",
            false,
        ),
    ];
    for (path, error, mentions, echoes_state) in &cases {
        let r = b.get(path).await;
        let (to, q) = redirect_query(&r);
        assert_eq!(to, OTHER_CALLBACK, "{path}");
        assert_eq!(q["error"], *error, "{path}");
        assert!(q["error_description"].contains(mentions), "{path}: {q:?}");
        assert_eq!(q["iss"], app.running.public_url, "{path}");
        assert_eq!(
            q.get("state").map(String::as_str),
            echoes_state.then_some("st"),
            "{path}"
        );
        assert!(!q.contains_key("code"), "{path}");
    }
    // A well-formed scope is accepted (and ignored: the token carries the user's scopes).
    let r = b.get(&with("scope", Some("weather/read openid"))).await;
    assert!(
        r.header("location")
            .unwrap()
            .starts_with("/login?return_to="),
        "{:?}",
        r.header("location")
    );
}

async fn a_sign_in_token_manages_the_users_tokens_without_csrf_and_can_sign_out(backend: Backend) {
    let app = spawn_clients(backend, "").await;
    let b = app.user("alice", &["team"]).await;
    let access = sign_in_token(&app, &b, CONSOLE, CALLBACK).await;
    let jti = claims(&access).1["jti"].as_str().unwrap().to_owned();

    let me = bearer(&app, Method::GET, "/api/v1/me", &access, None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["subject"], "local:alice");
    assert_eq!(me.body["provider"], "local");
    assert_eq!(me.body["groups"], json!(["team"]));
    assert_eq!(me.body["scopes"], json!(["weather/read", "weather/write"]));
    assert_eq!(me.body["client_id"], CONSOLE);
    assert_eq!(me.body["token_id"], json!(jti));
    assert!(me.body.get("csrf_token").is_none(), "{}", me.text);

    // Mint a subset, with no CSRF token and no cookie.
    let minted = bearer(
        &app,
        Method::POST,
        "/api/v1/tokens",
        &access,
        Some(json!({"scopes": ["weather/read"], "description": "from the console"})),
    )
    .await;
    assert_eq!(minted.status, StatusCode::CREATED, "{}", minted.text);
    let (_, agent) = claims(minted.body["access_token"].as_str().unwrap());
    assert_eq!(agent["sub"], "local:alice");
    assert_eq!(agent["aud"], "mcp-gateway");
    assert_eq!(agent["scope"], "weather/read");
    assert!(agent.get("groups").is_none());
    let refused = bearer(
        &app,
        Method::POST,
        "/api/v1/tokens",
        &access,
        Some(json!({"scopes": ["mcp-registry-admin"]})),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(refused.code(), "scope_not_granted");

    let list = bearer(&app, Method::GET, "/api/v1/tokens", &access, None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let ids: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["jti"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{}", list.text);
    assert!(ids.contains(&jti.as_str()));
    assert!(ids.contains(&minted.body["jti"].as_str().unwrap()));

    // Sign out: the token revokes itself, then it is refused.
    let out = bearer(
        &app,
        Method::DELETE,
        &format!("/api/v1/tokens/{jti}"),
        &access,
        None,
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text);
    for (method, path) in [(Method::GET, "/api/v1/me"), (Method::GET, "/api/v1/tokens")] {
        let r = bearer(&app, method, path, &access, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}: {}", r.text);
        assert!(
            r.body["detail"].as_str().unwrap().contains("revoked"),
            "{}",
            r.text
        );
    }
    // The agent token minted with it lives on.
    let revs = b.get("/api/v1/revocations").await;
    assert_eq!(
        revs.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        revs.text
    );
    // Signing out of the client ended the browser session it signed in from (one click: no
    // confirmation at /logout), audited as a logout; /logout then goes straight back.
    assert_eq!(b.get("/api/v1/me").await.status, StatusCode::UNAUTHORIZED);
    let back = b
        .get(&format!(
            "/logout?return_to={}",
            enc("http://127.0.0.1:7860/console/signed-out")
        ))
        .await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.text);
    assert_eq!(
        back.headers["location"], "http://127.0.0.1:7860/console/signed-out",
        "the origin of a registered redirect URI is a safe return_to"
    );
    let audit = app
        .store()
        .list_audit(&Default::default(), 100)
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.action == "logout" && r.actor == "local:alice"),
        "{audit:?}"
    );
}

async fn agent_tokens_and_clients_without_manage_tokens_are_refused_on_the_token_api(
    backend: Backend,
) {
    let app = spawn_clients(backend, "").await;
    let b = app.user("alice", &["team"]).await;
    let agent = b.mint(json!({"scopes": ["weather/read"]})).await;
    assert_eq!(agent.status, StatusCode::CREATED, "{}", agent.text);
    let agent = agent.body["access_token"].as_str().unwrap().to_owned();
    let read_only = sign_in_token(&app, &b, READ_ONLY, READ_ONLY_CALLBACK).await;
    assert_eq!(
        claims(&read_only).1["exp"].as_i64().unwrap()
            - claims(&read_only).1["iat"].as_i64().unwrap(),
        600
    );
    let mint = json!({"scopes": ["weather/read"]});
    for (token, mentions) in [(&agent, "agent token"), (&read_only, "manage_tokens")] {
        for (method, path, body) in [
            (Method::GET, "/api/v1/me", None),
            (Method::GET, "/api/v1/tokens", None),
            (Method::POST, "/api/v1/tokens", Some(mint.clone())),
        ] {
            let r = bearer(&app, method, path, token, body).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
            assert!(
                r.body["detail"].as_str().unwrap().contains(mentions),
                "{}",
                r.text
            );
        }
    }
    // A token that does not verify, or a header that is not a bearer token: 401.
    let mut forged = agent.clone();
    forged.push('x');
    let r = bearer(&app, Method::GET, "/api/v1/tokens", &forged, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let c = Browser::new(&app.base);
    let r = c
        .send(
            c.request(Method::GET, "/api/v1/me")
                .header("authorization", "Basic YTpi"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    // Nothing was minted by the refused requests.
    let list = b.get("/api/v1/tokens").await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        2,
        "{}",
        list.text
    );
}

async fn sign_in_tokens_do_not_count_against_mints_per_hour(backend: Backend) {
    let app = spawn_clients(backend, "[tokens]\nmints_per_hour = 2\n").await;
    let b = app.user("alice", &["team"]).await;
    for _ in 0..3 {
        sign_in_token(&app, &b, CONSOLE, CALLBACK).await;
    }
    for _ in 0..2 {
        let r = b.mint(json!({"scopes": ["weather/read"]})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let r = b.mint(json!({"scopes": ["weather/read"]})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    // Signing in still works at the limit.
    sign_in_token(&app, &b, CONSOLE, CALLBACK).await;
}

async fn the_metadata_and_openapi_describe_the_code_flow(backend: Backend) {
    let app = spawn_clients(backend, "").await;
    let b = app.browser();
    let base = &app.running.public_url;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m = b.get(path).await;
        assert_eq!(m.status, StatusCode::OK, "{}", m.text);
        assert_eq!(m.body["issuer"], json!(base));
        assert_eq!(
            m.body["authorization_endpoint"],
            format!("{base}/oauth/authorize")
        );
        assert_eq!(m.body["token_endpoint"], format!("{base}/oauth/token"));
        assert_eq!(m.body["response_types_supported"], json!(["code"]));
        assert_eq!(
            m.body["grant_types_supported"],
            json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(
            m.body["revocation_endpoint"],
            format!("{base}/oauth/revoke")
        );
        assert_eq!(m.body["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            m.body["token_endpoint_auth_methods_supported"],
            json!(["none"])
        );
        assert_eq!(m.body["jwks_uri"], format!("{base}/.well-known/jwks.json"));
    }
    let api = b.get("/api/v1/openapi.json").await;
    assert!(
        api.body["paths"]["/oauth/authorize"]["get"].is_object(),
        "{}",
        api.text
    );
    let token = &api.body["paths"]["/oauth/token"]["post"];
    assert!(
        token["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object(),
        "{token}"
    );
}
