//! The registry's own MCP server at `/mcp`, called by a real MCP client (rmcp over Streamable
//! HTTP) with the REST API's credentials: each tool works for a permitted caller, is refused
//! with the REST message for one without the permission, and bad input changes nothing.

use mcpgw_core::auth::{CallerAssertion, Permission};
use reqwest::{Method, StatusCode};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, server_body, spawn_with};

both_backends!(
    every_tool_works_for_a_permitted_caller_and_is_refused_like_rest_otherwise,
    bad_input_names_the_field_and_changes_nothing,
    the_registry_registers_itself_once_across_restarts,
    a_caller_assertion_counts_only_beside_a_gateway_delegate_key,
);

const REGISTER: &str = "[mcp]\nregister = true\n";

async fn client(app: &TestApp, key: &str) -> RunningService<RoleClient, ()> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", app.base)).auth_header(key);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("the MCP client connects")
}

/// Calls a tool; `Ok(structured result)` or `Err(the error envelope)` for `isError` results.
async fn call(c: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> Result<Value, Value> {
    let args = args.as_object().cloned().unwrap_or_default();
    let r = c
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .expect("a tool result, not a protocol error");
    let value = r.structured_content.clone().expect("structured content");
    if r.is_error == Some(true) {
        Err(value)
    } else {
        Ok(value)
    }
}

fn count(app_list: &Value) -> usize {
    app_list["items"].as_array().unwrap().len()
}

async fn every_tool_works_for_a_permitted_caller_and_is_refused_like_rest_otherwise(
    backend: Backend,
) {
    let app = spawn_with(backend, REGISTER).await;
    let admin = client(&app, &app.key).await;
    let tools = admin.list_all_tools().await.unwrap();
    let read_only: Vec<(String, bool)> = tools
        .iter()
        .map(|t| {
            let ro = t.annotations.as_ref().and_then(|a| a.read_only_hint) == Some(true);
            (t.name.to_string(), ro)
        })
        .collect();
    for (name, ro) in [
        ("list_servers", true),
        ("get_server", true),
        ("search", true),
        ("health", true),
        ("register_server", false),
        ("update_server", false),
        ("toggle_server", false),
        ("transition_lifecycle", false),
        ("refresh_tools", false),
    ] {
        assert!(
            read_only.contains(&(name.to_owned(), ro)),
            "{name}: {read_only:?}"
        );
    }

    // Writes, as the admin; each is what REST would answer, and audited with the caller.
    let created = call(&admin, "register_server", server_body("weather"))
        .await
        .unwrap();
    assert_eq!(created["lifecycle"], "draft");
    let rest = app.get("/api/v1/servers/weather").await;
    assert_eq!(rest.status, StatusCode::OK);
    assert_eq!(rest.body["id"], created["id"]);
    let revision = created["revision"].as_u64().unwrap();
    let updated = call(
        &admin,
        "update_server",
        json!({"path": "weather", "patch": {"description": "Forecasts"}, "revision": revision}),
    )
    .await
    .unwrap();
    assert_eq!(updated["description"], "Forecasts");
    let stale = call(
        &admin,
        "update_server",
        json!({"path": "weather", "patch": {"description": "x"}, "revision": revision}),
    )
    .await
    .unwrap_err();
    assert_eq!(stale["code"], "revision_conflict", "{stale}");
    let toggled = call(
        &admin,
        "toggle_server",
        json!({"path": "weather", "enabled": false}),
    )
    .await
    .unwrap();
    assert_eq!(toggled["enabled"], false);
    let moved = call(
        &admin,
        "transition_lifecycle",
        json!({"path": "weather", "to": "submitted", "reason": "ready"}),
    )
    .await
    .unwrap();
    assert_eq!(moved["lifecycle"], "submitted");
    let bad_step = call(
        &admin,
        "transition_lifecycle",
        json!({"path": "weather", "to": "retired", "reason": "no"}),
    )
    .await
    .unwrap_err();
    assert_eq!(bad_step["code"], "invalid_transition", "{bad_step}");
    let me = app.get("/api/v1/me").await.body["subject"].clone();
    let audit = app.audit("resource_id=weather").await;
    for action in [
        "server.create",
        "server.update",
        "server.toggle",
        "server.lifecycle",
    ] {
        let entry = audit
            .iter()
            .find(|a| a["action"].as_str().unwrap_or("").starts_with(action))
            .unwrap_or_else(|| panic!("{action} audited: {audit:?}"));
        assert_eq!(entry["actor"], me, "{entry}");
    }

    // Reads.
    let list = call(&admin, "list_servers", json!({"limit": 1}))
        .await
        .unwrap();
    assert_eq!(count(&list), 1, "{list}");
    assert!(list["next_cursor"].is_string());
    let next = call(
        &admin,
        "list_servers",
        json!({"cursor": list["next_cursor"], "enabled": false}),
    )
    .await
    .unwrap();
    assert!(
        next["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["enabled"] == false)
    );
    let got = call(&admin, "get_server", json!({"path": "weather"}))
        .await
        .unwrap();
    assert_eq!(got["lifecycle"], "submitted");
    let health = call(&admin, "health", json!({"path": "weather"}))
        .await
        .unwrap();
    assert_eq!(health["path"], "weather");
    let found = call(&admin, "search", json!({"query": "weather"}))
        .await
        .unwrap();
    assert!(found.to_string().contains("weather"), "{found}");
    // Tool discovery over the network: the registry lists its own tools through its record.
    let refreshed = call(&admin, "refresh_tools", json!({"path": "mcpgw-registry"}))
        .await
        .unwrap();
    assert_eq!(refreshed["tools"].as_array().unwrap().len(), tools.len());
    let missing = call(&admin, "get_server", json!({"path": "nowhere"}))
        .await
        .unwrap_err();
    assert_eq!(missing["code"], "server_not_found");

    // A reader: reads work, every write is refused with the REST message, nothing changes.
    let viewer_key = app.key_with(&["servers:read"]).await;
    let viewer = client(&app, &viewer_key).await;
    assert!(count(&call(&viewer, "list_servers", json!({})).await.unwrap()) >= 2);
    for (tool, args, permission) in [
        ("register_server", server_body("other"), "servers:create"),
        (
            "update_server",
            json!({"path": "weather", "patch": {"name": "x"}}),
            "servers:update",
        ),
        (
            "toggle_server",
            json!({"path": "weather", "enabled": true}),
            "servers:toggle",
        ),
        (
            "transition_lifecycle",
            json!({"path": "weather", "to": "security_review", "reason": "r"}),
            "lifecycle:review",
        ),
        (
            "refresh_tools",
            json!({"path": "weather"}),
            "servers:update",
        ),
    ] {
        let refused = call(&viewer, tool, args).await.unwrap_err();
        assert_eq!(refused["code"], "forbidden", "{tool}: {refused}");
        assert_eq!(
            refused["detail"],
            format!(
                "this action needs the permission `{permission}`, which the caller does not have"
            ),
            "{tool}"
        );
    }
    let after = app.get("/api/v1/servers/weather").await.body;
    assert_eq!(after["revision"], got["revision"]);
    assert_eq!(after["enabled"], false);
    assert_eq!(
        app.get("/api/v1/servers/other").await.status,
        StatusCode::NOT_FOUND
    );
    // A key that may read nothing gets "forbidden", as on REST.
    let nobody = client(&app, &app.key_with(&["audit:read"]).await).await;
    let refused = call(&nobody, "list_servers", json!({})).await.unwrap_err();
    assert_eq!(refused["code"], "forbidden");

    // No credentials, or bad ones: 401 before any MCP message.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let r = app
        .call_as(
            None,
            Method::POST,
            "/mcp",
            Some(init.clone()),
            &[("accept", "application/json, text/event-stream")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .call_as(
            Some("mcpgw_nope.000000000000000000000000"),
            Method::POST,
            "/mcp",
            Some(init),
            &[("accept", "application/json, text/event-stream")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for c in [admin, viewer, nobody] {
        let _ = c.cancel().await;
    }
    app.running.stop().await;
}

async fn bad_input_names_the_field_and_changes_nothing(backend: Backend) {
    let app = spawn_with(backend, "").await;
    let admin = client(&app, &app.key).await;
    app.register(server_body("weather")).await;
    let before = app.get("/api/v1/servers/weather").await.body;
    let audit_before = app.audit("").await.len();
    for (tool, args, field) in [
        (
            "register_server",
            json!({"path": "xx", "name": "", "endpoint": {"transport": "streamable-http", "url": "http://127.0.0.1:9/mcp"}, "governance": {"owner_team": "t"}}),
            "name",
        ),
        (
            "register_server",
            json!({"path": "Bad Path", "name": "n", "endpoint": {"transport": "streamable-http", "url": "http://127.0.0.1:9/mcp"}, "governance": {"owner_team": "t"}}),
            "path",
        ),
        (
            "register_server",
            json!({"path": "meta", "name": "n", "endpoint": {"transport": "streamable-http", "url": "http://169.254.169.254/mcp"}, "governance": {"owner_team": "t"}}),
            "endpoint.url",
        ),
        (
            "toggle_server",
            json!({"path": "weather", "enabled": "yes"}),
            "enabled",
        ),
        (
            "toggle_server",
            json!({"path": "weather", "enabled": true, "extra": 1}),
            "extra",
        ),
        (
            "update_server",
            json!({"path": "weather", "patch": {"name": "x".repeat(200)}}),
            "name",
        ),
        (
            "transition_lifecycle",
            json!({"path": "weather", "to": "nowhere", "reason": "r"}),
            "to",
        ),
        ("list_servers", json!({"limit": 1000}), "limit"),
        ("list_servers", json!({"colour": "red"}), "colour"),
        ("search", json!({"query": ""}), "query"),
        ("get_server", json!({}), "path"),
    ] {
        let refused = call(&admin, tool, args).await.unwrap_err();
        assert_eq!(refused["field"], field, "{tool}: {refused}");
        assert!(!refused["detail"].as_str().unwrap().is_empty());
    }
    assert_eq!(app.get("/api/v1/servers/weather").await.body, before);
    assert_eq!(
        app.audit("").await.len(),
        audit_before,
        "nothing was written"
    );
    let list = app.get("/api/v1/servers").await.body;
    assert_eq!(count(&list), 1);
    // An unknown tool is a protocol fault: a JSON-RPC error, not a tool result.
    let err = admin
        .call_tool(CallToolRequestParams::new("drop_everything"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("drop_everything"), "{err}");
    let _ = admin.cancel().await;
    app.running.stop().await;
}

async fn the_registry_registers_itself_once_across_restarts(backend: Backend) {
    let app = spawn_with(backend, REGISTER).await;
    let first = app.get("/api/v1/servers/mcpgw-registry").await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let record = first.body;
    assert_eq!(record["lifecycle"], "approved_prod");
    assert_eq!(record["upstream_auth"]["type"], "bearer");
    assert_eq!(record["gateway"]["assert_caller"], true);
    assert_eq!(record["endpoint"]["url"], format!("{}/mcp", app.base));
    assert_eq!(record["tools"].as_array().unwrap().len(), 9);
    let keys = |body: Value| -> Vec<Value> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| {
                k["permissions"] == json!(["gateway:delegate"]) && k["revoked_at"].is_null()
            })
            .cloned()
            .collect()
    };
    assert_eq!(keys(app.get("/api/v1/api-keys").await.body).len(), 1);
    // A second start on the same store (same port, so the URL is unchanged) changes nothing.
    let TestApp {
        running, dir, key, ..
    } = app;
    let config = running.state.config.as_ref().clone();
    let listen = running.addr;
    running.stop().await;
    let mut config = config;
    config.listen = listen;
    let again = registry::app::start(config).await.expect("restarts");
    let http = reqwest::Client::new();
    let base = format!("http://{}", again.addr);
    let now: Value = http
        .get(format!("{base}/api/v1/servers/mcpgw-registry"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(now["revision"], record["revision"], "{now}");
    let listed: Value = http
        .get(format!("{base}/api/v1/api-keys"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys(listed).len(), 1, "no second key");
    again.stop().await;
    drop(dir);
}

async fn a_caller_assertion_counts_only_beside_a_gateway_delegate_key(backend: Backend) {
    let app = spawn_with(backend, "").await;
    app.register(server_body("weather")).await;
    let scope = json!({"name": "readers", "group_mappings": ["registry-readers"],
                       "ui_permissions": {"list_service": ["all"]}});
    let r = app
        .call(Method::PUT, "/api/v1/scopes/readers", Some(scope))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let assertion = |groups: &[&str]| {
        CallerAssertion {
            issuer: "https://idp.example".into(),
            subject: "alice".into(),
            username: Some("alice".into()),
            client_id: None,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            scopes: vec![],
        }
        .encode()
    };
    // Machine-only: no admin holds it, so it is minted as the registry does for its record.
    let delegate = app
        .running
        .state
        .registry
        .create_cli_key("delegate", vec![Permission::GatewayDelegate])
        .await
        .unwrap();
    // Beside a delegate key, the request runs as the asserted caller, mapped by the policy.
    let me = app
        .call_as(
            Some(&delegate),
            Method::GET,
            "/api/v1/me",
            None,
            &[("x-mcpgw-caller", &assertion(&["registry-readers"]))],
        )
        .await;
    assert_eq!(
        me.body["subject"], "jwt:https://idp.example#alice",
        "{:?}",
        me.body
    );
    assert_eq!(me.body["permissions"], json!(["servers:read"]));
    let listed = app
        .call_as(
            Some(&delegate),
            Method::GET,
            "/api/v1/servers",
            None,
            &[("x-mcpgw-caller", &assertion(&["registry-readers"]))],
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let created = app
        .call_as(
            Some(&delegate),
            Method::POST,
            "/api/v1/servers",
            Some(server_body("x")),
            &[("x-mcpgw-caller", &assertion(&["registry-readers"]))],
        )
        .await;
    assert_eq!(created.status, StatusCode::FORBIDDEN, "{:?}", created.body);
    // Without the assertion the delegate key alone may do nothing.
    let alone = app
        .call_as(Some(&delegate), Method::GET, "/api/v1/servers", None, &[])
        .await;
    assert_eq!(alone.status, StatusCode::FORBIDDEN);
    // Anyone else sending it is refused, even an admin claiming to be someone with less.
    let viewer = app.key_with(&["servers:read", "servers:create"]).await;
    for key in [&viewer] {
        let r = app
            .call_as(
                Some(key),
                Method::GET,
                "/api/v1/servers",
                None,
                &[("x-mcpgw-caller", &assertion(&["registry-readers"]))],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap()
                .contains("gateway:delegate")
        );
    }
    // A malformed assertion is refused, naming it.
    let r = app
        .call_as(
            Some(&delegate),
            Method::GET,
            "/api/v1/servers",
            None,
            &[("x-mcpgw-caller", "%%%")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.field(), "x-mcpgw-caller");
    app.running.stop().await;
}
