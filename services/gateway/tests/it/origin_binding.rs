//! Credentials are bound to the endpoint they were given for: a record altered behind the
//! registry's back (in its database) cannot make the gateway send them elsewhere, and custom
//! headers the platform sets never go upstream, whatever a record holds.

use std::time::{Duration, Instant};

use mcpgw_core::auth::PrincipalKind;
use mcpgw_core::domain::{Endpoint, ServerPath, ServerRecord};
use registry::store::AuditRecord;
use serde_json::{Value, json};

use crate::helpers::*;

/// Writes `record` straight into the registry's store (as someone with database access
/// would), then lets the gateways see it.
async fn write_behind_the_api(stack: &Stack, mut record: ServerRecord) -> u64 {
    let registry = &stack.registry.state.registry;
    let expected = record.revision;
    record.revision += 1;
    let entry = AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at: mcpgw_core::time::Timestamp::now(),
        request_id: None,
        actor: "test:database".into(),
        actor_kind: PrincipalKind::System,
        action: "server.update".into(),
        resource_type: "server".into(),
        resource_id: record.path.to_string(),
        revision_before: None,
        revision_after: None,
        details: json!({}),
    };
    registry
        .store
        .update_server(&record, expected, &entry)
        .await
        .unwrap();
    // Past the catalog cache (100 ms in these stacks), then wake the long polls.
    tokio::time::sleep(Duration::from_millis(250)).await;
    registry.gateway.changed();
    record.revision
}

async fn wait_revision(stack: &Stack, path: &str, revision: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while stack
        .gateway
        .state
        .table
        .current()
        .get(path)
        .is_none_or(|r| r.entry.revision != revision)
    {
        assert!(
            Instant::now() < deadline,
            "the gateway never saw revision {revision}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        stack.registry.state.registry.gateway.changed();
    }
}

async fn stored(stack: &Stack, path: &str) -> ServerRecord {
    stack
        .registry
        .state
        .registry
        .store
        .get_server(&ServerPath::parse(path).unwrap())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_credential_sealed_for_one_origin_is_never_sent_to_another_when_the_record_is_altered() {
    let (stack, _a) = stack_with(
        "weather",
        false,
        &["headers"],
        json!({
            "upstream_auth": {"type": "bearer", "token": "token-for-origin-a"},
            "custom_headers": {"X-Tenant": "tenant-for-origin-a"}
        }),
    )
    .await;
    let b = crate::upstream::start(false).await;
    let mut record = stored(&stack, "weather").await;
    record.endpoint = Endpoint::StreamableHttp { url: b.url() };
    let revision = write_behind_the_api(&stack, record).await;
    wait_revision(&stack, "weather", revision).await;

    let route = stack
        .gateway
        .state
        .table
        .current()
        .get("weather")
        .cloned()
        .unwrap();
    let why = route
        .broken
        .clone()
        .expect("the moved route does not open its credentials");
    assert!(!why.contains("token-for-origin-a"), "{why}");
    let mut c = RawClient::new(
        &stack.url(),
        "weather",
        Some(stack.token("alice", &["agents"])),
    );
    let r = c.initialize_raw().await;
    assert!(!r.status.is_success(), "{} {}", r.status, r.text);
    assert!(!r.text.contains("token-for-origin-a") && !r.text.contains("tenant-for-origin-a"));
    let r = c.call("headers", json!({})).await;
    assert!(!r.text.contains("token-for-origin-a"), "{}", r.text);
    assert_eq!(
        b.counters.calls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "origin B never got a call"
    );
}

#[tokio::test]
async fn platform_headers_in_a_stored_record_never_reach_the_upstream() {
    let (stack, _up) = stack_with(
        "weather",
        false,
        &["headers"],
        json!({"custom_headers": {"X-Tenant": "acme"}}),
    )
    .await;
    // A record stored before the registry refused them (or altered in its database).
    let mut record = stored(&stack, "weather").await;
    let keyring = &stack.registry.state.registry.keyring;
    for (name, value) in [
        ("x-mcpgw-caller", "forged-identity"),
        ("mcp-param-city", "forged-param"),
    ] {
        let sealed = keyring.seal(
            &record.secret_context(&format!("custom_headers.{name}")),
            value,
        );
        record.custom_headers.insert(name.to_owned(), sealed);
    }
    let revision = write_behind_the_api(&stack, record).await;
    wait_revision(&stack, "weather", revision).await;
    let mut c = RawClient::new(
        &stack.url(),
        "weather",
        Some(stack.token("alice", &["agents"])),
    );
    c.initialize().await;
    let r = c.call("headers", json!({})).await;
    let seen: Value = serde_json::from_str(&text_of(r.last())).unwrap();
    assert_eq!(seen["x-tenant"], "acme", "{seen}");
    assert!(seen.get("x-mcpgw-caller").is_none(), "{seen}");
    assert!(seen.get("mcp-param-city").is_none(), "{seen}");
}
