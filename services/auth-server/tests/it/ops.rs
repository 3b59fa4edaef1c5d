//! Health, readiness, metrics, the OpenAPI document and the envelope on unknown routes.

use reqwest::{Method, StatusCode};

use crate::both_backends;
use crate::helpers::{Backend, spawn};

both_backends!(
    health_ready_metrics_and_openapi_answer,
    unknown_routes_and_methods_answer_in_the_envelope,
);

async fn health_ready_metrics_and_openapi_answer(backend: Backend) {
    let app = spawn(backend).await;
    let b = app.browser();
    let r = b.get("/health").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("x-request-id").is_some());
    let r = b.get("/ready").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(r.body["store"], expected);
    let r = b.get("/api/v1/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    let paths = r.body["paths"].as_object().unwrap();
    for p in [
        "/api/v1/me",
        "/api/v1/tokens",
        "/api/v1/tokens/{jti}",
        "/api/v1/sessions",
        "/api/v1/revocations",
        "/api/v1/keys/rotate",
        "/.well-known/jwks.json",
        "/.well-known/oauth-protected-resource",
        "/validate",
    ] {
        assert!(paths.contains_key(p), "{p} is documented");
    }
    // Metrics are on their own port, labelled by route.
    let _ = b.get("/api/v1/me").await;
    let m = reqwest::get(format!("{}/metrics", app.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("mcpgw_auth_http_requests_total"), "{m}");
    assert!(m.contains("route=\"/api/v1/me\""), "{m}");
    assert!(m.contains("mcpgw_auth_tokens_minted_total"), "{m}");
    let r = b.get("/metrics").await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "metrics are not on the API port"
    );
}

async fn unknown_routes_and_methods_answer_in_the_envelope(backend: Backend) {
    let app = spawn(backend).await;
    let b = app.browser();
    let r = b.get("/api/v1/nothing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "route_not_found");
    let r = b.send(b.request(Method::PUT, "/api/v1/me")).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), "method_not_allowed");
    let r = b.get("/api/v1/me").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "unauthenticated");
}
