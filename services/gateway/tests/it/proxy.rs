//! The proxy path against a real rmcp server: auth, policy, filtering, sessions, credentials.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn a_tool_call_is_authorized_filtered_forwarded_and_audited() {
    for json_upstream in [false, true] {
        let (stack, up) = stack_with("weather", json_upstream, &["echo"], json!({})).await;
        let token = stack.token("alice", &["agents"]);
        let mut c = RawClient::new(&stack.url(), "weather", Some(token));
        let init = c.initialize().await;
        assert_eq!(init.status, StatusCode::OK, "{}", init.text);
        assert_eq!(init.last()["result"]["serverInfo"]["name"], "rmcp");
        let sid = c.session.clone().expect("a session id is issued");
        assert!(
            sid.len() > 40 && sid.contains('.'),
            "sealed session id: {sid}"
        );

        let list = c.request("tools/list", json!({})).await;
        let names: Vec<&str> = list.last()["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["echo"], "only the permitted tool is listed");

        let call = c.call("echo", json!({"text": "hello"})).await;
        assert_eq!(call.status, StatusCode::OK);
        assert_eq!(text_of(call.last()), "hello");

        // A denied tool and a tool that exists nowhere get the same answer.
        let denied = c.call("write_note", json!({"text": "x"})).await;
        let unknown = c.call("no_such_tool", json!({})).await;
        let strip = |v: &Value| {
            let mut v = v.clone();
            v["id"] = Value::Null;
            v["error"]["message"] = json!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .replace("write_note", "T")
                    .replace("no_such_tool", "T")
            );
            v
        };
        assert_eq!(
            strip(denied.last()),
            strip(unknown.last()),
            "{} / {}",
            denied.text,
            unknown.text
        );
        assert_eq!(denied.last()["error"]["code"], -32602);
        assert_eq!(
            up.counters.calls.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "only echo reached the server"
        );

        // Audit: the call and the two denials reach the registry's audit log.
        let is_mcp = |e: &Value| e["action"].as_str().unwrap_or("").starts_with("mcp.");
        let events: Vec<Value> = stack
            .audit_until("resource_id=weather", |r| {
                r.iter().filter(|e| is_mcp(e)).count() >= 3
            })
            .await
            .into_iter()
            .filter(is_mcp)
            .collect();
        let summary: Vec<(String, String)> = events
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap_or("").to_owned(),
                    e["details"]["tool"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        assert!(
            summary.contains(&("mcp.tool_call".into(), "echo".into())),
            "{summary:?}"
        );
        assert!(
            summary.contains(&("mcp.denied".into(), "write_note".into())),
            "{summary:?}"
        );
        let call_event = events
            .iter()
            .find(|e| e["action"] == "mcp.tool_call")
            .unwrap();
        assert_eq!(call_event["actor"], "alice");
        assert_eq!(call_event["resource_id"], "weather");
        assert_eq!(call_event["details"]["status"], "ok");
        assert!(
            call_event["details"]["matched_rule"]
                .as_str()
                .unwrap()
                .contains("agents")
        );
        assert!(
            call_event["details"].get("arguments").is_none(),
            "arguments are not logged by default"
        );
    }
}

#[tokio::test]
async fn callers_without_a_valid_token_get_401_with_the_metadata_url() {
    let (stack, _up) = stack_with("weather", false, &["echo"], json!({})).await;
    let mut anonymous = RawClient::new(&stack.url(), "weather", None);
    let r = anonymous.initialize_raw().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let challenge = r.header("www-authenticate");
    let metadata = format!(
        "{}/.well-known/oauth-protected-resource/weather/mcp",
        stack.gateway.state.public_base
    );
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{metadata}\"")
    );

    let mut forged = RawClient::new(&stack.url(), "weather", Some("not.a.jwt".into()));
    let r = forged.initialize_raw().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.header("www-authenticate")
            .contains("error=\"invalid_token\""),
        "{}",
        r.header("www-authenticate")
    );

    // The protected resource metadata names the issuer.
    let doc: Value = client()
        .get(format!(
            "{}/.well-known/oauth-protected-resource/weather/mcp",
            stack.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["resource"],
        format!("{}/weather/mcp", stack.gateway.state.public_base)
    );
    assert_eq!(doc["authorization_servers"][0], stack.issuer.issuer);

    // Client identity headers change nothing.
    let mut spoof = RawClient::new(&stack.url(), "weather", None);
    let r = spoof
        .post(
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
            &[("x-user", "admin"), ("x-groups", "agents")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_api_key_sent_as_bearer_is_told_the_gateway_takes_access_tokens_and_where_to_mint_one() {
    let (stack, _up) = stack_with("weather", false, &["echo"], json!({})).await;
    let mut keyed = RawClient::new(&stack.url(), "weather", Some("mcpgw_k1.s3cret".into()));
    let r = keyed.initialize_raw().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let said = "the bearer is not a JWT (an API key?): this takes OAuth access tokens (JWTs) from the auth-server; mint one on the console's Tokens page (/console/tokens) or with the auth-server's POST /api/v1/tokens";
    let body: Value = serde_json::from_str(&r.text).unwrap();
    assert_eq!(body["detail"], said);
    let challenge = r.header("www-authenticate");
    assert!(
        challenge.contains(&format!("error_description=\"{said}\"")),
        "{challenge}"
    );
}

#[tokio::test]
async fn a_method_outside_the_scope_gets_403_insufficient_scope() {
    let (stack, _up) = stack_with("weather", false, &["echo"], json!({})).await;
    // "readers" may list but not call.
    stack
        .put_scope(scope(
            "readers",
            "readers",
            "weather",
            &["initialize", "tools/list"],
            &[],
        ))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_scope(&stack, "readers").await;
    let mut c = RawClient::new(
        &stack.url(),
        "weather",
        Some(stack.token("bob", &["readers"])),
    );
    c.initialize().await;
    let r = c.call("echo", json!({"text": "x"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let challenge = r.header("www-authenticate");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"agents\""),
        "names the scope that would allow it: {challenge}"
    );
    assert!(challenge.contains("resource_metadata="), "{challenge}");

    // Nobody's groups: no rule for the server at all.
    let mut stranger = RawClient::new(
        &stack.url(),
        "weather",
        Some(stack.token("eve", &["nobody"])),
    );
    let r = stranger.initialize_raw().await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_callers_token_stays_at_the_gateway_and_upstream_credentials_are_injected() {
    let (stack, _up) = stack_with(
        "weather",
        false,
        &["headers"],
        json!({
            "upstream_auth": {"type": "bearer", "token": "upstream-secret-token"},
            "custom_headers": {"X-Tenant": "acme"}
        }),
    )
    .await;
    let token = stack.token("alice", &["agents"]);
    let mut c = RawClient::new(&stack.url(), "weather", Some(token.clone()));
    c.initialize().await;
    let r = c.call("headers", json!({})).await;
    let seen: Value = serde_json::from_str(&text_of(r.last())).unwrap();
    assert_eq!(seen["authorization"], "Bearer upstream-secret-token");
    assert_eq!(seen["x-tenant"], "acme");
    assert!(
        !r.text.contains(&token),
        "the caller's token never appears upstream"
    );
    let request_id = r.header("x-request-id");
    assert!(!request_id.is_empty());
    assert_eq!(
        seen["x-request-id"], request_id,
        "the gateway's request id travels upstream"
    );
    // the snapshot on disk holds credentials only sealed
    let disk = std::fs::read_to_string(stack.dir.path().join("gw1/snapshot.json")).unwrap();
    assert!(disk.contains("weather"));
    assert!(!disk.contains("upstream-secret-token") && !disk.contains("acme"));
}

#[tokio::test]
async fn a_session_moves_between_gateway_replicas_but_not_between_callers() {
    let (stack, _up) = stack_with("weather", false, &["echo"], json!({})).await;
    let second = stack.start_gateway("gw2", "").await;
    wait_routed(&second, "weather", true).await;
    let token = stack.token("alice", &["agents"]);
    let mut on_first = RawClient::new(&stack.url(), "weather", Some(token.clone()));
    on_first.initialize().await;
    // Round-robin: every next request lands on the other process.
    let mut on_second = RawClient::new(&second.url(), "weather", Some(token));
    on_second.session = on_first.session.clone();
    for i in 0..4 {
        let client = if i % 2 == 0 {
            &mut on_second
        } else {
            &mut on_first
        };
        let r = client
            .call("echo", json!({"text": format!("hop {i}")}))
            .await;
        assert_eq!(text_of(r.last()), format!("hop {i}"), "{}", r.text);
    }
    // Another caller presenting the session gets "not found".
    let mut mallory = RawClient::new(
        &second.url(),
        "weather",
        Some(stack.token("mallory", &["agents"])),
    );
    mallory.session = on_first.session.clone();
    let r = mallory.call("echo", json!({"text": "x"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    second.stop().await;
}

#[tokio::test]
async fn batches_are_decided_element_by_element() {
    let (stack, _up) = stack_with("weather", false, &["echo"], json!({})).await;
    let mut c = RawClient::new(
        &stack.url(),
        "weather",
        Some(stack.token("alice", &["agents"])),
    );
    c.initialize().await;
    let r = c
        .post(
            json!([
                {"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "a"}}},
                {"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {"name": "write_note", "arguments": {"text": "b"}}}
            ]),
            &[("mcp-protocol-version", "2025-03-26")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.messages.len(), 2, "{}", r.text);
    let by_id = |id: i64| r.messages.iter().find(|m| m["id"] == id).unwrap().clone();
    assert_eq!(text_of(&by_id(10)), "a");
    assert_eq!(by_id(11)["error"]["code"], -32602);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let (stack, _up) = stack_with("weather", false, &["echo"], json!({})).await;
    let mut c = RawClient::new(
        &stack.url(),
        "weather",
        Some(stack.token("alice", &["agents"])),
    );
    let r = c.post(json!({"id": 1, "method": "ping"}), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.last()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("jsonrpc"),
        "{}",
        r.text
    );
    let r = c
        .post(
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
            &[("mcp-protocol-version", "1999-01-01")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.last()["error"]["code"], -32022);
    // unknown server
    let mut nowhere = RawClient::new(
        &stack.url(),
        "nowhere",
        Some(stack.token("alice", &["agents"])),
    );
    let r = nowhere.initialize_raw().await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // a forged session id
    c.session = Some("AAAA.BBBB.CCCC".into());
    let r = c.call("echo", json!({"text": "x"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // a body over the limit
    let huge = "x".repeat(5 * 1024 * 1024);
    c.session = None;
    let r = c
        .post(
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": huge}}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // a Host that is not ours (DNS rebinding)
    let r = client()
        .post(format!("{}/weather/mcp", stack.url()))
        .header("host", "evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A browser page from another origin is refused; the gateway's own origin is not.
    let token = stack.token("alice", &["agents"]);
    for (origin, expected) in [
        ("http://evil.example", StatusCode::FORBIDDEN),
        (stack.gateway.state.public_base.as_str(), StatusCode::OK),
    ] {
        let r = client()
            .post(format!("{}/weather/mcp", stack.url()))
            .bearer_auth(&token)
            .header("origin", origin)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), expected, "{origin}");
    }
    // …but a load balancer's health check (Host = the target's address) is answered.
    let r = client()
        .get(format!("{}/health", stack.url()))
        .header("host", "10.0.3.7:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_egress_policy_is_checked_when_the_gateway_connects() {
    let (stack, up) = stack_with("weather", false, &["echo"], json!({})).await;
    // The registry allowed loopback at registration; a gateway whose policy refuses it does
    // not connect, whether the URL names a host (checked on resolution) or an address.
    let by_name = up.url().replace("127.0.0.1", "localhost");
    stack
        .register(
            "byname",
            json!({"transport": "streamable-http", "url": by_name}),
            json!({}),
        )
        .await;
    stack
        .put_scope(
            json!({"name": "everything", "group_mappings": ["agents"], "server_access": [
            {"server": "*", "methods": ALL_METHODS, "tools": "*"}]}),
        )
        .await;
    let strict = stack
        .start_gateway("strict", "[egress]\nallow_loopback = false\n")
        .await;
    wait_routed(&strict, "byname", true).await;
    let token = stack.token("alice", &["agents"]);
    for server in ["byname", "weather"] {
        let mut c = RawClient::new(&strict.url(), server, Some(token.clone()));
        let r = c.initialize_raw().await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{server}: {}", r.text);
        assert!(r.text.contains("egress"), "{server}: {}", r.text);
    }
    assert_eq!(
        up.counters.calls.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    // The permissive gateway reaches both.
    let mut c = RawClient::new(&stack.url(), "byname", Some(token));
    assert_eq!(c.initialize_raw().await.status, StatusCode::OK);
    strict.stop().await;
}
