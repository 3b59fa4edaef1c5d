//! `/validate` and the protected resource metadata.

use mcpgw_test_support::TestIssuer;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, Browser, Reply, TestApp, spawn, spawn_with};

both_backends!(
    validate_accepts_a_vended_token_and_answers_identity_headers,
    validate_without_a_credential_answers_401_naming_the_resource_metadata,
    validate_refuses_revoked_tampered_expired_and_foreign_tokens,
    validate_accepts_tokens_of_a_trusted_issuer_and_checks_their_audience,
    validate_answers_403_insufficient_scope_naming_the_needed_scope,
    validate_never_trusts_client_identity_headers_and_encodes_its_own,
    validate_accepts_a_session_cookie,
    protected_resource_metadata_names_the_authorization_servers,
);

async fn vended(app: &TestApp, scopes: &[&str]) -> String {
    let b = app.admin().await;
    let r = b.mint(json!({"scopes": scopes})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["access_token"].as_str().unwrap().to_owned()
}

async fn validate_with(app: &TestApp, token: Option<&str>, query: &str) -> Reply {
    let b = Browser::new(&app.base);
    let mut req = b.request(Method::GET, &format!("/validate{query}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    b.send(req).await
}

fn metadata_url(app: &TestApp) -> String {
    format!(
        "{}/.well-known/oauth-protected-resource",
        app.running.public_url
    )
}

async fn validate_accepts_a_vended_token_and_answers_identity_headers(backend: Backend) {
    let app = spawn(backend).await;
    let token = vended(
        &app,
        &["mcp-servers-unrestricted/read", "mcp-registry-admin"],
    )
    .await;
    let r = validate_with(&app, Some(&token), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("x-auth-subject").as_deref(), Some("local:admin"));
    assert_eq!(r.header("x-auth-username").as_deref(), Some("admin"));
    // An agent token's authority is its scopes; it carries no groups.
    assert!(r.header("x-auth-groups").unwrap_or_default().is_empty());
    assert_eq!(
        r.header("x-auth-scopes").as_deref(),
        Some("mcp-registry-admin mcp-servers-unrestricted/read")
    );
    assert_eq!(
        r.header("x-auth-issuer"),
        Some(app.running.public_url.clone())
    );
    assert_eq!(r.body["subject"], "local:admin");
    // Any method: an auth subrequest may keep the original one.
    let b = Browser::new(&app.base);
    let r = b
        .send(b.request(Method::POST, "/validate").bearer_auth(&token))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = validate_with(&app, Some(&token), "?scope=mcp-registry-admin").await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn validate_without_a_credential_answers_401_naming_the_resource_metadata(backend: Backend) {
    let app = spawn(backend).await;
    let r = validate_with(&app, None, "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!(
            "Bearer resource_metadata=\"{}\"",
            metadata_url(&app)
        ))
    );
    assert_eq!(r.code(), "invalid_token");
    assert!(r.header("x-auth-subject").is_none());
    let b = Browser::new(&app.base);
    let r = b
        .send(
            b.request(Method::GET, "/validate")
                .header("authorization", "Basic YWRtaW46eA=="),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(challenge.contains(&metadata_url(&app)), "{challenge}");
}

async fn validate_refuses_revoked_tampered_expired_and_foreign_tokens(backend: Backend) {
    let app = spawn(backend).await;
    let b = app.admin().await;
    let minted = b.mint(json!({"scopes": ["mcp-registry-admin"]})).await;
    let token = minted.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        validate_with(&app, Some(&token), "").await.status,
        StatusCode::OK
    );
    let jti = minted.body["jti"].as_str().unwrap();
    let r = b
        .api(Method::DELETE, &format!("/api/v1/tokens/{jti}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = validate_with(&app, Some(&token), "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body["detail"].as_str().unwrap().contains("revoked"));
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\"")
    );

    // Signed by a key we never published, but claiming our issuer.
    let stranger = mcpgw_core::signing::SigningKey::generate();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": app.running.public_url, "sub": "local:admin", "aud": "mcp-gateway",
        "exp": now + 300, "iat": now, "jti": uuid::Uuid::new_v4().to_string(),
        "scope": "mcp-registry-admin", "groups": ["mcpgw-admins"],
    });
    let forged = stranger.sign(&claims, "at+jwt").unwrap();
    let r = validate_with(&app, Some(&forged), "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // An untrusted issuer, garbage, an oversized token.
    let issuer = TestIssuer::start().await;
    let foreign = issuer.sign(&issuer.claims("eve", &["mcpgw-admins"], "mcp-gateway"));
    for bad in [foreign, "not.a.jwt".to_owned(), "x".repeat(20_000)] {
        let r = validate_with(&app, Some(&bad), "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.header("x-auth-subject").is_none());
    }
    // An expired token of ours.
    let app2 = spawn_with(backend, "").await;
    let key = app2.running.state.keys.current().await.unwrap();
    let expired = key
        .sign(
            &json!({
                "iss": app2.running.public_url, "sub": "local:admin", "aud": "mcp-gateway",
                "exp": now - 120, "iat": now - 600, "jti": uuid::Uuid::new_v4().to_string(),
            }),
            "at+jwt",
        )
        .unwrap();
    let r = validate_with(&app2, Some(&expired), "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body["detail"].as_str().unwrap().contains("expired"),
        "{}",
        r.text
    );
    // Signed with our key but never minted (not in the ledger).
    let unminted = key
        .sign(
            &json!({
                "iss": app2.running.public_url, "sub": "local:admin", "aud": "mcp-gateway",
                "exp": now + 300, "iat": now, "jti": uuid::Uuid::new_v4().to_string(),
            }),
            "at+jwt",
        )
        .unwrap();
    let r = validate_with(&app2, Some(&unminted), "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn validate_accepts_tokens_of_a_trusted_issuer_and_checks_their_audience(backend: Backend) {
    let issuer = TestIssuer::start().await;
    let app = spawn_with(
        backend,
        &format!(
            "[[validate.issuers]]\nissuer = \"{}\"\naudiences = [\"mcp-gateway\"]\n",
            issuer.issuer
        ),
    )
    .await;
    let mut claims = issuer.claims("alice", &["/team", "ops"], "mcp-gateway");
    claims["scope"] = json!("weather/read");
    let token = issuer.sign(&claims);
    let r = validate_with(&app, Some(&token), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("x-auth-subject").as_deref(), Some("alice"));
    assert_eq!(r.header("x-auth-groups").as_deref(), Some("team,ops"));
    assert_eq!(r.header("x-auth-scopes").as_deref(), Some("weather/read"));
    assert_eq!(r.header("x-auth-issuer"), Some(issuer.issuer.clone()));
    // RFC 8707: a token for another resource is refused.
    let other = issuer.sign(&issuer.claims("alice", &["team"], "https://other.example.com"));
    let r = validate_with(&app, Some(&other), "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body["detail"].as_str().unwrap().contains("audience"),
        "{}",
        r.text
    );
}

async fn validate_answers_403_insufficient_scope_naming_the_needed_scope(backend: Backend) {
    let app = spawn(backend).await;
    let token = vended(&app, &["mcp-servers-unrestricted/read"]).await;
    let r = validate_with(
        &app,
        Some(&token),
        "?scope=mcp-servers-unrestricted/read%20mcp-servers-unrestricted/execute",
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.code(), "insufficient_scope");
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.contains(
            "error=\"insufficient_scope\", scope=\"mcp-servers-unrestricted/read mcp-servers-unrestricted/execute\""
        ),
        "{challenge}"
    );
    assert!(challenge.contains(&metadata_url(&app)), "{challenge}");
    let r = validate_with(&app, Some(&token), "?scope=bad%22scope").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.field(), "scope");
    let r = validate_with(&app, Some(&token), "?audience=x").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn validate_never_trusts_client_identity_headers_and_encodes_its_own(backend: Backend) {
    let issuer = TestIssuer::start().await;
    let app = spawn_with(
        backend,
        &format!(
            "[[validate.issuers]]\nissuer = \"{}\"\naudiences = [\"mcp-gateway\"]\n",
            issuer.issuer
        ),
    )
    .await;
    let b = Browser::new(&app.base);
    let r = b
        .send(
            b.request(Method::GET, "/validate")
                .header("x-auth-subject", "admin")
                .header("x-auth-groups", "mcpgw-admins")
                .header("x-forwarded-user", "admin"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let mut claims = issuer.claims("bob", &["a,b", "x y", "é"], "mcp-gateway");
    claims["preferred_username"] = json!("bob\r\nX-Auth-Subject: admin");
    let token = issuer.sign(&claims);
    let r = b
        .send(
            b.request(Method::GET, "/validate")
                .bearer_auth(&token)
                .header("x-auth-subject", "admin"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("x-auth-subject").as_deref(), Some("bob"));
    assert_eq!(
        r.header("x-auth-username").as_deref(),
        Some("bob%0D%0AX-Auth-Subject:%20admin")
    );
    assert_eq!(
        r.header("x-auth-groups").as_deref(),
        Some("a%2Cb,x%20y,%C3%A9")
    );
    assert_eq!(r.headers.get_all("x-auth-subject").iter().count(), 1);
}

async fn validate_accepts_a_session_cookie(backend: Backend) {
    let app = spawn(backend).await;
    let b = app.admin().await;
    let r = b.get("/validate?scope=mcp-registry-admin").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("x-auth-subject").as_deref(), Some("local:admin"));
}

async fn protected_resource_metadata_names_the_authorization_servers(backend: Backend) {
    let app = spawn_with(
        backend,
        "[resource]\nurl = \"https://gateway.example.com/\"\n\
         authorization_servers = [\"https://kc.example.com/realms/mcpgw\"]\n",
    )
    .await;
    let b = Browser::new(&app.base);
    let r = b.get("/.well-known/oauth-protected-resource").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        json!({
            "resource": "https://gateway.example.com",
            "authorization_servers": ["https://kc.example.com/realms/mcpgw"],
            "scopes_supported": [
                "mcp-registry-admin",
                "mcp-servers-unrestricted/execute",
                "mcp-servers-unrestricted/read"
            ],
            "bearer_methods_supported": ["header"],
            "resource_name": "mcpgw MCP gateway"
        })
    );
    let r = b
        .get("/.well-known/oauth-protected-resource/weather/mcp")
        .await;
    assert_eq!(
        r.body["resource"],
        "https://gateway.example.com/weather/mcp"
    );
    let long = "a".repeat(300);
    for bad in ["a//b", "a%20b", "a%0Ab", long.as_str()] {
        let r = b
            .get(&format!("/.well-known/oauth-protected-resource/{bad}"))
            .await;
        assert!(
            r.status == StatusCode::UNPROCESSABLE_ENTITY || r.status == StatusCode::NOT_FOUND,
            "{bad}: {}",
            r.status
        );
    }
    // Without configured servers the auth-server names itself.
    let app2 = spawn(backend).await;
    let r = Browser::new(&app2.base)
        .get("/.well-known/oauth-protected-resource")
        .await;
    assert_eq!(
        r.body["authorization_servers"],
        json!([app2.running.public_url])
    );
    let meta = Browser::new(&app2.base)
        .get("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(meta.body["issuer"], json!(app2.running.public_url));
    assert_eq!(
        meta.body["jwks_uri"],
        json!(format!("{}/.well-known/jwks.json", app2.running.public_url))
    );
}
