//! Streaming, cancellation, limits, write protection, the stateless era, what scope challenges
//! and method headers may carry, and static stability.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::upstream;

#[tokio::test]
async fn progress_streams_through_as_it_happens() {
    let (stack, _up) = stack_with("work", false, &["progress"], json!({})).await;
    let token = stack.token("alice", &["agents"]);
    let mut c = RawClient::new(&stack.url(), "work", Some(token.clone()));
    c.initialize().await;
    let started = Instant::now();
    let response = client()
        .post(format!("{}/work/mcp", stack.url()))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", c.session.clone().unwrap())
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "progress", "arguments": {"steps": 5}, "_meta": {"progressToken": "p1"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut parser = gateway::sse::Parser::new(1 << 20);
    let mut arrivals = Vec::new();
    while let Some(chunk) = body.next().await {
        for e in parser
            .feed(&chunk.unwrap())
            .unwrap()
            .into_iter()
            .filter(|e| e.is_message())
        {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            arrivals.push((started.elapsed(), v));
        }
    }
    let progress: Vec<&(Duration, Value)> = arrivals
        .iter()
        .filter(|(_, v)| v["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 5, "{arrivals:?}");
    assert_eq!(progress[0].1["params"]["progressToken"], "p1");
    let (last_at, last) = arrivals.last().unwrap();
    assert_eq!(text_of(last), "5 steps");
    // Not buffered: the first notification arrived well before the answer (5 × 20 ms apart).
    assert!(
        *last_at - progress[0].0 >= Duration::from_millis(60),
        "{:?} vs {:?}",
        progress[0].0,
        last_at
    );
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_work() {
    let (stack, up) = stack_with("work", false, &["slow"], json!({})).await;
    let token = stack.token("alice", &["agents"]);
    let mut c = RawClient::new(&stack.url(), "work", Some(token.clone()));
    c.initialize().await;
    let request = client()
        .post(format!("{}/work/mcp", stack.url()))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", c.session.clone().unwrap())
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "slow", "arguments": {"ms": 20000}}}))
        .send();
    // The client gives up after 300 ms.
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        let r = request.await.unwrap();
        let _ = r.bytes().await;
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.counters.cancelled.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the upstream never saw the cancellation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn write_protection_hides_and_refuses_tools_that_may_write() {
    let (stack, up) = stack_with(
        "files",
        false,
        &["*"],
        json!({"gateway": {"read_only": true}}),
    )
    .await;
    let mut c = RawClient::new(
        &stack.url(),
        "files",
        Some(stack.token("alice", &["agents"])),
    );
    c.initialize().await;
    let list = c.request("tools/list", json!({})).await;
    let names: Vec<String> = list.last()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&"echo".to_owned()), "{names:?}");
    assert!(!names.contains(&"write_note".to_owned()), "{names:?}");
    let r = c.call("write_note", json!({"text": "x"})).await;
    assert_eq!(r.last()["error"]["code"], -32602);
    assert_eq!(up.counters.calls.load(Ordering::SeqCst), 0);

    // A scope whose rule says allow_write lets its holders write.
    stack
        .put_scope(
            json!({"name": "writers", "group_mappings": ["writers"], "server_access": [
            {"server": "files", "methods": ALL_METHODS, "tools": "*", "allow_write": true}]}),
        )
        .await;
    wait_scope(&stack, "writers").await;
    let mut w = RawClient::new(
        &stack.url(),
        "files",
        Some(stack.token("wendy", &["writers"])),
    );
    w.initialize().await;
    let r = w.call("write_note", json!({"text": "x"})).await;
    assert_eq!(text_of(r.last()), "stored: x", "{}", r.text);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let (stack, _up) = stack_with(
        "quota",
        false,
        &["echo"],
        json!({"gateway": {"tool_calls_per_minute": {"echo": 2}}}),
    )
    .await;
    let mut c = RawClient::new(
        &stack.url(),
        "quota",
        Some(stack.token("alice", &["agents"])),
    );
    c.initialize().await;
    for _ in 0..2 {
        let r = c.call("echo", json!({"text": "x"})).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = c.call("echo", json!({"text": "x"})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.header("retry-after").parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    // another caller has its own bucket
    let mut other = RawClient::new(&stack.url(), "quota", Some(stack.token("bob", &["agents"])));
    other.initialize().await;
    assert_eq!(
        other.call("echo", json!({"text": "x"})).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_large_tool_result_is_cut_with_a_notice() {
    let (stack, _up) = stack_with(
        "big",
        false,
        &["big"],
        json!({"gateway": {"max_result_bytes": 4096}}),
    )
    .await;
    let mut c = RawClient::new(&stack.url(), "big", Some(stack.token("alice", &["agents"])));
    c.initialize().await;
    let r = c.call("big", json!({"bytes": 100000})).await;
    let result = &r.last()["result"];
    let size = serde_json::to_vec(result).unwrap().len();
    assert!(size <= 4096, "{size}");
    let content = result["content"].as_array().unwrap();
    assert!(content[0]["text"].as_str().unwrap().starts_with("xxxx"));
    assert!(
        content.last().unwrap()["text"]
            .as_str()
            .unwrap()
            .contains("has been cut")
    );
    let small = c.call("big", json!({"bytes": 100})).await;
    assert_eq!(text_of(small.last()).len(), 100);
}

#[tokio::test]
async fn stateless_requests_are_checked_against_their_headers() {
    let (stack, _up) = stack_with("modern", false, &["echo"], json!({})).await;
    let mut c = RawClient::new(
        &stack.url(),
        "modern",
        Some(stack.token("alice", &["agents"])),
    );
    // The rmcp upstream speaks the session era; a 2026-07-28 request with a mismatched name
    // is refused by the gateway before it goes anywhere.
    let id = c.id();
    let r = c
        .post(
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
                "name": "echo", "arguments": {"text": "x"},
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}),
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "other"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.last()["error"]["code"], -32020);
    assert!(r.headers.get("mcp-session-id").is_none());
    // The method header is required too.
    let r = c
        .post(
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}),
            &[("mcp-protocol-version", "2026-07-28")],
        )
        .await;
    assert_eq!(r.last()["error"]["code"], -32020);
    // GET has no stream in this era.
    let r = client()
        .get(format!("{}/modern/mcp", stack.url()))
        .bearer_auth(stack.token("alice", &["agents"]))
        .header("mcp-protocol-version", "2026-07-28")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_scope_challenge_names_only_the_scope_that_would_grant_the_call() {
    let (stack, _up) = stack_with("weather", false, &["headers"], json!({})).await;
    let rule = |server: &str, methods: &[&str], tools: &[&str]| json!({"server": server, "methods": methods, "tools": tools});
    for (name, access) in [
        // The caller's own: listing weather, calling on billing.
        (
            "team-read",
            rule("weather", &["initialize", "tools/list"], &[]),
        ),
        ("billing-echo", rule("billing", &["tools/call"], &["echo"])),
        // Would grant the call.
        ("weather-echo", rule("weather", &["tools/call"], &["echo"])),
        // Unrelated: lists echo but cannot call it; the wildcard administrator's scope.
        (
            "weather-lists-echo",
            rule("weather", &["tools/list"], &["echo"]),
        ),
        ("everything-admin", rule("*", &["*"], &["*"])),
    ] {
        stack
            .put_scope(json!({"name": name, "server_access": [access]}))
            .await;
        wait_scope(&stack, name).await;
    }
    let mut claims = stack.issuer.claims("carol", &[], AUDIENCE);
    claims["scope"] = json!("team-read billing-echo");
    let mut c = RawClient::new(&stack.url(), "weather", Some(stack.issuer.sign(&claims)));
    assert_eq!(c.initialize().await.status, StatusCode::OK);
    let unrelated = [
        "team-read",
        "billing-echo",
        "weather-lists-echo",
        "everything-admin",
        "agents",
    ];
    let r = c.call("echo", json!({"text": "x"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let challenge = r.header("www-authenticate").to_owned();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\", scope=\"weather-echo\", "),
        "{challenge}"
    );
    for name in unrelated {
        assert!(!challenge.contains(name), "{name} in {challenge}");
        assert!(!r.text.contains(name), "{name} in {}", r.text);
    }

    // A call without a tool name: nothing would grant it, so nothing is named, not even the
    // caller's own scope that calls tools here.
    let mut agent = RawClient::new(
        &stack.url(),
        "weather",
        Some(stack.token("alice", &["agents"])),
    );
    agent.initialize().await;
    let r = agent.request("tools/call", json!({"arguments": {}})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let challenge = r.header("www-authenticate");
    assert!(!challenge.contains("scope="), "{challenge}");
    assert!(r.text.contains("params.name"), "{}", r.text);
}

#[tokio::test]
async fn session_era_method_headers_are_refused_when_they_disagree_and_never_forwarded() {
    let (stack, up) = stack_with("legacy", false, &["headers", "echo"], json!({})).await;
    let mut c = RawClient::new(
        &stack.url(),
        "legacy",
        Some(stack.token("alice", &["agents"])),
    );
    c.initialize().await;
    let calls = |up: &upstream::Upstream| up.counters.calls.load(Ordering::SeqCst);
    let before = calls(&up);
    // 2025-11-25 does not define Mcp-Method / Mcp-Name: headers that contradict the body
    // (here: a name the policy does not grant, or another method) stop at the gateway.
    for (method, name) in [("tools/call", "delete_everything"), ("tools/list", "echo")] {
        let id = c.id();
        let r = c
            .post(
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": "x"}}}),
                &[
                    ("mcp-protocol-version", "2025-11-25"),
                    ("mcp-method", method),
                    ("mcp-name", name),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(r.last()["error"]["code"], -32020, "{}", r.text);
        assert_eq!(r.last()["id"], id, "{}", r.text);
    }
    assert_eq!(calls(&up), before, "nothing reached the server");
    // Headers that agree are accepted, and still not forwarded: the upstream speaks the
    // session era and receives exactly what that era defines.
    let id = c.id();
    let r = c
        .post(
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "headers", "arguments": {}}}),
            &[
                ("mcp-protocol-version", "2025-11-25"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "headers"),
                ("mcp-param-region", "eu"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let seen: Value = serde_json::from_str(&text_of(r.last())).unwrap();
    assert_eq!(seen["mcp-protocol-version"], "2025-11-25", "{seen}");
    for stripped in ["mcp-method", "mcp-name", "mcp-param-region"] {
        assert!(
            seen.get(stripped).is_none(),
            "{stripped} reached the server: {seen}"
        );
    }
}

#[tokio::test]
async fn routes_follow_the_registry_without_a_restart_and_survive_its_outage() {
    let (stack, _up) = stack_with("live", false, &["echo"], json!({})).await;
    let token = stack.token("alice", &["agents"]);
    // Disable: the route goes away; enable: it comes back.
    stack.toggle("live", false).await;
    wait_routed(&stack.gateway, "live", false).await;
    let mut c = RawClient::new(&stack.url(), "live", Some(token.clone()));
    assert_eq!(c.initialize_raw().await.status, StatusCode::NOT_FOUND);
    stack.toggle("live", true).await;
    wait_routed(&stack.gateway, "live", true).await;
    let version = stack.gateway.state.table.current().version.clone();

    // Static stability: a new gateway process starts while the registry is unreachable and
    // serves from the snapshot the first one kept on disk.
    let snapshot = stack.dir.path().join("gw1/snapshot.json");
    let mut written = false;
    for _ in 0..100 {
        if std::fs::read_to_string(&snapshot).is_ok_and(|t| t.contains(&version)) {
            written = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(written, "the snapshot in use is kept on disk");
    let offline = stack
        .start_gateway(
            "gw-offline",
            &format!(
                "[sync]\nsnapshot_file = \"{}\"\n[registry]\nurl = \"http://127.0.0.1:9\"\n",
                snapshot.display()
            ),
        )
        .await;
    assert_eq!(offline.state.table.current().version, version);
    let mut c = RawClient::new(&offline.url(), "live", Some(token));
    c.initialize().await;
    assert_eq!(
        text_of(c.call("echo", json!({"text": "still here"})).await.last()),
        "still here"
    );
    // …and says how old its snapshot is.
    let metrics = metrics_of(&offline).await;
    assert!(
        metrics.contains(&format!(
            "mcpgw_gateway_snapshot_info{{version=\"{version}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("mcpgw_gateway_snapshot_age_seconds"));
    assert!(metrics.contains("mcpgw_gateway_mcp_requests_total{decision=\"allowed\",method=\"tools/call\",server=\"live\",status=\"ok\"} 1"), "{metrics}");
    offline.stop().await;
}

#[tokio::test]
async fn the_session_stream_and_delete_reach_the_upstream_session() {
    let (stack, _up) = stack_with("sess", false, &["echo"], json!({})).await;
    let token = stack.token("alice", &["agents"]);
    let mut c = RawClient::new(&stack.url(), "sess", Some(token.clone()));
    c.initialize().await;
    let sid = c.session.clone().unwrap();
    // The GET stream opens (the upstream's own stream, through the gateway).
    let get = client()
        .get(format!("{}/sess/mcp", stack.url()))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(get.headers()["content-type"], "text/event-stream");
    drop(get);
    // DELETE ends the upstream session: the next request with it is "not found".
    let deleted = client()
        .delete(format!("{}/sess/mcp", stack.url()))
        .bearer_auth(&token)
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    let r = c.call("echo", json!({"text": "x"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

#[tokio::test]
async fn slow_upstreams_meet_the_first_byte_and_idle_limits() {
    let stack =
        Stack::start_with("[upstream]\nfirst_byte_timeout_ms = 400\nidle_timeout_ms = 400\n").await;
    // A server that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/mcp", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let sse_up = upstream::start(false).await;
    stack
        .register(
            "slowjson",
            json!({"transport": "streamable-http", "url": silent_url}),
            json!({}),
        )
        .await;
    stack
        .register(
            "slowsse",
            json!({"transport": "streamable-http", "url": sse_up.url()}),
            json!({}),
        )
        .await;
    stack
        .put_scope(
            json!({"name": "agents", "group_mappings": ["agents"], "server_access": [
        {"server": "*", "methods": ALL_METHODS, "tools": ["slow"]}]}),
        )
        .await;
    wait_routed(&stack.gateway, "slowsse", true).await;
    wait_routed(&stack.gateway, "slowjson", true).await;
    wait_policy(&stack).await;
    let token = stack.token("alice", &["agents"]);
    // No first byte within the limit is a 504.
    let mut c = RawClient::new(&stack.url(), "slowjson", Some(token.clone()));
    let started = Instant::now();
    let r = c.initialize_raw().await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text);
    assert!(started.elapsed() < Duration::from_millis(2000));
    // A stream that goes quiet ends with a JSON-RPC error naming the limit.
    let mut c = RawClient::new(&stack.url(), "slowsse", Some(token));
    c.initialize().await;
    let started = Instant::now();
    let r = c.call("slow", json!({"ms": 3000})).await;
    assert!(started.elapsed() < Duration::from_millis(2500));
    let last = r.last();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("sent nothing"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn the_registrys_health_status_reaches_the_gateway_and_its_errors() {
    let stack = Stack::start().await;
    // A port nothing listens on: the registry's check and the gateway's call both fail.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    stack
        .register(
            "gone",
            json!({"transport": "streamable-http", "url": format!("http://127.0.0.1:{port}/mcp")}),
            json!({}),
        )
        .await;
    stack
        .put_scope(scope("agents", "agents", "gone", ALL_METHODS, &["*"]))
        .await;
    wait_routed(&stack.gateway, "gone", true).await;
    wait_scope(&stack, "agents").await;
    let route_before =
        std::sync::Arc::as_ptr(stack.gateway.state.table.current().get("gone").unwrap());
    let version_before = stack.gateway.state.table.current().version.clone();

    // A manual check applies at once (no damping).
    let checked = stack
        .http
        .post(format!("{}/api/v1/servers/gone/health", stack.registry_url))
        .bearer_auth(&stack.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(checked.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let routes = stack.gateway.state.table.current();
        if routes.health.get("gone").map(|h| h.status)
            == Some(mcpgw_core::domain::HealthStatus::Unhealthy)
        {
            assert_ne!(
                routes.version, version_before,
                "a status change is a new snapshot"
            );
            // The route itself was kept (a rebuild would restart a stdio child).
            assert_eq!(
                std::sync::Arc::as_ptr(routes.get("gone").unwrap()),
                route_before
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never saw the health status"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The gateway still tries the server, and its error says what the registry knew.
    let token = stack.token("alice", &["agents"]);
    let mut c = RawClient::new(&stack.url(), "gone", Some(token));
    let reply = c.modern("tools/list", json!({})).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_GATEWAY,
        "{:?}",
        reply.messages
    );
    let message = reply.last()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("could not be reached")
            && message.contains("the registry's health checks report it unhealthy since"),
        "{message}"
    );
}
