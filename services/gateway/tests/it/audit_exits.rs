//! One exit: every refusal or failure of a tool call the gateway decides is recorded once,
//! with its own status, in the registry's audit log (driven for real, end to end), and so is
//! every refusal before the caller or the method is known, on both endpoints.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// `(action, tool, reason, status)` of the gateway's audit events for `server`, once `want`
/// of them have arrived (or after 10 s).
pub(crate) async fn events(
    stack: &Stack,
    server: &str,
    want: usize,
) -> Vec<(String, String, String, String)> {
    let is_mcp = |e: &Value| e["action"].as_str().unwrap_or("").starts_with("mcp.");
    stack
        .audit_until(&format!("resource_id={server}"), |r| {
            r.iter().filter(|e| is_mcp(e)).count() >= want
        })
        .await
        .into_iter()
        .filter(is_mcp)
        .map(|e| {
            let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
            (
                s(&e["action"]),
                s(&e["details"]["tool"]),
                s(&e["details"]["reason"]),
                s(&e["details"]["status"]),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_refusal_of_a_tool_call_is_audited_exactly_once() {
    let (stack, _up) = stack_with(
        "weather",
        false,
        &["echo"],
        json!({"gateway": {"tool_calls_per_minute": {"echo": 1}}}),
    )
    .await;
    // A second server on a port nothing listens on: the upstream is down.
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
        .put_scope(scope("gone-agents", "agents", "gone", ALL_METHODS, &["*"]))
        .await;
    wait_routed(&stack.gateway, "gone", true).await;
    wait_scope(&stack, "gone-agents").await;

    let alice = stack.token("alice", &["agents"]);
    let mut c = RawClient::new(&stack.url(), "weather", Some(alice.clone()));
    c.initialize().await;
    let ok = c.call("echo", json!({"text": "x"})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let limited = c.call("echo", json!({"text": "x"})).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text
    );
    let hidden = c.call("write_note", json!({"text": "x"})).await;
    assert_eq!(hidden.last()["error"]["code"], -32602, "{}", hidden.text);
    let unknown = c.call("no_such_tool", json!({})).await;
    assert_eq!(unknown.last()["error"]["code"], -32602, "{}", unknown.text);

    // A caller whose groups grant no scope: the method is refused.
    let mut stranger = RawClient::new(
        &stack.url(),
        "weather",
        Some(stack.token("mallory", &["others"])),
    );
    let refused = stranger.call("echo", json!({"text": "x"})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);

    let mut down = RawClient::new(&stack.url(), "gone", Some(alice.clone()));
    let failed = down.call("echo", json!({"text": "x"})).await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{}", failed.text);

    // Refusals before the caller (or the method) is known, each of its own server and reason
    // (refusals of one server and reason are coalesced over a window).
    let mut anonymous = RawClient::new(&stack.url(), "weather", None);
    let r = anonymous.call("echo", json!({"text": "x"})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let mut forged = RawClient::new(&stack.url(), "gone", Some("not-a-token".into()));
    let r = forged.call("echo", json!({"text": "x"})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let mut lost = RawClient::new(&stack.url(), "nowhere", Some(alice.clone()));
    let r = lost.call("echo", json!({"text": "x"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let raw = |body: Vec<u8>| {
        client()
            .post(format!("{}/weather/mcp", stack.url()))
            .bearer_auth(&alice)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
    };
    let r = raw(vec![b' '; 5 * 1024 * 1024]).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = raw(b"{not json".to_vec()).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let mut weather = events(&stack, "weather", 8).await;
    // Let a duplicate, if any, arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    weather = events(&stack, "weather", weather.len() + 1).await;
    weather.sort();
    let row = |a: &str, t: &str, r: &str, s: &str| {
        (a.to_owned(), t.to_owned(), r.to_owned(), s.to_owned())
    };
    let mut expected = vec![
        row("mcp.tool_call", "echo", "allowed", "ok"),
        row("mcp.denied", "echo", "rate_limited", "denied"),
        row("mcp.denied", "write_note", "tool_not_allowed", "denied"),
        row("mcp.denied", "no_such_tool", "tool_not_allowed", "denied"),
        row("mcp.denied", "echo", "no_known_scope", "denied"),
        row("mcp.denied", "", "unauthenticated", "denied"),
        row("mcp.denied", "", "body_too_large", "invalid"),
        row("mcp.denied", "", "malformed", "invalid"),
    ];
    expected.sort();
    assert_eq!(weather, expected);
    let mut gone = events(&stack, "gone", 2).await;
    gone.sort();
    assert_eq!(
        gone,
        [
            row("mcp.denied", "", "unauthenticated", "denied"),
            row("mcp.tool_call", "echo", "allowed", "upstream_error"),
        ]
    );
    let nowhere = events(&stack, "nowhere", 1).await;
    assert_eq!(
        nowhere,
        [row("mcp.denied", "", "unknown_server", "not_found")]
    );
}

#[tokio::test]
async fn every_refusal_of_a_stream_or_a_session_end_is_audited_exactly_once() {
    let stack = Stack::start_with("[limits]\nstreams_per_caller = 1\n").await;
    let up = crate::upstream::start(false).await;
    let endpoint = json!({"transport": "streamable-http", "url": up.url()});
    crate::peers::route(&stack, "weather", endpoint, &["*"]).await;
    let alice = stack.token("alice", &["agents"]);
    let send = |method: reqwest::Method, path: &str, headers: &[(&str, &str)]| {
        let mut request = client()
            .request(method, format!("{}{path}", stack.url()))
            .bearer_auth(&alice)
            .header("accept", "application/json, text/event-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    let get = reqwest::Method::GET;

    // Each refusal of its own server and reason (refusals of one key are coalesced).
    let r = send(reqwest::Method::DELETE, "/weather/mcp", &[])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let modern = [("mcp-protocol-version", "2026-07-28")];
    let r = send(get.clone(), "/weather/mcp", &modern).await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = send(
        reqwest::Method::POST,
        "/weather/message?sessionId=nope",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // One stream per caller: the second legacy SSE stream is refused while the first is open.
    let open = send(get.clone(), "/weather/sse", &[]).await.unwrap();
    assert_eq!(open.status(), StatusCode::OK);
    let r = send(get.clone(), "/weather/sse", &[]).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    drop(open);
    // A caller no scope lets use the server: its GET without a session goes nowhere.
    let r = client()
        .get(format!("{}/weather/mcp", stack.url()))
        .bearer_auth(stack.token("mallory", &["others"]))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = send(get.clone(), "/mcp", &[]).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = send(get.clone(), "/mcp", &[("mcp-session-id", "forged")])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let row = |r: &str, s: &str| {
        (
            "mcp.denied".to_owned(),
            String::new(),
            r.to_owned(),
            s.to_owned(),
        )
    };
    let mut weather = events(&stack, "weather", 5).await;
    let mut mcp = events(&stack, "mcp", 2).await;
    // Let a duplicate, if any, arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    weather = events(&stack, "weather", weather.len() + 1).await;
    mcp = events(&stack, "mcp", mcp.len() + 1).await;
    weather.sort();
    mcp.sort();
    let mut expected = vec![
        row("session_required", "invalid"),
        row("http_method_not_allowed", "invalid"),
        row("session_not_found", "session_not_found"),
        row("too_many_streams", "busy"),
        row("insufficient_scope", "denied"),
    ];
    expected.sort();
    assert_eq!(weather, expected);
    assert_eq!(
        mcp,
        [
            row("session_not_found", "session_not_found"),
            row("session_required", "invalid"),
        ]
    );
}
