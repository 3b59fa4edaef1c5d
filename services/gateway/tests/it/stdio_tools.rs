//! Tool discovery and integrity of stdio servers: the gateway lists a real child's tools
//! (`mcp-server-time` from PyPI) and reports them to a real registry, which records them for
//! review; nothing the reviewer has not approved is served, through `/{server}/mcp` or `/mcp`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::peers::{approve_tools, env, recorded_tools, route};

fn names(reply: &RawReply) -> Vec<String> {
    reply.last()["result"]["tools"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The tool names a `discover_tools` reply found.
pub(crate) fn discovered(reply: &RawReply) -> Vec<String> {
    let found: Value = serde_json::from_str(&text_of(reply.last())).unwrap_or_default();
    found["tools"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn server_view(stack: &Stack, path: &str) -> Value {
    stack
        .http
        .get(format!("{}/api/v1/servers/{path}", stack.registry_url))
        .bearer_auth(&stack.admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stdio_servers_tools_are_reported_by_its_gateway_and_served_only_once_approved() {
    let stack = Stack::start().await;
    let time = format!("{}/mcp-server-time", env("MCPGW_TEST_PY_PEERS"));
    route(
        &stack,
        "time",
        json!({"transport": "stdio", "command": time, "args": ["--local-timezone", "UTC"]}),
        &["get_current_time", "convert_time"],
    )
    .await;

    // Nobody calls it: the gateway starts the child for its tools and reports them.
    let mut recorded: Vec<String> = recorded_tools(&stack, "time")
        .await
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    recorded.sort();
    assert_eq!(recorded, ["convert_time", "get_current_time"]);
    let view = server_view(&stack, "time").await;
    assert_eq!(view["tools_status"], "unreviewed", "{view}");
    let audit = stack.audit("action=server.tools").await;
    assert!(
        audit
            .iter()
            .any(|e| e["resource_id"] == "time" && e["details"]["source"] == "gateway"),
        "{audit:?}"
    );

    // Unreviewed: nothing is listed and a call is answered like a call to an unknown tool.
    let token = stack.token("alice", &["agents"]);
    let mut c = RawClient::new(&stack.url(), "time", Some(token.clone()));
    assert_eq!(c.initialize().await.status, StatusCode::OK);
    assert_eq!(
        names(&c.request("tools/list", json!({})).await),
        Vec::<String>::new()
    );
    let refused = c.call("get_current_time", json!({"timezone": "UTC"})).await;
    assert_eq!(
        refused.last()["error"]["message"],
        "Unknown tool: get_current_time",
        "{}",
        refused.text
    );

    // A reviewer approves one of the two: only that one is served.
    approve_tools(&stack, "time", &["get_current_time"]).await;
    assert_eq!(
        names(&c.request("tools/list", json!({})).await),
        ["get_current_time"]
    );
    let called = c.call("get_current_time", json!({"timezone": "UTC"})).await;
    assert!(text_of(called.last()).contains("UTC"), "{}", called.text);
    let refused = c
        .call(
            "convert_time",
            json!({"source_timezone": "UTC", "time": "12:00", "target_timezone": "UTC"}),
        )
        .await;
    assert_eq!(
        refused.last()["error"]["message"],
        "Unknown tool: convert_time",
        "{}",
        refused.text
    );

    // The aggregated endpoint: the same two answers.
    let mut a = RawClient::new(&stack.url(), "unused", Some(token));
    a.url = format!("{}/mcp", stack.url());
    assert_eq!(a.initialize().await.status, StatusCode::OK);
    let found = a
        .call("discover_tools", json!({"query": "time", "limit": 10}))
        .await;
    assert_eq!(
        discovered(&found),
        ["time__get_current_time"],
        "{}",
        found.text
    );
    let called = a
        .call(
            "call_tool",
            json!({"name": "time__get_current_time", "arguments": {"timezone": "UTC"}}),
        )
        .await;
    assert!(text_of(called.last()).contains("UTC"), "{}", called.text);
    let refused = a
        .call(
            "call_tool",
            json!({"name": "time__convert_time", "arguments": {}}),
        )
        .await;
    assert_eq!(
        refused.last()["error"]["message"],
        "Unknown tool: time__convert_time",
        "{}",
        refused.text
    );
}

#[tokio::test]
async fn recording_and_approving_a_stdio_servers_tools_does_not_restart_it() {
    let stack = Stack::start().await;
    let script = format!("{}/crashy_stdio.py", env("MCPGW_TEST_PEERS_SRC"));
    route(
        &stack,
        "crashy",
        json!({"transport": "stdio", "command": "python3", "args": [script]}),
        &["whoami"],
    )
    .await;
    recorded_tools(&stack, "crashy").await;
    let before = stack.gateway.state.table.current();
    approve_tools(&stack, "crashy", &["whoami"]).await;
    let after = stack.gateway.state.table.current();
    let (old, new) = (before.get("crashy").unwrap(), after.get("crashy").unwrap());
    assert_ne!(
        old.entry.revision, new.entry.revision,
        "the approval is a new revision"
    );
    match (&old.upstream, &new.upstream) {
        (gateway::routes::Upstream::Shared(a), gateway::routes::Upstream::Shared(b)) => {
            assert!(std::sync::Arc::ptr_eq(a, b), "the same child serves on")
        }
        _ => panic!("a stdio route has a shared upstream"),
    }
    let mut c = RawClient::new(
        &stack.url(),
        "crashy",
        Some(stack.token("alice", &["agents"])),
    );
    c.initialize().await;
    assert!(!text_of(c.call("whoami", json!({})).await.last()).is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metrics = metrics_of(&stack.gateway).await;
    assert!(
        !metrics.contains("mcpgw_gateway_stdio_restarts_total{server=\"crashy\"}"),
        "{metrics}"
    );
}
