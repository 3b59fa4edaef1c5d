//! CSRF protection of cookie-authenticated mutations, and the administrators' session control.

use auth_server::store::AuditFilter;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, spawn};

both_backends!(
    a_cookie_mutation_without_the_csrf_token_is_refused_and_changes_nothing,
    an_administrator_ends_every_session_of_one_user,
    an_administrator_ends_every_session,
    only_administrators_may_end_sessions,
    a_bad_session_query_changes_nothing,
);

async fn a_cookie_mutation_without_the_csrf_token_is_refused_and_changes_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let b = app.admin().await;
    let body = json!({"scopes": ["mcp-registry-admin"]});
    for csrf in [None, Some("wrong"), Some("")] {
        let r = b
            .api_with(Method::POST, "/api/v1/tokens", Some(body.clone()), csrf)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{csrf:?}: {}", r.text);
        assert_eq!(r.code(), "csrf_failed");
        assert_eq!(r.field(), "X-CSRF-Token");
    }
    for (method, path) in [
        (Method::DELETE, "/api/v1/sessions"),
        (Method::POST, "/api/v1/keys/rotate"),
        (
            Method::DELETE,
            "/api/v1/tokens/0190f8c2-0000-7000-8000-000000000000",
        ),
    ] {
        let r = b.api_with(method, path, None, None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(r.code(), "csrf_failed");
    }
    // Nothing happened: no token, no rotation, the session lives.
    let store = app.store();
    assert!(
        store
            .list_vended_tokens("local:admin", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let jwks = b.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(b.get("/api/v1/me").await.status, StatusCode::OK);
    // Another session's token does not pass either.
    let other = app.admin().await;
    let r = b
        .api_with(
            Method::POST,
            "/api/v1/tokens",
            Some(body.clone()),
            Some(&other.csrf().await),
        )
        .await;
    assert_eq!(r.code(), "csrf_failed");
    // With its own token the same request works.
    let r = b.api(Method::POST, "/api/v1/tokens", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

async fn an_administrator_ends_every_session_of_one_user(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.admin().await;
    let alice1 = app.user("alice", &["team"]).await;
    let alice2 = app.browser();
    assert_eq!(
        alice2.login("alice", "user-password-1").await.status,
        StatusCode::SEE_OTHER
    );
    let bob = app.user("bob", &["team"]).await;
    let r = admin
        .api(Method::DELETE, "/api/v1/sessions?user=alice", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["revoked"], 2);
    assert_eq!(
        alice1.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        alice2.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(bob.get("/api/v1/me").await.status, StatusCode::OK);
    assert_eq!(admin.get("/api/v1/me").await.status, StatusCode::OK);
    // By subject as well.
    let r = admin
        .api(Method::DELETE, "/api/v1/sessions?user=local:bob", None)
        .await;
    assert_eq!(r.body["revoked"], 1);
    assert_eq!(bob.get("/api/v1/me").await.status, StatusCode::UNAUTHORIZED);
    let audit = admin.get("/api/v1/audit?action=sessions.revoke").await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    let items = audit.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["resource_id"], "alice");
    assert_eq!(items[1]["details"]["count"], 2);
    assert_eq!(items[1]["actor"], "local:admin");
    assert!(items[1]["request_id"].is_string());
}

async fn an_administrator_ends_every_session(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.admin().await;
    let alice = app.user("alice", &["team"]).await;
    let r = admin.api(Method::DELETE, "/api/v1/sessions", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["revoked"], 2);
    assert_eq!(
        alice.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        admin.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn only_administrators_may_end_sessions(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.admin().await;
    let alice = app.user("alice", &["team"]).await;
    let me = alice.get("/api/v1/me").await;
    assert_eq!(me.body["admin"], false);
    for (method, path) in [
        (Method::DELETE, "/api/v1/sessions"),
        (Method::DELETE, "/api/v1/sessions?user=admin"),
        (Method::POST, "/api/v1/keys/rotate"),
        (Method::GET, "/api/v1/audit"),
    ] {
        let r = alice.api(method, path, None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(r.code(), "forbidden");
    }
    assert_eq!(admin.get("/api/v1/me").await.status, StatusCode::OK);
    assert!(
        app.store()
            .list_audit(
                &AuditFilter {
                    action: Some("sessions.revoke".into()),
                    ..Default::default()
                },
                10
            )
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_bad_session_query_changes_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.admin().await;
    let alice = app.user("alice", &["team"]).await;
    for (query, field) in [
        ("?usr=alice", "usr"),
        ("?user=alice&user=bob", "user"),
        ("?user=%07bell", "user"),
    ] {
        let r = admin
            .api(Method::DELETE, &format!("/api/v1/sessions{query}"), None)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
        assert_eq!(r.code(), "invalid_query");
        assert_eq!(r.field(), field);
    }
    assert_eq!(alice.get("/api/v1/me").await.status, StatusCode::OK);
    assert_eq!(admin.get("/api/v1/me").await.status, StatusCode::OK);
}
