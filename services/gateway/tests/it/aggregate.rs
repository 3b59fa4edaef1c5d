//! The aggregated endpoint `/mcp` end to end: a real registry (its tools recorded from real
//! `tools/list` answers and approved), real upstreams (the rmcp test server, the Python SDK
//! server), real clients (raw HTTP, the Python SDK client, the MCP Inspector CLI) and real
//! tokens.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::audit_exits::events;
use crate::helpers::*;
use crate::peers::{inspector, py_client, py_server};

async fn registry(stack: &Stack, method: reqwest::Method, path: &str, body: Value) -> Value {
    let response = stack
        .http
        .request(method, format!("{}{path}", stack.registry_url))
        .bearer_auth(&stack.admin_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// Records `tools` for `server` in the registry, approves them, and waits until the gateway
/// routes them.
async fn record_and_approve(stack: &Stack, server: &str, tools: Vec<Value>) {
    let count = tools.len();
    let recorded = registry(
        stack,
        reqwest::Method::PUT,
        &format!("/api/v1/servers/{server}/tools"),
        json!({"tools": tools}),
    )
    .await;
    let hashes: serde_json::Map<String, Value> = recorded["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["contentHash"].clone(),
            )
        })
        .collect();
    registry(
        stack,
        reqwest::Method::POST,
        &format!("/api/v1/servers/{server}/tools/approve"),
        json!({"tools": hashes, "reason": "reviewed"}),
    )
    .await;
    for _ in 0..400 {
        let routes = stack.gateway.state.table.current();
        if let Some(route) = routes.get(server)
            && route.entry.tools.len() == count
            && route.entry.tools.iter().all(|t| t.approved_hash.is_some())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway never got the approved tools of {server}");
}

/// A real `tools/list` straight from an upstream (not through the gateway).
async fn live_tools(url: &str) -> Vec<Value> {
    let mut direct = RawClient::new("http://unused", "unused", None);
    direct.url = url.to_owned();
    direct.initialize().await;
    let listed = direct.request("tools/list", json!({})).await;
    listed.last()["result"]["tools"].as_array().unwrap().clone()
}

fn aggregated(stack: &Stack, token: &str, query: &str) -> RawClient {
    let mut c = RawClient::new(&stack.url(), "unused", Some(token.to_owned()));
    c.url = format!("{}/mcp{query}", stack.url());
    c
}

fn names(tools: &Value) -> Vec<String> {
    tools
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The tools a `discover_tools` reply found.
fn discovered(reply: &Value) -> Value {
    let text = text_of(reply);
    serde_json::from_str::<Value>(&text).unwrap_or_else(|_| panic!("{reply}"))["tools"].clone()
}

/// `notes` (the rmcp test server, tools recorded and approved); alice (group agents) may call
/// echo and write_note there, bob (group readers) only echo.
async fn notes_stack() -> (Stack, crate::upstream::Upstream) {
    let (stack, up) = stack_with("notes", false, &["echo", "write_note"], json!({})).await;
    stack
        .put_scope(scope("readers", "readers", "notes", ALL_METHODS, &["echo"]))
        .await;
    wait_scope(&stack, "readers").await;
    record_and_approve(&stack, "notes", live_tools(&up.url()).await).await;
    (stack, up)
}

#[tokio::test]
async fn progressive_discovery_finds_permitted_tools_and_calls_go_through_the_server_pipeline() {
    let (stack, up) = notes_stack().await;
    let alice = stack.token("alice", &["agents"]);
    let mut c = aggregated(&stack, &alice, "");
    let init = c.initialize().await;
    assert_eq!(init.status, StatusCode::OK, "{}", init.text);
    assert!(c.session.is_some(), "a session id is issued");
    assert_eq!(
        init.last()["result"]["capabilities"]["tools"]["listChanged"],
        true
    );

    // tools/list: only the meta-tools (no always-on tools configured).
    let listed = c.request("tools/list", json!({})).await;
    assert_eq!(
        names(&listed.last()["result"]["tools"]),
        ["discover_tools", "call_tool"]
    );

    // discover_tools ranks the matching tool first, with its schema and annotations.
    let found = c
        .call(
            "discover_tools",
            json!({"query": "echo the text back", "limit": 3}),
        )
        .await;
    let tools = discovered(found.last());
    assert_eq!(tools[0]["name"], "notes__echo", "{tools}");
    assert_eq!(tools[0]["annotations"]["readOnlyHint"], true);
    assert!(
        tools[0]["inputSchema"]["properties"]["text"].is_object(),
        "{tools}"
    );
    let all_found = names(&discovered(
        c.call(
            "discover_tools",
            json!({"query": "text note size sleep progress headers", "limit": 20}),
        )
        .await
        .last(),
    ));
    assert!(
        all_found
            .iter()
            .all(|n| n == "notes__echo" || n == "notes__write_note"),
        "{all_found:?}"
    );

    // call_tool reaches the real upstream and returns its result.
    let called = c
        .call(
            "call_tool",
            json!({"name": "notes__echo", "arguments": {"text": "hello"}}),
        )
        .await;
    assert_eq!(text_of(called.last()), "hello", "{}", called.text);
    assert_eq!(
        up.counters.calls.load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    // Bob may use echo only: write_note is never discovered, and calling it is an unknown tool.
    let bob = stack.token("bob", &["readers"]);
    let mut b = aggregated(&stack, &bob, "");
    b.initialize().await;
    let found = b
        .call("discover_tools", json!({"query": "store a note write"}))
        .await;
    assert!(
        !names(&discovered(found.last())).contains(&"notes__write_note".to_owned()),
        "{}",
        found.text
    );
    let denied = b
        .call(
            "call_tool",
            json!({"name": "notes__write_note", "arguments": {"text": "x"}}),
        )
        .await;
    assert_eq!(denied.status, StatusCode::OK);
    assert_eq!(denied.last()["error"]["code"], -32602);
    assert_eq!(
        denied.last()["error"]["message"],
        "Unknown tool: notes__write_note"
    );
    let missing = b.call("call_tool", json!({"name": "notes__nope"})).await;
    assert_eq!(
        missing.last()["error"]["message"],
        "Unknown tool: notes__nope"
    );
    assert_eq!(
        up.counters.calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "nothing reached the server"
    );

    // Bad input: a clear error naming the field; nothing is called.
    let bad = b
        .call("discover_tools", json!({"query": "echo", "limit": 0}))
        .await;
    assert_eq!(bad.last()["error"]["code"], -32602);
    assert!(
        bad.last()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`limit`"),
        "{}",
        bad.text
    );
    let bad = b
        .call("discover_tools", json!({"query": "x".repeat(1001)}))
        .await;
    assert!(
        bad.last()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`query`"),
        "{}",
        bad.text
    );
    let bad = b
        .call(
            "call_tool",
            json!({"name": "notes__echo", "arguments": [1]}),
        )
        .await;
    assert!(
        bad.last()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`arguments`"),
        "{}",
        bad.text
    );
    let r = aggregated(&stack, &bob, "?mode=everything")
        .initialize_raw()
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("`mode`"), "{}", r.text);
    let r = aggregated(&stack, "not-a-token", "").initialize_raw().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.header("www-authenticate")
            .contains("/.well-known/oauth-protected-resource/mcp")
    );

    // The audit log names the real server and tool, for the call and for the denial.
    let events = stack
        .audit_until("resource_id=notes", |events| {
            events.iter().any(|e| e["action"] == "mcp.tool_call")
                && events.iter().any(|e| e["action"] == "mcp.denied")
        })
        .await;
    let call = events
        .iter()
        .find(|e| e["action"] == "mcp.tool_call")
        .expect("call audited");
    assert_eq!(
        (call["actor"].as_str(), call["details"]["tool"].as_str()),
        (Some("alice"), Some("echo"))
    );
    assert_eq!(call["details"]["status"], "ok");
    let denial = events
        .iter()
        .find(|e| e["action"] == "mcp.denied")
        .expect("denial audited");
    assert_eq!(
        (denial["actor"].as_str(), denial["details"]["tool"].as_str()),
        (Some("bob"), Some("write_note"))
    );

    // The stateless era: tools/list with caching hints, call_tool without a session.
    let mut m = aggregated(&stack, &alice, "");
    let listed = m.modern("tools/list", json!({})).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.last()["result"]["cacheScope"], "private");
    assert_eq!(listed.last()["result"]["resultType"], "complete");
    let called = m
        .modern("tools/call", json!({"name": "call_tool", "arguments": {"name": "notes__echo", "arguments": {"text": "modern"}}}))
        .await;
    assert_eq!(text_of(called.last()), "modern", "{}", called.text);
    let discover = m.modern("server/discover", json!({})).await;
    assert!(
        discover.last()["result"]["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );
}

#[tokio::test]
async fn plain_aggregation_lists_every_permitted_tool_prefixed_and_routes_by_prefix() {
    let (stack, up) = notes_stack().await;
    let alice = stack.token("alice", &["agents"]);
    let mut c = aggregated(&stack, &alice, "?mode=all");
    c.initialize().await;
    let listed = c.request("tools/list", json!({})).await;
    assert_eq!(
        names(&listed.last()["result"]["tools"]),
        ["notes__echo", "notes__write_note"]
    );
    let called = c.call("notes__write_note", json!({"text": "kept"})).await;
    assert_eq!(text_of(called.last()), "stored: kept", "{}", called.text);
    let bob = stack.token("bob", &["readers"]);
    let mut b = aggregated(&stack, &bob, "?mode=all");
    b.initialize().await;
    let listed = b.request("tools/list", json!({})).await;
    assert_eq!(names(&listed.last()["result"]["tools"]), ["notes__echo"]);
    let denied = b.call("notes__write_note", json!({"text": "x"})).await;
    assert_eq!(
        denied.last()["error"]["message"],
        "Unknown tool: notes__write_note"
    );
    assert_eq!(
        up.counters.calls.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

/// Reads SSE messages from `response` for up to `wait`.
async fn messages_within(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    parser: &mut gateway::sse::Parser,
    wait: Duration,
) -> Vec<Value> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, stream.next()).await {
        for e in parser
            .feed(&chunk)
            .unwrap()
            .into_iter()
            .filter(|e| e.is_message())
        {
            out.push(serde_json::from_str(&e.data).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn list_changed_is_sent_when_the_callers_tools_change_and_not_otherwise() {
    let (stack, up) = notes_stack().await;
    let bob = stack.token("bob", &["readers"]);
    let mut c = aggregated(&stack, &bob, "");
    c.initialize().await;
    let get = stack
        .http
        .get(&c.url)
        .bearer_auth(&bob)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", c.session.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    let mut stream = Box::pin(get.bytes_stream());
    let mut parser = gateway::sse::Parser::new(1 << 20);
    // The stateless era's listen stream, for the same caller.
    let listen = stack
        .http
        .post(&c.url)
        .bearer_auth(&bob)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "subscriptions/listen")
        .json(
            &json!({"jsonrpc": "2.0", "id": 7, "method": "subscriptions/listen", "params": {
            "notifications": {"toolsListChanged": true},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(listen.status(), StatusCode::OK);
    let mut listen = Box::pin(listen.bytes_stream());
    let mut listen_parser = gateway::sse::Parser::new(1 << 20);
    let ack = messages_within(&mut listen, &mut listen_parser, Duration::from_secs(2)).await;
    assert_eq!(
        ack[0]["method"], "notifications/subscriptions/acknowledged",
        "{ack:?}"
    );

    // A new server bob may not use: a new snapshot, but nothing changes for bob.
    stack
        .register(
            "other",
            json!({"transport": "streamable-http", "url": up.url()}),
            json!({}),
        )
        .await;
    wait_routed(&stack.gateway, "other", true).await;
    let quiet = messages_within(&mut stream, &mut parser, Duration::from_millis(800)).await;
    assert!(quiet.is_empty(), "no change for bob: {quiet:?}");

    // A policy change that gives bob write_note: his tool set changed.
    stack
        .put_scope(scope(
            "readers",
            "readers",
            "notes",
            ALL_METHODS,
            &["echo", "write_note"],
        ))
        .await;
    let heard = messages_within(&mut stream, &mut parser, Duration::from_secs(10)).await;
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!(heard[0]["method"], "notifications/tools/list_changed");
    let heard = messages_within(&mut listen, &mut listen_parser, Duration::from_secs(2)).await;
    assert_eq!(
        heard[0]["method"], "notifications/tools/list_changed",
        "{heard:?}"
    );
    assert_eq!(
        heard[0]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        7
    );
    let found = c
        .call("discover_tools", json!({"query": "store a note"}))
        .await;
    assert!(names(&discovered(found.last())).contains(&"notes__write_note".to_owned()));
}

/// Tokens of a JSON text, approximated as one per 4 characters (the usual rule of thumb for
/// English and JSON with GPT/Claude-style BPE tokenizers; schema-heavy JSON tends to come out
/// a little under it, so the bound is on the safe side for the assertion below).
fn approx_tokens(v: &Value) -> usize {
    v.to_string().chars().count().div_ceil(4)
}

#[tokio::test]
async fn five_hundred_tools_cost_a_progressive_session_under_2000_tokens() {
    // One always-on tool that exists, one that does not (listed only when it is there).
    let stack = Stack::start_with(
        "[aggregate]\nalways_on = [\"storage__storage_operation_7\", \"gone__tool\"]\n",
    )
    .await;
    let up = crate::upstream::start(false).await;
    let areas = ["billing", "compute", "storage", "network", "identity"];
    for area in areas {
        stack
            .register(
                area,
                json!({"transport": "streamable-http", "url": up.url()}),
                json!({}),
            )
            .await;
        let tools: Vec<Value> = (0..100)
            .map(|i| {
                json!({
                    "name": format!("{area}_operation_{i}"),
                    "description": format!("Performs {area} operation number {i}: reads and changes {area} resources of an account, with paging and filters."),
                    "inputSchema": {"type": "object", "properties": {
                        "account": {"type": "string", "description": "The account id"},
                        "filter": {"type": "string", "description": "Which resources"},
                        "page": {"type": "integer", "description": "Page number"}
                    }, "required": ["account"]},
                    "annotations": {"readOnlyHint": i % 2 == 0}
                })
            })
            .collect();
        record_and_approve(&stack, area, tools).await;
    }
    stack
        .put_scope(
            json!({"name": "everything", "group_mappings": ["agents"], "server_access": [
            {"server": "*", "methods": ALL_METHODS, "tools": "*"}]}),
        )
        .await;
    wait_scope(&stack, "everything").await;
    let token = stack.token("alice", &["agents"]);

    let mut c = aggregated(&stack, &token, "");
    let init = c.initialize().await;
    let listed = c.request("tools/list", json!({})).await;
    assert_eq!(
        names(&listed.last()["result"]["tools"]),
        [
            "discover_tools",
            "call_tool",
            "storage__storage_operation_7"
        ]
    );
    let progressive =
        approx_tokens(&init.last()["result"]) + approx_tokens(&listed.last()["result"]);
    let mut all = aggregated(&stack, &token, "?mode=all");
    all.initialize().await;
    let everything = all.request("tools/list", json!({})).await;
    assert_eq!(
        everything.last()["result"]["tools"]
            .as_array()
            .unwrap()
            .len(),
        500
    );
    let plain = approx_tokens(&everything.last()["result"]);
    println!(
        "approx tokens: progressive initialize + tools/list = {progressive}; plain tools/list of 500 tools = {plain}"
    );
    assert!(progressive <= 2000, "{progressive} tokens");
    assert!(plain > 20 * progressive, "{plain} vs {progressive}");

    // The one tool among 500 that a query names.
    let found = c
        .call(
            "discover_tools",
            json!({"query": "storage operation number 42", "limit": 3}),
        )
        .await;
    assert_eq!(
        discovered(found.last())[0]["name"],
        "storage__storage_operation_42",
        "{}",
        found.text
    );
}

#[tokio::test]
async fn python_sdk_client_and_inspector_discover_and_call_through_mcp() {
    let stack = Stack::start().await;
    let server = py_server(&[]).await;
    stack
        .register(
            "py",
            json!({"transport": "streamable-http", "url": server.url}),
            json!({}),
        )
        .await;
    stack
        .put_scope(scope(
            "use-py",
            "agents",
            "py",
            ALL_METHODS,
            &["add", "echo_headers"],
        ))
        .await;
    wait_routed(&stack.gateway, "py", true).await;
    wait_scope(&stack, "use-py").await;
    record_and_approve(&stack, "py", live_tools(&server.url).await).await;
    let token = stack.token("alice", &["agents"]);
    let url = format!("{}/mcp", stack.url());

    for mode in ["legacy", "2026-07-28"] {
        let out = py_client(
            &url,
            &token,
            &[
                "--mode",
                mode,
                "--call",
                "discover_tools",
                "--args",
                r#"{"query": "add two numbers"}"#,
            ],
        )
        .await;
        assert!(out.get("error").is_none(), "{mode}: {out}");
        assert_eq!(
            out["tools"],
            json!(["discover_tools", "call_tool"]),
            "{out}"
        );
        let found: Value = serde_json::from_str(
            out["call"]["result"]["content"][0]["text"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(found["tools"][0]["name"], "py__add", "{mode}: {found}");
        let names = names(&found["tools"]);
        assert!(
            !names.contains(&"py__write_note".to_owned()),
            "not granted: {names:?}"
        );
        let out = py_client(
            &url,
            &token,
            &[
                "--mode",
                mode,
                "--call",
                "call_tool",
                "--args",
                r#"{"name": "py__add", "arguments": {"a": 2, "b": 3}}"#,
            ],
        )
        .await;
        assert_eq!(
            out["call"]["result"]["content"][0]["text"], "5",
            "{mode}: {out}"
        );
        let out = py_client(
            &url,
            &token,
            &[
                "--mode",
                mode,
                "--call",
                "call_tool",
                "--args",
                r#"{"name": "py__write_note", "arguments": {"text": "x"}}"#,
            ],
        )
        .await;
        assert!(
            out.to_string().contains("Unknown tool: py__write_note"),
            "{mode}: {out}"
        );
    }

    let listed = inspector(&url, &token, &["--method", "tools/list"]).await;
    assert_eq!(
        names(&listed["tools"]),
        ["discover_tools", "call_tool"],
        "{listed}"
    );
    let found = inspector(
        &url,
        &token,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "discover_tools",
            "--tool-args-json",
            r#"{"query": "add numbers"}"#,
        ],
    )
    .await;
    assert!(
        text_of(&json!({"result": found})).contains("py__add"),
        "{found}"
    );
    let called = inspector(
        &url,
        &token,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "call_tool",
            "--tool-args-json",
            r#"{"name": "py__add", "arguments": {"a": 20, "b": 22}}"#,
        ],
    )
    .await;
    assert_eq!(text_of(&json!({"result": called})), "42", "{called}");
}

/// The `mcpgw_gateway_mcp_requests_total` samples of `server`, as `(labels, value)`.
async fn request_counts(stack: &Stack, server: &str) -> Vec<(String, String)> {
    let metrics = metrics_of(&stack.gateway).await;
    let label = format!("server=\"{server}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("mcpgw_gateway_mcp_requests_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(labels, value)| (labels.to_owned(), value.to_owned()))
        .collect()
}

#[tokio::test]
async fn a_first_call_through_mcp_runs_the_pipeline_once_and_every_refusal_is_audited_once() {
    let (stack, up) = notes_stack().await;
    let alice = stack.token("alice", &["agents"]);
    let mut c = aggregated(&stack, &alice, "");
    c.initialize().await;
    let sessionless = || {
        up.counters
            .sessionless_posts
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let before = sessionless();
    // The first call needs an upstream session: opened inside the pipeline, not as requests.
    let called = c
        .call(
            "call_tool",
            json!({"name": "notes__echo", "arguments": {"text": "once"}}),
        )
        .await;
    assert_eq!(text_of(called.last()), "once", "{}", called.text);
    assert_eq!(
        up.counters.calls.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert_eq!(
        sessionless() - before,
        1,
        "the upstream sees one initialize"
    );
    let counts = request_counts(&stack, "notes").await;
    assert_eq!(
        counts.len(),
        1,
        "only the tools/call is a request: {counts:?}"
    );
    assert!(
        counts[0].0.contains("method=\"tools/call\"") && counts[0].1 == "1",
        "{counts:?}"
    );

    // A tool bob may not use, through /mcp: refused and audited once, under its server.
    let bob = stack.token("bob", &["readers"]);
    let mut b = aggregated(&stack, &bob, "");
    b.initialize().await;
    let hidden = b
        .call(
            "call_tool",
            json!({"name": "notes__write_note", "arguments": {"text": "x"}}),
        )
        .await;
    assert_eq!(hidden.last()["error"]["code"], -32602, "{}", hidden.text);
    assert_eq!(
        sessionless() - before,
        1,
        "no session is opened for a refused call"
    );
    // Refusals of /mcp itself, before the caller or the method is known.
    let r = aggregated(&stack, "not-a-token", "").initialize_raw().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = aggregated(&stack, &alice, "?mode=everything")
        .initialize_raw()
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = client()
        .post(format!("{}/mcp", stack.url()))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body("[")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let row = |a: &str, t: &str, r: &str, s: &str| {
        (a.to_owned(), t.to_owned(), r.to_owned(), s.to_owned())
    };
    let audited = async |server: &str, want: usize| {
        let mut found = events(&stack, server, want).await;
        found.sort();
        found
    };
    let notes = audited("notes", 2).await;
    let mcp = audited("mcp", 3).await;
    // Let a duplicate, if any, arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(notes, audited("notes", notes.len() + 1).await);
    assert_eq!(mcp, audited("mcp", mcp.len() + 1).await);
    assert_eq!(
        notes,
        [
            row("mcp.denied", "write_note", "tool_not_allowed", "denied"),
            row("mcp.tool_call", "echo", "allowed", "ok"),
        ]
    );
    assert_eq!(
        mcp,
        [
            row("mcp.denied", "", "invalid_query", "invalid"),
            row("mcp.denied", "", "malformed", "invalid"),
            row("mcp.denied", "", "unauthenticated", "denied"),
        ]
    );
}
