//! The registry's own MCP server through the real gateway, called by the Python SDK client with
//! a real token: the gateway authenticates with the record's `gateway:delegate` key and asserts
//! the caller it verified, so the registry answers and audits as that caller; a caller
//! assertion a client sends itself changes nothing.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::peers::py_client;

const PATH: &str = "mcpgw-registry";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_is_managed_through_the_gateway_as_the_caller() {
    let stack = Stack::start().await;
    // What `registry::app::start` does with `mcp.register = true` (off in the shared helper).
    registry::mcp::ensure_registered(&stack.registry.state, stack.registry.addr).await;
    stack
        .register(
            "weather",
            json!({"transport": "streamable-http", "url": "http://127.0.0.1:9/mcp"}),
            json!({}),
        )
        .await;
    stack
        .register(
            "finance",
            json!({"transport": "streamable-http", "url": "http://127.0.0.1:9/mcp"}),
            json!({}),
        )
        .await;
    // Group `agents` may call the registry's tools through the gateway (writes included), and in
    // the registry may read `weather` only and register servers.
    stack
        .put_scope(json!({
            "name": "agents",
            "group_mappings": ["agents"],
            "server_access": [{"server": PATH, "methods": ALL_METHODS, "tools": "*", "allow_write": true}],
            "ui_permissions": {"list_service": ["weather"], "register_service": ["all"]}
        }))
        .await;
    wait_routed(&stack.gateway, PATH, true).await;
    wait_scope(&stack, "agents").await;
    let url = format!("{}/{PATH}/mcp", stack.url());
    let token = stack.token("alice", &["agents"]);

    let out = py_client(&url, &token, &["--call", "list_servers"]).await;
    let tools = out["tools"].as_array().unwrap_or_else(|| panic!("{out}"));
    for name in [
        "list_servers",
        "get_server",
        "search",
        "register_server",
        "toggle_server",
    ] {
        assert!(tools.contains(&json!(name)), "{name}: {out}");
    }
    assert_eq!(out["read_only"]["list_servers"], true, "{out}");
    assert_eq!(out["read_only"]["register_server"], false, "{out}");
    let listed = paths(&out);
    assert_eq!(listed, vec!["weather"], "only what alice may read: {out}");

    // A client's own assertion (claiming an admin group) is not passed on: same answer.
    let forged = mcpgw_core::auth::CallerAssertion {
        issuer: "https://evil".into(),
        subject: "admin".into(),
        username: Some("admin".into()),
        client_id: None,
        groups: vec!["mcp-registry-admin".into()],
        scopes: vec![],
    }
    .encode();
    let header = format!("x-mcpgw-caller: {forged}");
    let out = py_client(
        &url,
        &token,
        &["--header", &header, "--call", "list_servers"],
    )
    .await;
    assert_eq!(paths(&out), vec!["weather"], "{out}");

    // A registration through the gateway is the caller's, in the registry's audit trail.
    let body = json!({"path": "notes", "name": "Notes", "governance": {"owner_team": "t"},
                      "endpoint": {"transport": "streamable-http", "url": "http://127.0.0.1:9/mcp"}});
    let out = py_client(
        &url,
        &token,
        &["--call", "register_server", "--args", &body.to_string()],
    )
    .await;
    assert_ne!(out["call"]["result"]["isError"], true, "{out}");
    let audit = stack.audit("action=server.create&resource_id=notes").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(
        audit[0]["actor"],
        format!("jwt:{}#alice", stack.issuer.issuer),
        "the principal is the issuer's subject: {audit:?}"
    );
    // And a write alice may not make is refused by the registry with its REST message.
    let out = py_client(
        &url,
        &token,
        &[
            "--call",
            "toggle_server",
            "--args",
            r#"{"path": "weather", "enabled": false}"#,
        ],
    )
    .await;
    let result = &out["call"]["result"];
    assert_eq!(result["isError"], true, "{out}");
    assert!(
        result.to_string().contains("servers:toggle"),
        "the permission message: {out}"
    );
}

/// The paths in a `list_servers` result the Python client printed.
pub(crate) fn paths(out: &Value) -> Vec<String> {
    let result = &out["call"]["result"];
    let structured = result
        .get("structuredContent")
        .or_else(|| result.get("structured_content"))
        .unwrap_or_else(|| panic!("structured content: {out}"));
    structured["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap().to_owned())
        .collect()
}
