//! Real MCP peers through the gateway: the Python SDK server and client, the reference
//! "everything" server (Streamable HTTP and the legacy SSE transport), the stdio server
//! `mcp-server-time`, and the MCP Inspector CLI. `scripts/deps/mcp-peers.sh` installs them and
//! `scripts/test.sh` exports where they are.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::*;

pub(crate) use mcpgw_test_support::peer_env as env;

/// A peer process, killed when dropped.
pub struct Peer {
    /// Killed when the peer is dropped.
    _child: Child,
    pub url: String,
}

/// The Python SDK server; `args` e.g. `["--transport", "sse"]`.
pub async fn py_server(args: &[&str]) -> Peer {
    let mut child = Command::new(format!("{}/python", env("MCPGW_TEST_PY_PEERS")))
        .arg(format!("{}/py_server.py", env("MCPGW_TEST_PEERS_SRC")))
        .args(["--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("python peer starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("py_server prints READY within 30 s")
        .unwrap()
        .unwrap();
    let url = line
        .strip_prefix("READY ")
        .expect("READY line")
        .trim()
        .to_owned();
    Peer { _child: child, url }
}

/// The reference server-everything in `mode` (`streamableHttp` or `sse`).
pub async fn everything(mode: &str) -> Peer {
    let (child, url) = mcpgw_test_support::server_everything(mode).await;
    Peer { _child: child, url }
}

/// Runs the Python SDK client; its one JSON line.
pub async fn py_client(url: &str, token: &str, args: &[&str]) -> Value {
    let out = Command::new(format!("{}/python", env("MCPGW_TEST_PY_PEERS")))
        .arg(format!("{}/py_client.py", env("MCPGW_TEST_PEERS_SRC")))
        .arg(url)
        .args(["--token", token])
        .args(args)
        .output()
        .await
        .expect("python client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "py_client printed no JSON: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs the MCP Inspector CLI; its JSON output.
pub async fn inspector(url: &str, token: &str, args: &[&str]) -> Value {
    let out = Command::new(env("MCPGW_TEST_NODE"))
        .arg(env("MCPGW_TEST_INSPECTOR"))
        .args([
            "--cli",
            url,
            "--transport",
            "http",
            "--header",
            &format!("Authorization: Bearer {token}"),
        ])
        .args(args)
        .env("MCP_STORAGE_DIR", env("MCP_STORAGE_DIR"))
        .output()
        .await
        .expect("inspector runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "inspector printed no JSON: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub(crate) async fn route(stack: &Stack, path: &str, endpoint: Value, tools: &[&str]) {
    stack.register(path, endpoint, json!({})).await;
    stack
        .put_scope(scope(
            &format!("use-{path}"),
            "agents",
            path,
            ALL_METHODS,
            tools,
        ))
        .await;
    wait_routed(&stack.gateway, path, true).await;
    wait_policy(stack).await;
    wait_scope(stack, &format!("use-{path}")).await;
}

/// `route` for a stdio server whose tools the test calls: waits until the gateway has
/// reported the child's tools (`POST /api/v1/gateway/tools`), approves all of them as a
/// reviewer would, and waits until the gateway serves them.
pub(crate) async fn route_stdio(stack: &Stack, path: &str, endpoint: Value, tools: &[&str]) {
    route(stack, path, endpoint, tools).await;
    approve_discovered(stack, path).await;
}

/// The tools the registry records for `path`, once there are any (reported by the gateway).
pub(crate) async fn recorded_tools(stack: &Stack, path: &str) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let body: Value = stack
            .http
            .get(format!(
                "{}/api/v1/servers/{path}/tools",
                stack.registry_url
            ))
            .bearer_auth(&stack.admin_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(tools) = body["tools"].as_array().filter(|t| !t.is_empty()) {
            return tools.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway never reported the tools of {path}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Approves `names` (every recorded tool when empty) of `path` and waits until the gateway's
/// route carries the approval.
pub(crate) async fn approve_tools(stack: &Stack, path: &str, names: &[&str]) {
    let tools = recorded_tools(stack, path).await;
    let hashes: serde_json::Map<String, Value> = tools
        .iter()
        .filter(|t| names.is_empty() || names.contains(&t["name"].as_str().unwrap_or_default()))
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["contentHash"].clone(),
            )
        })
        .collect();
    let approved = stack
        .http
        .post(format!(
            "{}/api/v1/servers/{path}/tools/approve",
            stack.registry_url
        ))
        .bearer_auth(&stack.admin_key)
        .json(&json!({"tools": hashes, "reason": "reviewed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), StatusCode::OK);
    for _ in 0..400 {
        let routes = stack.gateway.state.table.current();
        let carried = routes.get(path).is_some_and(|r| {
            hashes.keys().all(|name| {
                r.entry
                    .tools
                    .iter()
                    .any(|t| &t.name == name && t.approved_hash.is_some())
            })
        });
        if carried {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the approval of {path}'s tools never reached the gateway");
}

/// Approves every tool the gateway reported for `path`.
pub(crate) async fn approve_discovered(stack: &Stack, path: &str) {
    approve_tools(stack, path, &[]).await;
}

pub(crate) fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn python_sdk_client_and_server_in_both_eras() {
    let stack = Stack::start().await;
    let server = py_server(&[]).await;
    route(
        &stack,
        "py",
        json!({"transport": "streamable-http", "url": server.url}),
        &["add", "progress_steps", "echo_headers"],
    )
    .await;
    let token = stack.token("alice", &["agents"]);
    let url = format!("{}/py/mcp", stack.url());
    for mode in ["legacy", "2026-07-28"] {
        let out = py_client(
            &url,
            &token,
            &[
                "--mode",
                mode,
                "--call",
                "add",
                "--args",
                r#"{"a": 2, "b": 3}"#,
            ],
        )
        .await;
        assert!(out.get("error").is_none(), "{mode}: {out}");
        let mut tools: Vec<&str> = out["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        tools.sort();
        assert_eq!(
            tools,
            ["add", "echo_headers", "progress_steps"],
            "{mode}: write_note and sleep are filtered out"
        );
        assert_eq!(text(&out["call"]["result"]), "5", "{mode}: {out}");
        let expected_version = if mode == "legacy" {
            "2025-11-25"
        } else {
            "2026-07-28"
        };
        assert_eq!(out["protocol_version"], expected_version, "{out}");
    }
    // Progress reaches a stateless client too.
    let out = py_client(
        &url,
        &token,
        &[
            "--mode",
            "2026-07-28",
            "--call",
            "progress_steps",
            "--args",
            r#"{"steps": 3}"#,
            "--progress",
        ],
    )
    .await;
    assert_eq!(out["progress"].as_array().map(Vec::len), Some(3), "{out}");
    // A raw stateless request: no session is minted, headers were checked and forwarded.
    let mut raw = RawClient::new(&stack.url(), "py", Some(token.clone()));
    let r = raw
        .modern(
            "tools/call",
            json!({"name": "echo_headers", "arguments": {}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.headers.get("mcp-session-id").is_none());
    let seen = text(&r.last()["result"]);
    assert!(
        !seen.contains(&token),
        "the caller's token is not forwarded: {seen}"
    );
}

#[tokio::test]
async fn the_everything_server_over_streamable_http_and_legacy_sse() {
    let stack = Stack::start().await;
    let http = everything("streamableHttp").await;
    let sse = everything("sse").await;
    route(
        &stack,
        "everything",
        json!({"transport": "streamable-http", "url": http.url}),
        &["get-sum", "echo"],
    )
    .await;
    route(
        &stack,
        "everything-sse",
        json!({"transport": "sse", "url": sse.url}),
        &["get-sum", "echo"],
    )
    .await;
    let token = stack.token("alice", &["agents"]);
    // The Inspector CLI as the client.
    let listed = inspector(
        &format!("{}/everything/mcp", stack.url()),
        &token,
        &["--method", "tools/list"],
    )
    .await;
    let mut names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["echo", "get-sum"], "{listed}");
    let called = inspector(
        &format!("{}/everything/mcp", stack.url()),
        &token,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "get-sum",
            "--tool-args-json",
            r#"{"a": 20, "b": 22}"#,
        ],
    )
    .await;
    assert!(text(&called).contains("42"), "{called}");
    // The legacy SSE upstream, reached through the gateway's shared session.
    let out = py_client(
        &format!("{}/everything-sse/mcp", stack.url()),
        &token,
        &["--call", "get-sum", "--args", r#"{"a": 1, "b": 2}"#],
    )
    .await;
    assert!(text(&out["call"]["result"]).contains('3'), "{out}");
    assert_eq!(out["tools"].as_array().unwrap().len(), 2, "{out}");
}

#[tokio::test]
async fn a_stdio_server_run_by_the_gateway() {
    // One stream per caller is enough for a listen stream (it once took two permits).
    let stack = Stack::start_with("[limits]\nstreams_per_caller = 1\n").await;
    let time = format!("{}/mcp-server-time", env("MCPGW_TEST_PY_PEERS"));
    route_stdio(
        &stack,
        "time",
        json!({"transport": "stdio", "command": time, "args": ["--local-timezone", "UTC"]}),
        &["get_current_time"],
    )
    .await;
    let token = stack.token("alice", &["agents"]);
    let url = format!("{}/time/mcp", stack.url());
    for mode in ["legacy", "2026-07-28"] {
        let out = py_client(
            &url,
            &token,
            &[
                "--mode",
                mode,
                "--call",
                "get_current_time",
                "--args",
                r#"{"timezone": "UTC"}"#,
            ],
        )
        .await;
        assert!(out.get("error").is_none(), "{mode}: {out}");
        assert_eq!(
            out["tools"],
            json!(["get_current_time"]),
            "{mode}: convert_time is filtered out"
        );
        assert!(
            text(&out["call"]["result"]).contains("UTC"),
            "{mode}: {out}"
        );
    }
}

#[tokio::test]
async fn a_legacy_sse_client_through_the_gateway() {
    let stack = Stack::start().await;
    let server = py_server(&[]).await;
    route(
        &stack,
        "py",
        json!({"transport": "streamable-http", "url": server.url}),
        &["add"],
    )
    .await;
    let token = stack.token("alice", &["agents"]);
    let out = py_client(
        &format!("{}/py/sse", stack.url()),
        &token,
        &[
            "--transport",
            "sse",
            "--call",
            "add",
            "--args",
            r#"{"a": 4, "b": 5}"#,
        ],
    )
    .await;
    assert!(out.get("error").is_none(), "{out}");
    assert_eq!(text(&out["call"]["result"]), "9", "{out}");
    assert_eq!(out["tools"], json!(["add"]));
}

#[tokio::test]
async fn a_stdio_server_that_exits_is_restarted_on_the_next_request() {
    let stack = Stack::start_with("[stdio]\nrestart_min_ms = 50\n").await;
    let script = format!("{}/crashy_stdio.py", env("MCPGW_TEST_PEERS_SRC"));
    route_stdio(
        &stack,
        "crashy",
        json!({"transport": "stdio", "command": "python3", "args": [script]}),
        &["whoami", "crash"],
    )
    .await;
    let mut c = RawClient::new(
        &stack.url(),
        "crashy",
        Some(stack.token("alice", &["agents"])),
    );
    c.initialize().await;
    let first = text(&c.call("whoami", json!({})).await.last()["result"]);
    assert_eq!(
        text(&c.call("crash", json!({})).await.last()["result"]),
        first
    );
    // The child is gone; the next call starts a new one (after the restart delay).
    let mut second = String::new();
    for _ in 0..50 {
        let r = c.call("whoami", json!({})).await;
        if r.status == StatusCode::OK && r.last().get("result").is_some() {
            second = text(&r.last()["result"]);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !second.is_empty() && second != first,
        "a new process answers: {first} → {second}"
    );
    let metrics = metrics_of(&stack.gateway).await;
    assert!(
        metrics.contains("mcpgw_gateway_stdio_restarts_total{server=\"crashy\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_clients_cancellation_reaches_a_shared_upstream() {
    let stack = Stack::start().await;
    let server = py_server(&["--transport", "sse"]).await;
    route(
        &stack,
        "pysse",
        json!({"transport": "sse", "url": server.url}),
        &["sleep", "stats"],
    )
    .await;
    let token = stack.token("alice", &["agents"]);
    let mut c = RawClient::new(&stack.url(), "pysse", Some(token));
    c.initialize().await;
    let mut slow = RawClient::new(&stack.url(), "pysse", c.token.clone());
    slow.session = c.session.clone();
    let call = tokio::spawn(async move {
        slow.post(
            json!({"jsonrpc": "2.0", "id": "long-1", "method": "tools/call",
                   "params": {"name": "sleep", "arguments": {"seconds": 30}}}),
            &[("mcp-protocol-version", "2025-11-25")],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = c
        .post(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                   "params": {"requestId": "long-1", "reason": "user pressed stop"}}),
            &[("mcp-protocol-version", "2025-11-25")],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let _ = tokio::time::timeout(Duration::from_secs(10), call).await;
    let mut cancelled = 0;
    for _ in 0..50 {
        let stats = c.call("stats", json!({})).await;
        let v: Value = serde_json::from_str(&text(&stats.last()["result"])).unwrap_or_default();
        cancelled = v["sleeps_cancelled"].as_u64().unwrap_or(0);
        if cancelled > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cancelled, 1, "the upstream saw the cancellation");
}

#[tokio::test]
async fn a_stdio_child_gets_a_clean_environment_plus_its_registered_variables() {
    let stack = Stack::start().await;
    let script = format!("{}/crashy_stdio.py", env("MCPGW_TEST_PEERS_SRC"));
    route_stdio(
        &stack,
        "envcheck",
        json!({"transport": "stdio", "command": "python3", "args": [script],
               "env": {"GREETING": "sealed-hello"}}),
        &["environ"],
    )
    .await;
    let mut c = RawClient::new(
        &stack.url(),
        "envcheck",
        Some(stack.token("alice", &["agents"])),
    );
    c.initialize().await;
    let environ: Value =
        serde_json::from_str(&text(&c.call("environ", json!({})).await.last()["result"])).unwrap();
    assert_eq!(
        environ["GREETING"], "sealed-hello",
        "the registered variable, opened"
    );
    assert!(environ.get("PATH").is_some());
    // The test process (the gateway's parent here) has MCPGW_TEST_* set; none reaches the child.
    let leaked: Vec<&String> = environ
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("MCPGW"))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
}

/// The registry's own MCP server keeps no sessions and has no GET stream (it answers `GET`
/// with 405): a session-era client that opens the GET stream after `initialize`, as the
/// Inspector CLI (the TypeScript SDK) does, must get that 405 too, not a refusal it cannot
/// get past.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_lists_the_tools_of_an_upstream_without_a_get_stream() {
    const PATH: &str = "mcpgw-registry";
    let stack = Stack::start().await;
    registry::mcp::ensure_registered(&stack.registry.state, stack.registry.addr).await;
    stack
        .put_scope(json!({
            "name": "agents",
            "group_mappings": ["agents"],
            "server_access": [{"server": PATH, "methods": ALL_METHODS, "tools": "*"}]
        }))
        .await;
    wait_routed(&stack.gateway, PATH, true).await;
    wait_scope(&stack, "agents").await;
    let token = stack.token("alice", &["agents"]);
    let url = format!("{}/{PATH}/mcp", stack.url());

    // What the SDK does after `initialize`: a GET with the session the gateway gave, if any.
    let mut raw = RawClient::new(&stack.url(), PATH, Some(token.clone()));
    raw.initialize().await;
    let mut get = client()
        .get(&url)
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(session) = &raw.session {
        get = get.header("mcp-session-id", session);
    }
    let r = get.send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::METHOD_NOT_ALLOWED,
        "{:?}",
        r.headers()
    );
    assert!(r.headers().contains_key("allow"), "{:?}", r.headers());

    let listed = inspector(&url, &token, &["--method", "tools/list"]).await;
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    // Every tool the registry's server has, as `tools/list` straight to it gives them.
    let direct: Vec<String> = registry::mcp::definitions()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(direct.len() >= 9, "{direct:?}");
    assert_eq!(names, direct, "{listed}");
}
