//! Health of stdio servers as the gateway probes and reports them: real stdio children
//! (`mcp-server-time` from the Python venv, and `crashy_stdio.py`), a real registry, and the
//! status, reason, history and events read back from the registry's API.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::peers::{env, route_stdio, text};

/// The server's health as the registry serves it.
async fn health(stack: &Stack, path: &str) -> Value {
    stack
        .http
        .get(format!(
            "{}/api/v1/servers/{path}/health",
            stack.registry_url
        ))
        .bearer_auth(&stack.admin_key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["health"]
        .clone()
}

/// Waits until the registry shows `path` at `status`; returns that health.
pub(crate) async fn wait_status(stack: &Stack, path: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = health(stack, path).await;
        if h["status"] == status {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never became {status}: {h}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_stdio_server_no_client_used_is_started_probed_and_reported_healthy() {
    let stack = Stack::start_with("[stdio]\nhealth_interval_seconds = 1\n").await;
    let events = stack
        .http
        .get(format!("{}/api/v1/events", stack.registry_url))
        .bearer_auth(&stack.admin_key)
        .send()
        .await
        .unwrap();
    let mut events = events.bytes_stream();
    let time = format!("{}/mcp-server-time", env("MCPGW_TEST_PY_PEERS"));
    stack
        .register(
            "time",
            json!({"transport": "stdio", "command": time, "args": ["--local-timezone", "UTC"]}),
            json!({}),
        )
        .await;
    assert_eq!(health(&stack, "time").await["status"], "unknown");
    // No client ever calls it: the probe itself starts the child.
    let h = wait_status(&stack, "time", "healthy").await;
    let latest = &h["history"][0];
    assert_eq!(latest["status"], "healthy", "{h}");
    assert_eq!(latest["trigger"], "gateway:gw1", "{h}");
    assert!(h.get("reason").is_none(), "{h}");
    // The change is announced like the registry's own checks.
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(seen.contains("event: health")
        && seen.contains(r#""path":"time""#)
        && seen.contains(r#""status":"healthy""#))
    {
        let chunk = tokio::time::timeout_at(deadline.into(), events.next())
            .await
            .unwrap_or_else(|_| panic!("no health event for time: {seen}"))
            .expect("the event stream stays open")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // Reports keep coming: the history grows with each interval.
    let deadline = Instant::now() + Duration::from_secs(15);
    while health(&stack, "time").await["history"]
        .as_array()
        .map_or(0, Vec::len)
        < 3
    {
        assert!(Instant::now() < deadline, "the history does not grow");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_stdio_server_that_crashes_is_reported_unhealthy_with_its_restart_reason() {
    // A long restart delay keeps the crashed child down for the rest of the test.
    let stack = Stack::start_with(
        "[stdio]\nhealth_interval_seconds = 1\nrestart_min_ms = 60000\nrestart_max_ms = 60000\n",
    )
    .await;
    let script = format!("{}/crashy_stdio.py", env("MCPGW_TEST_PEERS_SRC"));
    route_stdio(
        &stack,
        "crashy",
        json!({"transport": "stdio", "command": "python3", "args": [script]}),
        &["whoami", "crash"],
    )
    .await;
    wait_status(&stack, "crashy", "healthy").await;
    let mut c = RawClient::new(
        &stack.url(),
        "crashy",
        Some(stack.token("alice", &["agents"])),
    );
    c.initialize().await;
    let pid = text(&c.call("crash", json!({})).await.last()["result"]);
    assert!(!pid.is_empty());
    // Damped: the status moves once `health.damping` (2) reports agree.
    let h = wait_status(&stack, "crashy", "unhealthy").await;
    let reason = h["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("exited soon after it started") && reason.contains("next start in"),
        "{h}"
    );
    let history = h["history"].as_array().unwrap();
    assert!(
        history.iter().any(|c| c["status"] == "healthy")
            && history
                .iter()
                .filter(|c| c["status"] == "unhealthy")
                .count()
                >= 2,
        "{h}"
    );
    assert!(history.iter().all(|c| c["trigger"] == "gateway:gw1"), "{h}");
}
