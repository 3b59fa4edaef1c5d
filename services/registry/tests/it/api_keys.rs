//! API keys, the bootstrap key, operations endpoints and the OpenAPI document.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, server_body, spawn};

both_backends!(
    a_key_grants_at_most_its_creators_permissions_and_stops_working_when_revoked,
    the_bootstrap_key_is_created_once_across_restarts,
    health_ready_metrics_and_openapi_answer,
);

async fn a_key_grants_at_most_its_creators_permissions_and_stops_working_when_revoked(
    backend: Backend,
) {
    let app = spawn(backend).await;
    let r = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "ci publisher", "role": "publisher"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let key = r.body["key"].as_str().unwrap().to_owned();
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("mcpgw_{id}.")));
    assert!(
        r.body.get("secret_hash").is_none(),
        "the hash is never returned"
    );
    let me = app
        .call_as(Some(&key), Method::GET, "/api/v1/me", None, &[])
        .await;
    assert_eq!(me.body["subject"], format!("api_key:{id}"));
    assert_eq!(
        me.body["permissions"],
        json!([
            "servers:read",
            "servers:create",
            "servers:update",
            "lifecycle:submit"
        ])
    );
    let r = app
        .call_as(
            Some(&key),
            Method::POST,
            "/api/v1/servers",
            Some(server_body("by-publisher")),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["created_by"], format!("api_key:{id}"));

    // An admin-made manager key cannot mint beyond itself.
    let manager = app.key_with(&["api_keys:manage", "servers:read"]).await;
    let r = app
        .call_as(
            Some(&manager),
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "escalate", "role": "admin"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body["detail"].as_str().unwrap().contains("cannot grant"));

    // Nor revoke a key stronger than itself (the bootstrap admin key).
    let r = app
        .call_as(
            Some(&manager),
            Method::DELETE,
            "/api/v1/api-keys/bootstrap",
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(
        app.get("/api/v1/me").await.status,
        StatusCode::OK,
        "the admin key still works"
    );

    let listed = app.get("/api/v1/api-keys").await.body;
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"bootstrap") && ids.contains(&id.as_str()));
    assert!(!listed.to_string().contains("secret_hash"));

    let r = app
        .call(Method::DELETE, &format!("/api/v1/api-keys/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call_as(Some(&key), Method::GET, "/api/v1/servers", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .call(Method::DELETE, &format!("/api/v1/api-keys/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "revoking twice");
    let actions: Vec<String> = app
        .audit("resource_type=api_key")
        .await
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                a["action"].as_str().unwrap(),
                a["resource_id"].as_str().unwrap()
            )
        })
        .collect();
    assert!(actions.contains(&format!("api_key.revoke:{id}")));
    assert!(actions.contains(&format!("api_key.create:{id}")));
}

async fn the_bootstrap_key_is_created_once_across_restarts(backend: Backend) {
    let app = spawn(backend).await;
    let config = app.running.state.config.as_ref().clone();
    let key = app.key.clone();
    app.running.stop().await;
    let again = registry::app::start(config).await.unwrap();
    assert!(
        again.bootstrap_key.is_none(),
        "a second start must not mint another admin key"
    );
    let client = reqwest::Client::new();
    let r = client
        .get(format!("http://{}/api/v1/me", again.addr))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the first key still works after a restart"
    );
    // Break-glass: a new admin key through the service, as `registry admin-key` does.
    let extra = again
        .state
        .registry
        .create_admin_key("break glass")
        .await
        .unwrap();
    let r = client
        .get(format!("http://{}/api/v1/audit", again.addr))
        .bearer_auth(&extra)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    again.stop().await;
}

async fn health_ready_metrics_and_openapi_answer(backend: Backend) {
    let app = spawn(backend).await;
    let r = app.call_as(None, Method::GET, "/health", None, &[]).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let r = app.call_as(None, Method::GET, "/ready", None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body["store"],
        if backend == Backend::Sqlite {
            "sqlite"
        } else {
            "mongodb"
        }
    );
    app.get("/api/v1/servers").await;
    let metrics = app
        .client
        .get(format!("{}/metrics", app.metrics))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mcpgw_registry_http_requests_total{method=\"GET\",route=\"/api/v1/servers\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains(&app.key));
    let r = app.call_as(None, Method::GET, "/metrics", None, &[]).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "metrics are not served on the API port"
    );
    let doc = app
        .call_as(None, Method::GET, "/api/v1/openapi.json", None, &[])
        .await
        .body;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/servers", vec!["get", "post"]),
        (
            "/api/v1/servers/{path}",
            vec!["get", "put", "patch", "delete"],
        ),
        ("/api/v1/servers/{path}/toggle", vec!["post"]),
        ("/api/v1/servers/{path}/lifecycle", vec!["post"]),
        ("/api/v1/servers/{path}/tools", vec!["get", "put"]),
        ("/api/v1/api-keys", vec!["get", "post"]),
        ("/api/v1/audit", vec!["get"]),
        ("/v0.1/servers", vec!["get"]),
    ] {
        for m in methods {
            assert!(paths[path].get(m).is_some(), "OpenAPI lacks {m} {path}");
        }
    }
    assert!(doc["components"]["schemas"]["ServerSpec"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}
