//! `POST /api/v1/gateway/health`: stdio server health reported by gateways, on both backends.
//! (The gateway side, with real stdio children, is in the gateway's integration tests.)

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, server_body, spawn_with};

both_backends!(
    gateway_health_needs_gateway_sync,
    bad_health_batches_are_refused_naming_the_field_and_change_nothing,
    reports_go_through_damping_and_history_and_unknown_servers_are_ignored,
);

const HEALTH: &str = "/api/v1/gateway/health";

/// `damping = 2`, stated here so the test does not depend on the default.
async fn app(backend: Backend) -> TestApp {
    let app = spawn_with(backend, "[health]\ndamping = 2\n").await;
    let mut stdio = server_body("local");
    stdio["endpoint"] = json!({"transport": "stdio", "command": "python3", "args": ["-V"]});
    app.register(stdio).await;
    app.register(server_body("web")).await;
    app
}

fn report(server: &str, status: &str) -> Value {
    json!({"server": server, "status": status, "reason": format!("{status} here"), "latency_ms": 3})
}

async fn health(app: &TestApp, path: &str) -> Value {
    let r = app.get(&format!("/api/v1/servers/{path}/health")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["health"].clone()
}

async fn gateway_health_needs_gateway_sync(backend: Backend) {
    let app = app(backend).await;
    let reader = app.key_with(&["servers:read", "audit:read"]).await;
    let batch = json!({"gateway": "gw-a", "reports": [report("local", "healthy")]});
    for key in [None, Some(reader.as_str())] {
        let r = app
            .call_as(key, Method::POST, HEALTH, Some(batch.clone()), &[])
            .await;
        let expected = match key {
            None => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Some(_) => (StatusCode::FORBIDDEN, "forbidden"),
        };
        assert_eq!((r.status, r.code()), expected, "{:?}", r.body);
        if key.is_some() {
            assert!(r.body["detail"].as_str().unwrap().contains("gateway:sync"));
        }
    }
    assert_eq!(health(&app, "local").await["status"], "unknown");
    let gw = app.key_with(&["gateway:sync"]).await;
    let r = app
        .call_as(Some(&gw), Method::POST, HEALTH, Some(batch), &[])
        .await;
    assert_eq!(r.body, json!({"applied": 1, "ignored": 0}));
    assert_eq!(health(&app, "local").await["status"], "healthy");
}

async fn bad_health_batches_are_refused_naming_the_field_and_change_nothing(backend: Backend) {
    let app = app(backend).await;
    let gw = app.key_with(&["gateway:sync"]).await;
    let send = |body: Value| app.call_as(Some(&gw), Method::POST, HEALTH, Some(body), &[]);
    let before = health(&app, "local").await;
    let ok = || report("local", "healthy");
    let with = |field: &str, value: Value| {
        let mut r = ok();
        r[field] = value;
        r
    };
    let batch = |reports: Vec<Value>| json!({"gateway": "gw-a", "reports": reports});
    let too_many: Vec<Value> = (0..1001).map(|_| ok()).collect();
    let cases = [
        (batch(too_many), "reports"),
        (json!({"reports": [ok()]}), "gateway"),
        (json!({"gateway": "", "reports": [ok()]}), "gateway"),
        (
            json!({"gateway": "g".repeat(200), "reports": [ok()]}),
            "gateway",
        ),
        (
            json!({"gateway": "gw-a", "reports": [ok()], "extra": 1}),
            "extra",
        ),
        (
            batch(vec![ok(), with("colour", json!("red"))]),
            "reports[1].colour",
        ),
        (
            batch(vec![with("server", json!("Not A Path"))]),
            "reports[0].server",
        ),
        (
            batch(vec![with("status", json!("unknown"))]),
            "reports[0].status",
        ),
        (
            batch(vec![with("status", json!("auth_failed"))]),
            "reports[0].status",
        ),
        (
            batch(vec![with("status", json!("fine"))]),
            "reports[0].status",
        ),
        (
            batch(vec![with("reason", json!("r".repeat(2000)))]),
            "reports[0].reason",
        ),
        (
            batch(vec![with("latency_ms", json!(-1))]),
            "reports[0].latency_ms",
        ),
        (
            batch(vec![with("latency_ms", json!(9_000_000_000u64))]),
            "reports[0].latency_ms",
        ),
        // A Streamable HTTP server is the registry's to check; the valid report before it is
        // not applied either.
        (
            batch(vec![ok(), report("web", "unhealthy")]),
            "reports[1].server",
        ),
    ];
    for (body, field) in cases {
        let r = send(body).await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", field),
            "{:?}",
            r.body
        );
    }
    let r = app
        .client
        .post(format!("{}{HEALTH}", app.base))
        .bearer_auth(&gw)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"gateway\": \"gw-a\", \"reports\": [], \"pad\": \"{}\"}}",
            "x".repeat(1024 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(health(&app, "local").await, before, "nothing changed");
}

async fn reports_go_through_damping_and_history_and_unknown_servers_are_ignored(backend: Backend) {
    let app = app(backend).await;
    let gw = app.key_with(&["gateway:sync"]).await;
    let send = |gateway: &str, reports: Vec<Value>| {
        app.call_as(
            Some(&gw),
            Method::POST,
            HEALTH,
            Some(json!({"gateway": gateway, "reports": reports})),
            &[],
        )
    };
    let events = app
        .client
        .get(format!("{}/api/v1/events", app.base))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    let mut stream = events.bytes_stream();
    // A server deleted since the gateway's snapshot is skipped, the rest applies.
    let r = send(
        "gw-a",
        vec![report("gone", "healthy"), report("local", "healthy")],
    )
    .await;
    assert_eq!(r.body, json!({"applied": 1, "ignored": 1}), "{:?}", r.body);
    let h = health(&app, "local").await;
    assert_eq!(
        h["status"], "healthy",
        "the first result applies at once: {h}"
    );
    assert_eq!(h["history"][0]["trigger"], "gateway:gw-a");
    // One replica's bad report does not flip the status (damping 2)…
    send("gw-b", vec![report("local", "unhealthy")]).await;
    let h = health(&app, "local").await;
    assert_eq!(
        (h["status"].as_str(), h["disagreeing"].as_u64()),
        (Some("healthy"), Some(1)),
        "{h}"
    );
    assert_eq!(h["history"][0]["trigger"], "gateway:gw-b");
    // …a second agreeing one does, with its reason.
    send("gw-a", vec![report("local", "unhealthy")]).await;
    let h = health(&app, "local").await;
    assert_eq!(h["status"], "unhealthy", "{h}");
    assert_eq!(h["reason"], "unhealthy here");
    assert_eq!(h["history"].as_array().unwrap().len(), 3);
    // Several reports on one server in one batch apply in order.
    send(
        "gw-a",
        vec![report("local", "degraded"), report("local", "degraded")],
    )
    .await;
    let h = health(&app, "local").await;
    assert_eq!(
        (h["status"].as_str(), h["reason"].as_str()),
        (Some("degraded"), Some("degraded here")),
        "{h}"
    );
    assert_eq!(h["history"].as_array().unwrap().len(), 5);
    // The registry cannot reach a stdio server: a manual check answers what the gateways
    // reported and changes nothing.
    let manual = app.post("/api/v1/servers/local/health", json!({})).await;
    assert_eq!(manual.status, StatusCode::OK, "{:?}", manual.body);
    assert_eq!(
        manual.body["health"]["status"], "degraded",
        "{:?}",
        manual.body
    );
    let h = health(&app, "local").await;
    assert_eq!(
        (h["status"].as_str(), h["history"].as_array().unwrap().len()),
        (Some("degraded"), 5),
        "{h}"
    );
    // The changes were announced as the registry's own checks are.
    let mut seen = String::new();
    for status in ["healthy", "unhealthy", "degraded"] {
        crate::health::read_until(
            &mut stream,
            &mut seen,
            &[
                "event: health",
                r#""path":"local""#,
                &format!(r#""status":"{status}""#),
            ],
        )
        .await;
    }
}
