//! Bad input at every endpoint gets a clear 4xx naming what is wrong, and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, server_body, spawn};

both_backends!(
    bad_input_at_every_endpoint_gets_a_clear_4xx_and_changes_nothing,
    requests_without_valid_credentials_get_401,
    oversized_and_non_json_bodies_are_refused_before_parsing,
);

/// A request and the refusal it must get: method, path, body, status, code, field.
type Case = (
    Method,
    &'static str,
    Option<Value>,
    StatusCode,
    &'static str,
    &'static str,
);

/// Everything observable: all servers and all audit records.
async fn snapshot(app: &TestApp) -> (Value, usize) {
    (
        app.get("/api/v1/servers?limit=200").await.body,
        app.audit("").await.len(),
    )
}

/// `body` with the value at a JSON pointer set (the parent must exist).
fn with(mut body: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    body.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("the parent exists")
        .insert(key.to_owned(), value);
    body
}

async fn bad_input_at_every_endpoint_gets_a_clear_4xx_and_changes_nothing(backend: Backend) {
    let app = spawn(backend).await;
    app.register(server_body("weather")).await;
    let before = snapshot(&app).await;
    let base = server_body("fresh");
    let cases: Vec<Case> = vec![
        // create: each field's rule
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(base.clone(), "/path", json!("Bad_Path"))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "path",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(base.clone(), "/path", json!("api"))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "path",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(base.clone(), "/name", json!(""))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "name",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(base.clone(), "/name", json!("x".repeat(129)))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "name",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(base.clone(), "/description", json!("x".repeat(4097)))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "description",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(base.clone(), "/tags", json!(vec!["t"; 33]))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "tags",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(base.clone(), "/tags", json!(["ok", "no spaces"]))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "tags[1]",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(
                base.clone(),
                "/endpoint",
                json!({"transport": "carrier-pigeon", "url": "http://x/"}),
            )),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "endpoint.transport",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(base.clone(), "/endpoint/url", json!("not a url"))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "endpoint.url",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(
                base.clone(),
                "/endpoint/url",
                json!("http://169.254.169.254/"),
            )),
            StatusCode::UNPROCESSABLE_ENTITY,
            "egress_denied",
            "endpoint.url",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(
                base.clone(),
                "/upstream_auth",
                json!({"type": "bearer"}),
            )),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "upstream_auth.token",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(
                base.clone(),
                "/upstream_auth",
                json!({"type": "api_key", "header": "bad header", "key": "k"}),
            )),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "upstream_auth.header",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(
                base.clone(),
                "/upstream_auth",
                json!({"type": "kerberos"}),
            )),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "upstream_auth.type",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(base.clone(), "/governance", json!({}))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "governance.owner_team",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(
                base.clone(),
                "/governance",
                json!({"owner_team": "t", "risk_level": "extreme"}),
            )),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "governance.risk_level",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(
                base.clone(),
                "/governance",
                json!({"owner_team": "t", "data_classification": "secret"}),
            )),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "governance.data_classification",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(
                base.clone(),
                "/governance",
                json!({"owner_team": "t", "environment": "qa"}),
            )),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "governance.environment",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(
                base.clone(),
                "/governance",
                json!({"owner_team": "t", "provider": {"organization": "o", "url": "javascript:alert(1)"}}),
            )),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "governance.provider.url",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(
                base.clone(),
                "/custom_headers",
                json!({"Content-Length": "1"}),
            )),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "custom_headers.Content-Length",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(
                json!({"path": "x1", "name": "n", "endpoint": {"transport": "sse", "url": "http://127.0.0.1:9/sse"}, "governance": {"owner_team": "t"}, "lifecycle": "approved_prod"}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "lifecycle",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(
                json!({"name": "no path", "endpoint": {"transport": "sse", "url": "http://127.0.0.1:9/sse"}, "governance": {"owner_team": "t"}}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "path",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(json!([1, 2])),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "",
        ),
        (
            Method::POST,
            "/api/v1/servers",
            Some(with(base.clone(), "/path", json!("weather"))),
            StatusCode::CONFLICT,
            "server_exists",
            "path",
        ),
        // update, patch, toggle, lifecycle, tools, delete on a valid server
        (
            Method::PUT,
            "/api/v1/servers/weather",
            Some(with(server_body("weather"), "/name", json!(" "))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "name",
        ),
        (
            Method::PUT,
            "/api/v1/servers/Weather!",
            Some(server_body("weather")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "path",
        ),
        (
            Method::PATCH,
            "/api/v1/servers/weather",
            Some(json!({"tags": "not-a-list"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "tags",
        ),
        (
            Method::PATCH,
            "/api/v1/servers/weather",
            Some(json!({"endpoint": {"url": "http://169.254.169.254/"}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "egress_denied",
            "endpoint.url",
        ),
        (
            Method::PATCH,
            "/api/v1/servers/weather",
            Some(json!({"governance": {"owner_team": null}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "governance.owner_team",
        ),
        (
            Method::PATCH,
            "/api/v1/servers/weather",
            Some(json!("just a string")),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "",
        ),
        (
            Method::PATCH,
            "/api/v1/servers/nowhere",
            Some(json!({"name": "x"})),
            StatusCode::NOT_FOUND,
            "server_not_found",
            "",
        ),
        (
            Method::POST,
            "/api/v1/servers/weather/toggle",
            Some(json!({"enabled": "yes"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "enabled",
        ),
        (
            Method::POST,
            "/api/v1/servers/weather/toggle",
            Some(json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "enabled",
        ),
        (
            Method::POST,
            "/api/v1/servers/weather/lifecycle",
            Some(json!({"to": "published", "reason": "r"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "to",
        ),
        (
            Method::POST,
            "/api/v1/servers/weather/lifecycle",
            Some(json!({"to": "approved_prod", "reason": "r"})),
            StatusCode::CONFLICT,
            "invalid_transition",
            "to",
        ),
        (
            Method::POST,
            "/api/v1/servers/weather/lifecycle",
            Some(json!({"to": "submitted", "reason": "x".repeat(1025)})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "reason",
        ),
        (
            Method::PUT,
            "/api/v1/servers/weather/tools",
            Some(json!({"tools": [{"name": "bad name", "inputSchema": {"type": "object"}}]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "tools[0].name",
        ),
        (
            Method::PUT,
            "/api/v1/servers/weather/tools",
            Some(
                json!({"tools": [{"name": "t", "inputSchema": {"type": "object"}}, {"name": "t", "inputSchema": {"type": "object"}}]}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "tools[1].name",
        ),
        (
            Method::PUT,
            "/api/v1/servers/weather/tools",
            Some(json!({"tools": [{"name": "t", "inputSchema": "object"}]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "tools[0].inputSchema",
        ),
        (
            Method::DELETE,
            "/api/v1/servers/nowhere",
            None,
            StatusCode::NOT_FOUND,
            "server_not_found",
            "",
        ),
        // API keys
        (
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "k"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "role",
        ),
        (
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "k", "permissions": ["servers:everything"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "permissions[0]",
        ),
        (
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "k", "role": "emperor"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "role",
        ),
        (
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "k", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "expires_at",
        ),
        (
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "", "role": "viewer"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "name",
        ),
        (
            Method::DELETE,
            "/api/v1/api-keys/doesnotexist",
            None,
            StatusCode::NOT_FOUND,
            "api_key_not_found",
            "",
        ),
        // query parameters
        (
            Method::GET,
            "/api/v1/servers?enabled=maybe",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "enabled",
        ),
        (
            Method::GET,
            "/api/v1/servers?limit=0",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "limit",
        ),
        (
            Method::GET,
            "/api/v1/servers?limit=201",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "limit",
        ),
        (
            Method::GET,
            "/api/v1/servers?lifecycle=live",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "lifecycle",
        ),
        (
            Method::GET,
            "/api/v1/servers?environment=qa",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "environment",
        ),
        (
            Method::GET,
            "/api/v1/servers?cursor=forged",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "cursor",
        ),
        (
            Method::GET,
            "/api/v1/servers?colour=red",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "colour",
        ),
        (
            Method::GET,
            "/api/v1/audit?since=yesterday",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "since",
        ),
        (
            Method::GET,
            "/v0.1/servers?version=1.0.0",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "version",
        ),
        (
            Method::GET,
            "/v0.1/servers?updated_since=never",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "updated_since",
        ),
        // routes and methods
        (
            Method::GET,
            "/api/v1/nothing-here",
            None,
            StatusCode::NOT_FOUND,
            "route_not_found",
            "",
        ),
        (
            Method::PATCH,
            "/api/v1/servers",
            Some(json!({})),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "",
        ),
    ];
    for (method, path, body, status, code, field) in cases {
        let r = app.call(method.clone(), path, body.clone()).await;
        let label = format!(
            "{method} {path} {}",
            body.map(|b| b.to_string()).unwrap_or_default()
        );
        assert_eq!(r.status, status, "{label}: {:?}", r.body);
        assert_eq!(r.code(), code, "{label}: {:?}", r.body);
        assert_eq!(r.field(), field, "{label}: {:?}", r.body);
        let detail = r.body["detail"].as_str().unwrap_or("");
        assert!(!detail.is_empty(), "{label}: no detail");
        if !field.is_empty() && code == "invalid_request" {
            assert!(
                detail.contains(field.split(['.', '[']).next_back().unwrap_or(field))
                    || detail.contains(field),
                "{label}: detail {detail:?} does not name {field}"
            );
        }
    }
    // Malformed If-Match.
    let r = app
        .call_as(
            Some(&app.key),
            Method::PUT,
            "/api/v1/servers/weather",
            Some(server_body("weather")),
            &[("If-Match", "yesterday")],
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "If-Match")
    );
    assert_eq!(
        snapshot(&app).await,
        before,
        "a refused request changed something"
    );
}

async fn requests_without_valid_credentials_get_401(backend: Backend) {
    let app = spawn(backend).await;
    let before = snapshot(&app).await;
    for key in [
        None,
        Some("mcpgw_bootstrap.wrong-secret-wrong-secret-wrong"),
        Some("not-an-mcpgw-key"),
        Some(""),
    ] {
        for (method, path) in [
            (Method::GET, "/api/v1/servers"),
            (Method::POST, "/api/v1/servers"),
            (Method::GET, "/api/v1/audit"),
            (Method::GET, "/v0.1/servers"),
        ] {
            let body = (method == Method::POST).then(|| server_body("intruder"));
            let r = app.call_as(key, method.clone(), path, body, &[]).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{key:?} {method} {path}"
            );
            assert_eq!(r.code(), "unauthenticated");
            assert!(
                r.headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer")
            );
        }
    }
    // Identity headers from clients are ignored.
    let r = app
        .call_as(
            None,
            Method::GET,
            "/api/v1/servers",
            None,
            &[("X-User", "admin"), ("X-Groups", "admins")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .call_as(
            None,
            Method::GET,
            "/api/v1/servers",
            None,
            &[("Authorization", "Basic YWRtaW46YWRtaW4=")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(snapshot(&app).await, before);
}

async fn oversized_and_non_json_bodies_are_refused_before_parsing(backend: Backend) {
    let app = spawn(backend).await;
    let before = snapshot(&app).await;
    // Just over the 1 MiB default limit: small enough that the request is fully sent before
    // the answer, so the test sees the 413 rather than a reset connection.
    let huge = "x".repeat(1024 * 1024 + 1024);
    let r = app
        .client
        .post(format!("{}/api/v1/servers", app.base))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body(format!("{{\"name\": \"{huge}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "payload_too_large"
    );
    let r = app
        .client
        .post(format!("{}/api/v1/servers", app.base))
        .bearer_auth(&app.key)
        .header("content-type", "text/plain")
        .body(server_body("plain").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "unsupported_media_type"
    );
    let r = app
        .client
        .post(format!("{}/api/v1/servers", app.base))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body("{\"path\": \"x\",")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_json");
    assert_eq!(snapshot(&app).await, before);
}
