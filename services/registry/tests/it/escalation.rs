//! The catalog cannot be used to escalate privileges (issue 15): a key that may update servers
//! cannot redirect an approved server's traffic or credentials, set identity assertion, touch
//! the registry's own record, smuggle platform headers, learn about servers it may not read,
//! or approve a command into routing without the permission to register one.

use std::sync::{Arc, Mutex};

use mcpgw_core::auth::{CallerAssertion, Permission, PrincipalKind};
use mcpgw_core::domain::{ServerPath, ServerRecord, UpstreamAuth};
use registry::store::AuditRecord;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, server_body, spawn, spawn_with};

both_backends!(
    moving_an_approved_server_sends_it_back_to_review_and_never_carries_its_credentials,
    a_path_change_on_the_same_origin_is_a_review_but_keeps_the_credentials,
    assert_caller_needs_its_own_permission,
    the_registrys_own_record_is_system_owned_and_admins_cannot_mint_delegate_keys,
    platform_headers_are_refused_as_custom_headers_and_never_sent_by_the_registry,
    operations_on_an_unreadable_server_answer_exactly_like_a_missing_one,
    approving_a_stdio_server_into_routing_needs_servers_stdio,
    credentials_sealed_before_origin_binding_are_rebound_once_and_never_follow_a_moved_endpoint,
    a_delegate_permission_counts_only_on_the_key_the_registry_minted_for_itself,
    the_registrys_path_is_reserved_even_before_it_registers_itself,
);

const PUBLISHER: &[&str] = &[
    "servers:read",
    "servers:create",
    "servers:update",
    "servers:delete",
    "servers:toggle",
    "lifecycle:submit",
];

fn with_credentials(path: &str, url: &str) -> Value {
    let mut body = server_body(path);
    body["endpoint"]["url"] = json!(url);
    body["upstream_auth"] = json!({"type": "bearer", "token": "plain-token-for-origin-a"});
    body["custom_headers"] = json!({"X-Tenant": "plain-tenant-for-origin-a"});
    body
}

/// A refusal with `status` whose detail names the permission that would allow the request.
fn assert_refused_naming(r: &crate::helpers::Reply, status: StatusCode, permission: &str) {
    assert_eq!(r.status, status, "{:?}", r.body);
    let detail = r.body["detail"].as_str().unwrap_or("");
    assert!(detail.contains(permission), "{:?}", r.body);
}

/// The permissions `key` holds, as `GET /api/v1/me` lists them.
async fn held_by(app: &TestApp, key: &str) -> Vec<String> {
    let me = app
        .call_as(Some(key), Method::GET, "/api/v1/me", None, &[])
        .await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    serde_json::from_value(me.body["permissions"].clone()).unwrap()
}

async fn patch(app: &TestApp, key: &str, path: &str, patch: Value) -> crate::helpers::Reply {
    app.call_as(
        Some(key),
        Method::PATCH,
        &format!("/api/v1/servers/{path}"),
        Some(patch),
        &[],
    )
    .await
}

async fn moving_an_approved_server_sends_it_back_to_review_and_never_carries_its_credentials(
    backend: Backend,
) {
    let app = spawn(backend).await;
    app.register(with_credentials("weather", "http://127.0.0.1:9/mcp"))
        .await;
    app.advance("weather", "approved_prod").await;
    let publisher = app.key_with(PUBLISHER).await;
    let before = app.get("/api/v1/servers/weather").await.body;
    assert_eq!(before["routable"], true);

    // A new origin without the credentials: refused, naming the credential; nothing changes.
    let moved =
        json!({"endpoint": {"transport": "streamable-http", "url": "http://127.0.0.2:9/mcp"}});
    let r = patch(&app, &publisher, "weather", moved.clone()).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.field(), "upstream_auth.token", "{:?}", r.body);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("http://127.0.0.2:9")
    );
    let after = app.get("/api/v1/servers/weather").await.body;
    assert_eq!(after["revision"], before["revision"]);
    assert_eq!(after["endpoint"], before["endpoint"]);
    // The custom headers (which can carry credentials) must be given again too.
    let mut with_token = moved.clone();
    with_token["upstream_auth"] = json!({"type": "bearer", "token": "plain-token-for-origin-b"});
    let r = patch(&app, &publisher, "weather", with_token.clone()).await;
    assert_eq!(r.field(), "custom_headers", "{:?}", r.body);

    // With credentials for the new origin: accepted, and back to review, not routable.
    with_token["custom_headers"] = json!({});
    let r = patch(&app, &publisher, "weather", with_token).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["lifecycle"], "submitted");
    assert_eq!(r.body["routable"], false);
    assert_eq!(r.body["custom_header_names"], json!([]));
    let history = r.body["lifecycle_history"].as_array().unwrap();
    let last = history.last().unwrap();
    assert_eq!(last["from"], "approved_prod");
    assert_eq!(last["to"], "submitted");
    // Audited with the diff: fields, old and new endpoint; no secret value.
    let audit = app.audit("action=server.update").await;
    let review = &audit[0]["details"]["review"];
    assert_eq!(review["lifecycle_before"], "approved_prod", "{}", audit[0]);
    assert_eq!(review["endpoint_before"], "http://127.0.0.1:9/mcp");
    assert_eq!(review["endpoint_after"], "http://127.0.0.2:9/mcp");
    let reasons = review["reasons"].as_array().unwrap();
    for field in ["endpoint", "upstream_auth", "custom_headers"] {
        assert!(reasons.contains(&json!(field)), "{reasons:?}");
    }
    let trail = serde_json::to_string(&app.audit("").await).unwrap();
    assert!(!trail.contains("plain-token") && !trail.contains("plain-tenant"));
    // Only a reviewer makes it routable again (the publisher cannot).
    for (to, status) in [
        ("security_review", StatusCode::FORBIDDEN),
        ("approved_dev", StatusCode::CONFLICT),
    ] {
        let r = app
            .call_as(
                Some(&publisher),
                Method::POST,
                "/api/v1/servers/weather/lifecycle",
                Some(json!({"to": to, "reason": "mine"})),
                &[],
            )
            .await;
        assert_eq!(r.status, status, "{to}: {:?}", r.body);
    }
    // The stored token opens only for the new origin.
    let record = app
        .running
        .state
        .registry
        .store
        .get_server(&ServerPath::parse("weather").unwrap())
        .await
        .unwrap()
        .unwrap();
    let UpstreamAuth::Bearer { token } = &record.upstream_auth else {
        panic!("{:?}", record.upstream_auth)
    };
    let keyring = &app.running.state.registry.keyring;
    assert_eq!(
        record
            .open_secret(keyring, "upstream_auth.token", token)
            .unwrap(),
        "plain-token-for-origin-b"
    );
    app.running.stop().await;
}

async fn a_path_change_on_the_same_origin_is_a_review_but_keeps_the_credentials(backend: Backend) {
    let app = spawn(backend).await;
    app.register(with_credentials("weather", "http://127.0.0.1:9/mcp"))
        .await;
    app.advance("weather", "approved_dev").await;
    let publisher = app.key_with(PUBLISHER).await;
    let r = patch(
        &app,
        &publisher,
        "weather",
        json!({"endpoint": {"transport": "streamable-http", "url": "http://127.0.0.1:9/other/mcp"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["lifecycle"], "submitted");
    assert_eq!(r.body["custom_header_names"], json!(["x-tenant"]));
    // A change that decides nothing about traffic stays approved; re-sending the same
    // secret is no change either.
    for to in ["security_review", "approved_dev"] {
        assert_eq!(app.transition("weather", to).await.status, StatusCode::OK);
    }
    let r = patch(
        &app,
        &publisher,
        "weather",
        json!({"description": "new words", "upstream_auth": {"type": "bearer", "token": "plain-token-for-origin-a"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["lifecycle"], "approved_dev");
    // Turning on argument logging is a review.
    let r = patch(
        &app,
        &publisher,
        "weather",
        json!({"gateway": {"log_arguments": true}}),
    )
    .await;
    assert_eq!(r.body["lifecycle"], "submitted", "{:?}", r.body);
    app.running.stop().await;
}

async fn assert_caller_needs_its_own_permission(backend: Backend) {
    let app = spawn(backend).await;
    let publisher = app.key_with(PUBLISHER).await;
    let mut body = server_body("asserted");
    body["gateway"] = json!({"assert_caller": true});
    let r = app
        .call_as(
            Some(&publisher),
            Method::POST,
            "/api/v1/servers",
            Some(body.clone()),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("servers:assert_caller")
    );
    app.register(server_body("plain")).await;
    let r = patch(
        &app,
        &publisher,
        "plain",
        json!({"gateway": {"assert_caller": true}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(app.audit("action=server.update").await.len(), 0);
    // With the permission it is accepted.
    let mut allowed = PUBLISHER.to_vec();
    allowed.push("servers:assert_caller");
    let asserter = app.key_with(&allowed).await;
    let r = patch(
        &app,
        &asserter,
        "plain",
        json!({"gateway": {"assert_caller": true}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    app.running.stop().await;
}

async fn the_registrys_own_record_is_system_owned_and_admins_cannot_mint_delegate_keys(
    backend: Backend,
) {
    let app = spawn_with(backend, "[mcp]\nregister = true\n").await;
    let path = "/api/v1/servers/mcpgw-registry";
    let before = app.get(path).await.body;
    assert_eq!(before["lifecycle"], "approved_prod", "{before}");
    let mut everything = PUBLISHER.to_vec();
    everything.extend([
        "lifecycle:deprecate",
        "lifecycle:review",
        "tools:approve",
        "servers:assert_caller",
    ]);
    let key = app.key_with(&everything).await;
    let attempts = [
        (
            Method::PATCH,
            path.to_owned(),
            json!({"endpoint": {"transport": "streamable-http", "url": "http://127.0.0.2:9/mcp"},
                   "upstream_auth": {"type": "bearer", "token": "mine"}}),
        ),
        (
            Method::PATCH,
            path.to_owned(),
            json!({"custom_headers": {"x-extra": "1"}}),
        ),
        (
            Method::POST,
            format!("{path}/toggle"),
            json!({"enabled": false}),
        ),
        (
            Method::POST,
            format!("{path}/lifecycle"),
            json!({"to": "deprecated", "reason": "mine"}),
        ),
        (Method::PUT, format!("{path}/tools"), json!({"tools": []})),
    ];
    for (method, url, body) in attempts {
        let r = app
            .call_as(Some(&key), method.clone(), &url, Some(body), &[])
            .await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{method} {url}: {:?}",
            r.body
        );
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap()
                .contains("servers:system"),
            "{:?}",
            r.body
        );
    }
    let r = app
        .call_as(Some(&key), Method::DELETE, path, None, &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let after = app.get(path).await.body;
    assert_eq!(after["revision"], before["revision"]);
    // The bootstrap admin holds every permission but the machine-only one, so nobody can
    // mint a delegate key through the API.
    let held = held_by(&app, &app.key).await;
    assert!(!held.iter().any(|p| p == "gateway:delegate"), "{held:?}");
    assert!(held.iter().any(|p| p == "servers:system") && held.iter().any(|p| p == "gateway:sync"));
    let r = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "x", "permissions": ["gateway:delegate"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    app.running.stop().await;
}

/// A listener that records the headers of every request and answers 401.
async fn recorder() -> (String, Arc<Mutex<Vec<http::HeaderMap>>>) {
    let seen: Arc<Mutex<Vec<http::HeaderMap>>> = Arc::default();
    let record = seen.clone();
    let router = axum::Router::new().fallback(move |headers: http::HeaderMap| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push(headers);
            StatusCode::UNAUTHORIZED
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, seen)
}

fn audit_entry(path: &str) -> AuditRecord {
    AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at: mcpgw_core::time::Timestamp::now(),
        request_id: None,
        actor: "test:database".into(),
        actor_kind: PrincipalKind::System,
        action: "server.update".into(),
        resource_type: "server".into(),
        resource_id: path.into(),
        revision_before: None,
        revision_after: None,
        details: json!({}),
    }
}

async fn platform_headers_are_refused_as_custom_headers_and_never_sent_by_the_registry(
    backend: Backend,
) {
    let app = spawn(backend).await;
    for name in [
        "x-mcpgw-caller",
        "X-MCPGW-Anything",
        "mcp-param-city",
        "traceparent",
        "cookie",
        "Authorization",
        "x-forwarded-for",
    ] {
        let mut body = server_body("headers");
        body["custom_headers"] = json!({name: "v"});
        let r = app.post("/api/v1/servers", body).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}: {:?}",
            r.body
        );
        assert_eq!(r.field(), format!("custom_headers.{name}"));
        assert!(
            r.body["detail"].as_str().unwrap().contains("platform"),
            "{:?}",
            r.body
        );
    }
    // A record stored before the rule (written to the database directly) still never makes
    // the registry send the header.
    let (url, seen) = recorder().await;
    let mut body = server_body("legacy");
    body["endpoint"]["url"] = json!(url);
    body["custom_headers"] = json!({"X-Tenant": "acme"});
    app.register(body).await;
    let registry = &app.running.state.registry;
    let path = ServerPath::parse("legacy").unwrap();
    let mut record = registry.store.get_server(&path).await.unwrap().unwrap();
    let sealed = registry.keyring.seal(
        &record.secret_context("custom_headers.x-mcpgw-caller"),
        "forged-caller",
    );
    record
        .custom_headers
        .insert("x-mcpgw-caller".into(), sealed);
    let expected = record.revision;
    record.revision += 1;
    registry
        .store
        .update_server(&record, expected, &audit_entry("legacy"))
        .await
        .unwrap();
    let r = app.post("/api/v1/servers/legacy/health", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the health check reached the server");
    for headers in &seen {
        assert_eq!(headers.get("x-tenant").unwrap(), "acme");
        assert!(headers.get("x-mcpgw-caller").is_none(), "{headers:?}");
    }
    app.running.stop().await;
}

async fn operations_on_an_unreadable_server_answer_exactly_like_a_missing_one(backend: Backend) {
    let app = spawn(backend).await;
    app.register(server_body("visible")).await;
    app.register(server_body("hidden")).await;
    app.advance("hidden", "approved_dev").await;
    // A caller who may read only `visible`, but holds every other permission everywhere.
    let ui: serde_json::Map<String, Value> = Permission::ALL
        .iter()
        .filter(|p| **p != Permission::ServersRead)
        .flat_map(|p| p.ui_actions())
        .map(|a| ((*a).to_owned(), json!(["all"])))
        .chain([("list_service".to_owned(), json!(["visible"]))])
        .collect();
    let scope =
        json!({"name": "one-reader", "group_mappings": ["one-reader"], "ui_permissions": ui});
    let r = app
        .call(Method::PUT, "/api/v1/scopes/one-reader", Some(scope))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let delegate = registry_delegate_key(&app).await;
    let assertion = CallerAssertion {
        issuer: "https://idp.example".into(),
        subject: "mallory".into(),
        username: Some("mallory".into()),
        client_id: None,
        groups: vec!["one-reader".into()],
        scopes: vec![],
    }
    .encode();
    let headers = [("x-mcpgw-caller", assertion.as_str())];
    let hash = "0".repeat(64);
    let ops: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "", None),
        (Method::PUT, "", Some(server_body("{path}"))),
        (Method::PATCH, "", Some(json!({"name": "x"}))),
        (Method::DELETE, "", None),
        (Method::POST, "/toggle", Some(json!({"enabled": false}))),
        (
            Method::POST,
            "/lifecycle",
            Some(json!({"to": "approved_prod", "reason": "r"})),
        ),
        (
            Method::POST,
            "/lifecycle",
            Some(json!({"to": "deprecated", "reason": "r"})),
        ),
        (Method::GET, "/tools", None),
        (Method::PUT, "/tools", Some(json!({"tools": []}))),
        (
            Method::POST,
            "/tools/approve",
            Some(json!({"tools": {"t": hash}})),
        ),
        (
            Method::POST,
            "/tools/reject",
            Some(json!({"tools": {"t": hash}, "reason": "r"})),
        ),
        (Method::POST, "/tools/refresh", None),
        (Method::GET, "/health", None),
        (Method::POST, "/health", None),
    ];
    for (method, suffix, body) in ops {
        let mut answers = Vec::new();
        for path in ["hidden", "missing"] {
            let body = body
                .as_ref()
                .map(|b| serde_json::from_str(&b.to_string().replace("{path}", path)).unwrap());
            let r = app
                .call_as(
                    Some(&delegate),
                    method.clone(),
                    &format!("/api/v1/servers/{path}{suffix}"),
                    body,
                    &headers,
                )
                .await;
            let text = r.body.to_string().replace(path, "<path>");
            answers.push((r.status, text));
        }
        assert_eq!(answers[0], answers[1], "{method} {suffix}");
        assert_eq!(
            answers[0].0,
            StatusCode::NOT_FOUND,
            "{method} {suffix}: {:?}",
            answers[0]
        );
    }
    let hidden = app.get("/api/v1/servers/hidden").await.body;
    assert_eq!(hidden["lifecycle"], "approved_dev");
    assert_eq!(hidden["enabled"], true);
    app.running.stop().await;
}

/// A `gateway:delegate` key, minted as the registry mints it for its own record (no API
/// caller can: it is machine-only).
async fn registry_delegate_key(app: &TestApp) -> String {
    app.running
        .state
        .registry
        .create_cli_key("delegate", vec![Permission::GatewayDelegate])
        .await
        .unwrap()
}

async fn approving_a_stdio_server_into_routing_needs_servers_stdio(backend: Backend) {
    let app = spawn(backend).await;
    let mut body = server_body("local");
    body["endpoint"] = json!({"transport": "stdio", "command": "python3", "args": ["-V"]});
    app.register(body).await;
    app.transition("local", "submitted").await;
    app.transition("local", "security_review").await;
    let reviewer = app
        .key_with(&["servers:read", "lifecycle:review", "lifecycle:approve_prod"])
        .await;
    let approve = |key: String| {
        let app = &app;
        async move {
            app.call_as(
                Some(&key),
                Method::POST,
                "/api/v1/servers/local/lifecycle",
                Some(json!({"to": "approved_dev", "reason": "looks fine"})),
                &[],
            )
            .await
        }
    };
    let r = approve(reviewer).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains("servers:stdio"));
    assert_eq!(
        app.get("/api/v1/servers/local").await.body["lifecycle"],
        "security_review"
    );
    let stdio_reviewer = app
        .key_with(&["servers:read", "lifecycle:review", "servers:stdio"])
        .await;
    let r = approve(stdio_reviewer).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    app.running.stop().await;
}

async fn credentials_sealed_before_origin_binding_are_rebound_once_and_never_follow_a_moved_endpoint(
    backend: Backend,
) {
    let app = spawn(backend).await;
    app.register(with_credentials("old", "http://127.0.0.1:9/mcp"))
        .await;
    let registry = &app.running.state.registry;
    let path = ServerPath::parse("old").unwrap();
    // Seal as the registry did before the binding: record and field only.
    let mut record = registry.store.get_server(&path).await.unwrap().unwrap();
    let legacy = |field: &str, plain: &str| {
        registry.keyring.seal(
            &ServerRecord::legacy_secret_context(record.id, field),
            plain,
        )
    };
    let token = legacy("upstream_auth.token", "legacy-token");
    let header = legacy("custom_headers.x-tenant", "legacy-tenant");
    record.upstream_auth = UpstreamAuth::Bearer { token };
    record.custom_headers.insert("x-tenant".into(), header);
    let expected = record.revision;
    record.revision += 1;
    registry
        .store
        .update_server(&record, expected, &audit_entry("old"))
        .await
        .unwrap();
    let UpstreamAuth::Bearer { token } = &record.upstream_auth else {
        unreachable!()
    };
    assert!(
        record
            .open_secret(&registry.keyring, "upstream_auth.token", token)
            .is_err(),
        "a legacy value does not open with the bound context"
    );
    // The start-up step re-seals them for the endpoint the record has; a second run finds
    // nothing to do.
    assert_eq!(registry.rebind_legacy_secrets().await.unwrap(), 2);
    assert_eq!(registry.rebind_legacy_secrets().await.unwrap(), 0);
    let rebound = registry.store.get_server(&path).await.unwrap().unwrap();
    let UpstreamAuth::Bearer { token } = &rebound.upstream_auth else {
        panic!()
    };
    assert_eq!(
        rebound
            .open_secret(&registry.keyring, "upstream_auth.token", token)
            .unwrap(),
        "legacy-token"
    );
    let audit = app.audit("action=server.secrets_rebound").await;
    assert_eq!(audit.len(), 1);
    // Moved in the database: the value opens neither bound to the new origin nor as legacy
    // (the registry never accepts the legacy context again).
    let mut altered = rebound.clone();
    altered.endpoint = mcpgw_core::domain::Endpoint::StreamableHttp {
        url: "http://127.0.0.2:9/mcp".into(),
    };
    assert!(
        altered
            .open_secret(&registry.keyring, "upstream_auth.token", token)
            .is_err()
    );
    let sealed_header = &altered.custom_headers["x-tenant"];
    let opened = registry
        .keyring
        .open(
            &rebound.secret_context("custom_headers.x-tenant"),
            sealed_header,
        )
        .unwrap();
    assert_eq!(opened.expose_secret(), "legacy-tenant");
    assert!(
        altered
            .open_secret(&registry.keyring, "custom_headers.x-tenant", sealed_header)
            .is_err()
    );
    app.running.stop().await;
}

async fn a_delegate_permission_counts_only_on_the_key_the_registry_minted_for_itself(
    backend: Backend,
) {
    let app = spawn(backend).await;
    let assertion = CallerAssertion {
        issuer: "https://idp.example".into(),
        subject: "mallory".into(),
        username: Some("mallory".into()),
        client_id: None,
        groups: vec![],
        scopes: vec![],
    }
    .encode();
    let headers = [("x-mcpgw-caller", assertion.as_str())];
    // An admin key minted before `gateway:delegate` became machine-only holds every
    // permission, that one included, in its stored list.
    let old_admin = app
        .running
        .state
        .registry
        .create_cli_key("old admin", Permission::ALL.to_vec())
        .await
        .unwrap();
    let held = held_by(&app, &old_admin).await;
    assert!(!held.iter().any(|p| p == "gateway:delegate"), "{held:?}");
    assert!(held.iter().any(|p| p == "servers:system"), "{held:?}");
    let r = app
        .call_as(Some(&old_admin), Method::GET, "/api/v1/me", None, &headers)
        .await;
    assert_refused_naming(&r, StatusCode::FORBIDDEN, "gateway:delegate");
    // The delegate key as the registry mints it (that permission alone, by the registry
    // process) still acts as the asserted caller.
    let delegate = registry_delegate_key(&app).await;
    let r = app
        .call_as(Some(&delegate), Method::GET, "/api/v1/me", None, &headers)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["subject"], "jwt:https://idp.example#mallory");
}

async fn the_registrys_path_is_reserved_even_before_it_registers_itself(backend: Backend) {
    // The test config has `mcp.register = false`: the registry's own record does not exist
    // yet, and a later start with registration on would find whatever was put there.
    let app = spawn(backend).await;
    let publisher = app.key_with(PUBLISHER).await;
    let create = |path: &str| {
        app.call_as(
            Some(&publisher),
            Method::POST,
            "/api/v1/servers",
            Some(server_body(path)),
            &[],
        )
    };
    let r = create("mcpgw-registry").await;
    assert_refused_naming(&r, StatusCode::FORBIDDEN, "servers:system");
    let missing = app.get("/api/v1/servers/mcpgw-registry").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // Any other path is the publisher's to take.
    let r = create("weather").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}
