//! Refusals before the caller is known are audited, coalesced per server and reason: what a
//! real gateway's sink stores in a real registry's audit log.

use std::time::Duration;

use mcpgw_core::gateway_sync::McpAuditEvent;
use serde_json::{Value, json};

use crate::helpers::*;

fn refusal(stack: &Stack, server: &str, reason: &str) -> McpAuditEvent {
    serde_json::from_value(json!({
        "id": uuid::Uuid::now_v7(), "at": mcpgw_core::time::Timestamp::now(),
        "request_id": uuid::Uuid::now_v7().to_string(), "gateway": stack.gateway.state.instance,
        "server": server, "method": "", "subject": "", "issuer": "", "decision": "denied",
        "reason": reason, "status": "denied", "latency_ms": 0.1
    }))
    .unwrap()
}

/// The `mcp.denied` records of `server`, once `want` have arrived (or after 10 s).
async fn denied(base: &Base, server: &str, want: usize) -> Vec<Value> {
    base.audit_until(&format!("resource_id={server}&action=mcp.denied"), |r| {
        r.len() >= want
    })
    .await
}

/// The requests a record stands for: its `count`, absent when 1.
fn count(record: &Value) -> u64 {
    record["details"]
        .get("count")
        .map_or(1, |c| c.as_u64().unwrap())
}

#[tokio::test]
async fn one_refusal_is_one_event_without_a_count() {
    let stack = Stack::start().await;
    let event = refusal(&stack, "nowhere", "unknown_server");
    let id = event.id.to_string();
    stack.gateway.state.audit.record_refusal(event);
    let records = denied(&stack, "nowhere", 1).await;
    // Let a duplicate, if any, arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records = denied(&stack, "nowhere", records.len() + 1).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["id"], id);
    assert_eq!(records[0]["details"]["reason"], "unknown_server");
    assert!(records[0]["details"].get("count").is_none(), "{records:?}");
}

#[tokio::test]
async fn a_thousand_refusals_in_a_window_are_at_most_two_events_that_count_them_all() {
    let stack = Stack::start().await;
    for _ in 0..1000 {
        let event = refusal(&stack, "flooded", "unauthenticated");
        stack.gateway.state.audit.record_refusal(event);
    }
    // The window is still open: stopping the gateway records the pending count.
    let Stack { base, gateway } = stack;
    gateway.stop().await;
    let records = denied(&base, "flooded", 2).await;
    assert!(records.len() <= 2, "{records:?}");
    assert_eq!(records.iter().map(count).sum::<u64>(), 1000, "{records:?}");
}

#[tokio::test]
async fn refusals_of_distinct_servers_or_reasons_are_not_merged() {
    let stack = Stack::start().await;
    let keys = [("one", "unauthenticated"), ("two", "unauthenticated")];
    for (server, reason) in keys.iter().chain(&[("one", "body_too_large")]) {
        let event = refusal(&stack, server, reason);
        stack.gateway.state.audit.record_refusal(event);
    }
    let mut one: Vec<String> = denied(&stack, "one", 2)
        .await
        .iter()
        .map(|r| format!("{}/{}", r["details"]["reason"], count(r)))
        .collect();
    one.sort();
    assert_eq!(one, ["\"body_too_large\"/1", "\"unauthenticated\"/1"]);
    assert_eq!(denied(&stack, "two", 1).await.len(), 1);
}
