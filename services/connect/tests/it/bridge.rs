//! The bridge under a real stdio client (the Python SDK's `mcp.client.stdio`): both protocol
//! eras, a server's URL and the aggregated `/mcp`, the read-only filter and `--allow-write`.

use serde_json::Value;

use crate::stack::{Stack, stdio_client};

fn text(reply: &Value) -> &str {
    reply["call"]["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

fn tools(reply: &Value) -> Vec<&str> {
    reply["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply}"))
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_python_stdio_client_sees_and_calls_only_read_only_tools_unless_writes_are_allowed() {
    let stack = Stack::start("").await;
    let url = format!("{}/weather/mcp", stack.gateway);
    let state = stack.state_dir("bridge");
    let state = state.to_str().unwrap();
    let browser = stack.browser();
    // The first run signs in (the browser step) before it bridges.
    let bridge = [url.as_str(), "--state-dir", state, "--browser", &browser];

    let reply = stdio_client(
        &bridge,
        &["--call", "echo", "--args", r#"{"text": "via stdio"}"#],
    )
    .await;
    assert!(reply.get("error").is_none(), "{reply}");
    let listed = tools(&reply);
    assert!(listed.contains(&"echo"), "{reply}");
    assert!(!listed.contains(&"write_note"), "{reply}");
    assert!(
        reply["read_only"]
            .as_object()
            .unwrap()
            .values()
            .all(|v| v == true),
        "{reply}"
    );
    assert!(text(&reply).contains("via stdio"), "{reply}");
    assert_eq!(reply["protocol_version"], "2025-11-25", "{reply}");

    // The 2026-07-28 era: stateless requests with the mirrored headers.
    let modern = stdio_client(
        &bridge,
        &[
            "--mode",
            "2026-07-28",
            "--call",
            "echo",
            "--args",
            r#"{"text": "stateless"}"#,
        ],
    )
    .await;
    assert!(modern.get("error").is_none(), "{modern}");
    assert!(text(&modern).contains("stateless"), "{modern}");

    // A tool without readOnlyHint is refused by the bridge itself.
    let refused = stdio_client(
        &bridge,
        &["--call", "write_note", "--args", r#"{"text": "x"}"#],
    )
    .await;
    let error = refused["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{refused}"));
    assert!(error.contains("read-only mode"), "{error}");
    assert!(error.contains("--allow-write"), "{error}");

    let mut writing = bridge.to_vec();
    writing.push("--allow-write");
    let wrote = stdio_client(
        &writing,
        &["--call", "write_note", "--args", r#"{"text": "x"}"#],
    )
    .await;
    assert!(wrote.get("error").is_none(), "{wrote}");
    assert!(tools(&wrote).contains(&"write_note"), "{wrote}");
    assert_eq!(wrote["call"]["result"]["isError"], false, "{wrote}");

    // No run printed the token.
    let (_, entry) = crate::stack::token_file(std::path::Path::new(state));
    let token = entry["access_token"].as_str().unwrap();
    for r in [&reply, &modern, &refused, &wrote] {
        assert!(!r["stderr"].as_str().unwrap().contains(token));
    }
}

#[tokio::test]
async fn the_aggregated_endpoint_offers_discovery_and_runs_only_read_only_tools() {
    let stack = Stack::start("").await;
    stack.record_tools().await;
    let url = format!("{}/mcp", stack.gateway);
    let state = stack.state_dir("aggregated");
    let state = state.to_str().unwrap();
    let browser = stack.browser();
    let bridge = [url.as_str(), "--state-dir", state, "--browser", &browser];

    let found = stdio_client(
        &bridge,
        &[
            "--call",
            "discover_tools",
            "--args",
            r#"{"query": "echo write note"}"#,
        ],
    )
    .await;
    assert!(found.get("error").is_none(), "{found}");
    assert_eq!(tools(&found), ["discover_tools", "call_tool"], "{found}");
    let discovered = text(&found);
    assert!(discovered.contains("weather__echo"), "{discovered}");
    assert!(!discovered.contains("weather__write_note"), "{discovered}");

    // A call of a tool this session never discovered: the bridge asks discover_tools itself.
    let call_tool = |tool: &str| {
        let args = format!(r#"{{"name": "{tool}", "arguments": {{"text": "aggregated"}}}}"#);
        let bridge = bridge.map(str::to_owned);
        async move {
            let bridge: Vec<&str> = bridge.iter().map(String::as_str).collect();
            stdio_client(&bridge, &["--call", "call_tool", "--args", &args]).await
        }
    };
    let ran = call_tool("weather__echo").await;
    assert!(ran.get("error").is_none(), "{ran}");
    assert!(text(&ran).contains("aggregated"), "{ran}");

    let refused = call_tool("weather__write_note").await;
    let error = refused["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{refused}"));
    assert!(error.contains("read-only mode"), "{error}");
}

#[tokio::test]
async fn a_call_the_client_cancels_is_cancelled_at_the_server() {
    let stack = Stack::start("").await;
    let url = format!("{}/weather/mcp", stack.gateway);
    let state = stack.state_dir("cancel");
    let browser = stack.browser();
    let bridge = [
        url.as_str(),
        "--state-dir",
        state.to_str().unwrap(),
        "--browser",
        &browser,
    ];
    let reply = stdio_client(
        &bridge,
        &[
            "--call",
            "slow",
            "--args",
            r#"{"ms": 20000}"#,
            "--cancel-after",
            "1",
        ],
    )
    .await;
    assert!(reply.get("error").is_none(), "{reply}");
    assert_eq!(reply["cancelled"], true, "{reply}");
    let cancelled = &stack.up.counters.cancelled;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while cancelled.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never saw the cancellation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
