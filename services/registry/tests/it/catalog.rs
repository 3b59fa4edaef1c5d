//! `/v0.1/servers`: the official MCP Registry read API.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, server_body, spawn, spawn_with};

both_backends!(
    the_catalog_lists_approved_servers_as_server_json_with_gateway_urls,
    the_catalog_can_be_public_when_configured,
);

async fn the_catalog_lists_approved_servers_as_server_json_with_gateway_urls(backend: Backend) {
    let app = spawn_with(
        backend,
        "gateway_public_url = \"https://gw.example.com/\"\ncatalog_namespace = \"com.example\"",
    )
    .await;
    for p in ["alpha", "beta", "draft-only", "gone", "off"] {
        let mut body = server_body(p);
        body["description"] = json!(format!("{p} {}", "long text ".repeat(20)));
        app.register(body).await;
    }
    app.advance("alpha", "approved_prod").await;
    app.advance("beta", "approved_dev").await;
    app.advance("gone", "retired").await;
    app.advance("off", "approved_dev").await;
    app.post("/api/v1/servers/off/toggle", json!({"enabled": false}))
        .await;

    let r = app.get("/v0.1/servers").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let names: Vec<&str> = r.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["server"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["com.example/alpha", "com.example/beta"]);
    assert_eq!(r.body["metadata"]["count"], 2);
    let alpha = &r.body["servers"][0];
    // Every gateway route needs a token: each remote says so as server.json allows, with a
    // required, secret Authorization header.
    let hint = "An OAuth access token (JWT) from the auth-server: mint one on the console's Tokens page (/console/tokens)";
    let authorization = json!([{
        "name": "Authorization",
        "description": hint,
        "isRequired": true,
        "isSecret": true,
        "value": "Bearer {access_token}",
        "variables": {"access_token": {"description": hint, "isRequired": true, "isSecret": true}},
    }]);
    assert_eq!(
        alpha["server"]["remotes"],
        json!([
            {"type": "streamable-http", "url": "https://gw.example.com/alpha/mcp", "headers": authorization},
            {"type": "sse", "url": "https://gw.example.com/alpha/sse", "headers": authorization},
        ])
    );
    assert!(
        !alpha.to_string().contains("127.0.0.1:9"),
        "the upstream URL must not leak"
    );
    assert!(
        alpha["server"]["description"]
            .as_str()
            .unwrap()
            .chars()
            .count()
            <= 100
    );
    assert_eq!(
        alpha["_meta"]["io.modelcontextprotocol.registry/official"]["status"],
        "active"
    );
    assert_eq!(
        alpha["_meta"]["io.modelcontextprotocol.registry/official"]["isLatest"],
        true
    );

    let r = app.get("/v0.1/servers?include_deleted=true").await;
    let statuses: Vec<&str> = r.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["_meta"]["io.modelcontextprotocol.registry/official"]["status"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(statuses, ["active", "active", "deleted"]);

    let r = app.get("/v0.1/servers?limit=1").await;
    assert_eq!(r.body["servers"].as_array().unwrap().len(), 1);
    let cursor = r.body["metadata"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .get(&format!("/v0.1/servers?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(r.body["servers"][0]["server"]["name"], "com.example/beta");
    assert!(r.body["metadata"].get("nextCursor").is_none());

    let r = app.get("/v0.1/servers?search=ALPHA").await;
    assert_eq!(r.body["metadata"]["count"], 1);
    let r = app
        .get("/v0.1/servers?updated_since=2099-01-01T00:00:00Z")
        .await;
    assert_eq!(r.body["metadata"]["count"], 0);

    let r = app.get("/v0.1/servers/com.example%2Falpha/versions").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["servers"][0]["server"]["name"], "com.example/alpha");
    let r = app
        .get("/v0.1/servers/com.example%2Falpha/versions/latest")
        .await;
    assert_eq!(r.body["server"]["name"], "com.example/alpha");
    let r = app
        .get("/v0.1/servers/com.example%2Fdraft-only/versions/latest")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "drafts are not published");
    let r = app
        .get("/v0.1/servers/other.ns%2Falpha/versions/latest")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn the_catalog_can_be_public_when_configured(backend: Backend) {
    let private = spawn(backend).await;
    assert_eq!(
        private
            .call_as(None, Method::GET, "/v0.1/servers", None, &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let public = spawn_with(backend, "anonymous_catalog = true").await;
    assert_eq!(
        public
            .call_as(None, Method::GET, "/v0.1/servers", None, &[])
            .await
            .status,
        StatusCode::OK
    );
    // The REST API stays closed.
    assert_eq!(
        public
            .call_as(None, Method::GET, "/api/v1/servers", None, &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}
