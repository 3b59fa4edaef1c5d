//! Health checks, tool discovery and the event stream against real MCP servers: the
//! registry's own rmcp demo server (in-process, Streamable HTTP), the reference
//! server-everything (Streamable HTTP and legacy SSE, from `scripts/deps/mcp-peers.sh`), the
//! Python SDK server, a dead port, and two small axum servers that stand in for a server
//! behind a refusing proxy (401) and a hung server (nothing real answers exactly that way on
//! demand).

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use mcpgw_core::domain::ServerPath;
use registry::health::scheduler::check_all;

use crate::helpers::*;

use mcpgw_test_support::peer_env as env;

/// server-everything in `mode` (`streamableHttp` or `sse`), killed on drop.
async fn everything(mode: &str) -> (Child, String) {
    mcpgw_test_support::server_everything(mode).await
}

/// The Python SDK server (`services/gateway/tests/peers/py_server.py`) over Streamable HTTP,
/// killed on drop.
async fn py_server() -> (Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = Command::new(format!("{}/python", env("MCPGW_TEST_PY_PEERS")))
        .arg(format!("{}/py_server.py", env("MCPGW_TEST_PEERS_SRC")))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the python peer starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("py_server prints READY within 30 s")
        .unwrap()
        .unwrap();
    let url = line.strip_prefix("READY ").expect("a READY line").trim();
    (child, url.to_owned())
}

/// An HTTP server whose every answer is `status` after `delay`.
async fn fixed(status: u16, delay: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || async move {
        tokio::time::sleep(delay).await;
        axum::http::StatusCode::from_u16(status).unwrap()
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/mcp")
}

fn body(path: &str, transport: &str, url: &str) -> Value {
    let mut b = server_body(path);
    b["endpoint"] = json!({"transport": transport, "url": url});
    b
}

async fn check(app: &TestApp, path: &str) -> Value {
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/servers/{path}/health"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["health"].clone()
}

/// Scheduled checks off, so the test decides when checks run.
const MANUAL_ONLY: &str = "[health]\nenabled = false\ndamping = 2\ntimeout_ms = 1500\nconnect_timeout_ms = 500\ndegraded_ms = 1000\n[demo]\nenabled = true\nlisten = \"127.0.0.1:0\"\n";

#[tokio::test]
async fn manual_checks_classify_real_servers_without_bumping_the_revision() {
    let app = spawn_with(Backend::Sqlite, MANUAL_ONLY).await;
    let (_http, http_url) = everything("streamableHttp").await;
    let (_sse, sse_url) = everything("sse").await;
    app.register(body("ev-http", "streamable-http", &http_url))
        .await;
    app.register(body("ev-sse", "sse", &sse_url)).await;
    let (_py, py_url) = py_server().await;
    app.register(body("py", "streamable-http", &py_url)).await;
    app.register(body("dead", "streamable-http", "http://127.0.0.1:9/mcp"))
        .await;
    app.register(body(
        "locked",
        "streamable-http",
        &fixed(401, Duration::ZERO).await,
    ))
    .await;
    app.register(body(
        "hung",
        "streamable-http",
        &fixed(200, Duration::from_secs(30)).await,
    ))
    .await;

    // The rmcp demo speaks 2026-07-28 (server/discover, no ping); server-everything is
    // session-era (its 404 to server/discover falls back to initialize + ping).
    let demo = check(&app, "demo").await;
    assert_eq!(demo["status"], "healthy", "{demo}");
    assert_eq!(demo["history"][0]["protocol"], "2026-07-28", "{demo}");
    let h = check(&app, "ev-http").await;
    assert_eq!(h["status"], "healthy", "{h}");
    assert!(
        h["history"][0]["protocol"]
            .as_str()
            .is_some_and(|p| p.starts_with("2025-")),
        "{h}"
    );
    let s = check(&app, "ev-sse").await;
    assert_eq!(s["status"], "healthy", "{s}");
    let p = check(&app, "py").await;
    assert_eq!(p["status"], "healthy", "{p}");
    let d = check(&app, "dead").await;
    assert_eq!(
        (d["status"].as_str(), d["reason"].as_str()),
        (Some("unhealthy"), Some("connection_refused")),
        "{d}"
    );
    let l = check(&app, "locked").await;
    assert_eq!(l["status"], "auth_failed", "{l}");
    assert!(l["reason"].as_str().unwrap().contains("401"), "{l}");
    let started = Instant::now();
    let t = check(&app, "hung").await;
    assert_eq!(
        (t["status"].as_str(), t["reason"].as_str()),
        (Some("unhealthy"), Some("timeout")),
        "{t}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the whole check is bounded"
    );

    // History, and the revision did not move (an owner's If-Match edit still works).
    let got = app.get("/api/v1/servers/dead/health").await;
    assert_eq!(got.body["health"]["history"].as_array().unwrap().len(), 1);
    assert_eq!(got.body["health"]["history"][0]["trigger"], "manual");
    let server = app.get("/api/v1/servers/dead").await;
    assert_eq!(server.body["revision"], 1);
    assert_eq!(server.body["health"]["status"], "unhealthy");
    assert!(
        server.body["health"].get("history").is_none(),
        "listings carry no history"
    );
    check(&app, "dead").await;
    let got = app.get("/api/v1/servers/dead/health").await;
    assert_eq!(got.body["health"]["history"].as_array().unwrap().len(), 2);
    app.running.stop().await;
}

#[tokio::test]
async fn tools_refresh_lists_through_the_set_tools_path() {
    let app = spawn_with(Backend::Sqlite, MANUAL_ONLY).await;
    let (_sse, sse_url) = everything("sse").await;
    app.register(body("ev-sse", "sse", &sse_url)).await;
    let r = app
        .call(Method::POST, "/api/v1/servers/ev-sse/tools/refresh", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let names: Vec<&str> = r.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"echo"), "{names:?}");
    assert_eq!(r.body["revision"], 2);
    let audit = app
        .get("/api/v1/audit?resource_id=ev-sse&action=server.tools")
        .await;
    assert_eq!(
        audit.body["items"][0]["details"]["source"], "discovery",
        "{:?}",
        audit.body
    );
    // A dead server: 502 naming why, nothing stored.
    app.register(body("dead", "streamable-http", "http://127.0.0.1:9/mcp"))
        .await;
    let r = app
        .call(Method::POST, "/api/v1/servers/dead/tools/refresh", None)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_GATEWAY, "upstream_error"),
        "{:?}",
        r.body
    );
    assert_eq!(app.get("/api/v1/servers/dead").await.body["revision"], 1);
    app.running.stop().await;
}

/// Reads SSE frames from `stream` until one contains every string of `wanted`; returns all
/// text read. Waits on the stream itself (bounded), never on sleeps.
pub(crate) async fn read_until(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    seen: &mut String,
    wanted: &[&str],
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if seen
            .split("\n\n")
            .any(|frame| wanted.iter().all(|w| frame.contains(w)))
        {
            return;
        }
        let chunk = tokio::time::timeout_at(deadline, futures::StreamExt::next(stream))
            .await
            .unwrap_or_else(|_| panic!("no frame with {wanted:?} in time; saw:\n{seen}"))
            .expect("the stream stays open")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn the_scheduler_checks_new_servers_discovers_tools_and_streams_events() {
    let config = "[health]\ninterval_seconds = 5\ndamping = 2\n";
    let (_http, http_url) = everything("streamableHttp").await;
    for backend in [Backend::Sqlite, Backend::Mongo] {
        let app = spawn_with(backend, config).await;
        let events = app
            .client
            .get(format!("{}/api/v1/events", app.base))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        assert_eq!(events.status(), StatusCode::OK);
        let mut stream = events.bytes_stream();
        let mut seen = String::new();
        app.register(body("ev", "streamable-http", &http_url)).await;
        // Registration (revision 1) → the scheduler's first check (applies at once) →
        // healthy → discovery records the tools (revision 2).
        read_until(
            &mut stream,
            &mut seen,
            &["event: changed", r#""path":"ev""#, r#""revision":1"#],
        )
        .await;
        read_until(
            &mut stream,
            &mut seen,
            &["event: health", r#""path":"ev""#, r#""status":"healthy""#],
        )
        .await;
        read_until(
            &mut stream,
            &mut seen,
            &["event: changed", r#""path":"ev""#, r#""revision":2"#],
        )
        .await;
        let s = app.get("/api/v1/servers/ev").await.body;
        assert_eq!(s["health"]["status"], "healthy", "{backend:?}: {s}");
        assert!(s["tool_count"].as_u64() > Some(0), "{backend:?}: {s}");
        let audit = app
            .get("/api/v1/audit?resource_id=ev&action=server.tools")
            .await;
        assert_eq!(audit.body["items"][0]["details"]["source"], "discovery");
        assert_eq!(
            audit.body["items"][0]["actor"], "system:tool-discovery",
            "{:?}",
            audit.body
        );
        // The stream ends at shutdown instead of holding the drain open.
        tokio::time::timeout(Duration::from_secs(10), app.running.stop())
            .await
            .expect("the registry stops with an event stream open");
    }
}

/// Damping end to end: scheduled checks against a real server that goes away change the
/// stored status only after `damping` agreeing results, without a revision bump, and announce
/// the change once.
#[tokio::test]
async fn scheduled_results_are_damped_against_a_server_that_goes_away() {
    let app = spawn_with(Backend::Sqlite, MANUAL_ONLY).await;
    let (mut server, url) = everything("streamableHttp").await;
    app.register(body("flaky", "streamable-http", &url)).await;
    let state = &app.running.state;
    let path = ServerPath::parse("flaky").unwrap();
    let scheduled = async || {
        let record = state
            .registry
            .store
            .get_server(&path)
            .await
            .unwrap()
            .unwrap();
        check_all(&state.registry, &state.health, vec![record], "scheduled")
            .await
            .unwrap();
        app.get("/api/v1/servers/flaky/health").await.body["health"].clone()
    };
    let h = scheduled().await;
    assert_eq!(
        h["status"], "healthy",
        "the first result applies at once: {h}"
    );
    // Becoming healthy starts tool discovery in the background, which records the tools (a
    // revision and a change event of its own): wait for it, so that neither races what this
    // test looks at.
    let mut recorded = Value::Null;
    for _ in 0..100 {
        recorded = app.get("/api/v1/servers/flaky").await.body;
        if recorded["tool_count"].as_u64() > Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recorded["tool_count"].as_u64() > Some(0), "{recorded}");
    let revision = recorded["revision"].clone();
    let mut events = state.registry.events.subscribe();
    server.kill().await.unwrap();
    let h = scheduled().await;
    assert_eq!(
        (h["status"].as_str(), h["history"][0]["reason"].as_str()),
        (Some("healthy"), Some("connection_refused")),
        "one failure is not enough (damping = 2): {h}"
    );
    assert!(events.try_recv().is_err(), "no change announced yet");
    let h = scheduled().await;
    assert_eq!(h["status"], "unhealthy", "{h}");
    assert_eq!(h["history"].as_array().unwrap().len(), 3);
    let event = events.try_recv().expect("the change is announced");
    assert_eq!(event.name(), "health");
    assert_eq!(
        app.get("/api/v1/servers/flaky").await.body["revision"],
        revision,
        "health results do not bump the revision"
    );
    app.running.stop().await;
}

#[tokio::test]
async fn health_endpoints_check_permissions_and_input() {
    let app = spawn_with(Backend::Sqlite, MANUAL_ONLY).await;
    let r = app
        .call_as(None, Method::POST, "/api/v1/servers/demo/health", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .call(Method::POST, "/api/v1/servers/nope/health", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Reading health needs read access; making the registry call the server needs update.
    let reader = app.key_with(&["servers:read"]).await;
    let r = app
        .call_as(
            Some(&reader),
            Method::GET,
            "/api/v1/servers/demo/health",
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    for path in [
        "/api/v1/servers/demo/health",
        "/api/v1/servers/demo/tools/refresh",
    ] {
        let r = app
            .call_as(Some(&reader), Method::POST, path, None, &[])
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{path}"
        );
    }
    let health = app.get("/api/v1/servers/demo/health").await.body["health"].clone();
    assert!(
        health["checked_at"].is_null() && health["history"].is_null(),
        "a refused check ran nothing: {health}"
    );
    let mut b = server_body("bad-interval");
    b["governance"]["health_check_interval_seconds"] = json!(1);
    let r = app.post("/api/v1/servers", b).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.field(), "governance.health_check_interval_seconds");
    app.running.stop().await;
}

/// The session-era notification streams against server-everything, which declares
/// `tools.listChanged` (it has no tool that changes its tool list, so the rediscovery itself is
/// covered by `list_changed.rs`): the watcher holds the session's `GET` stream (Streamable
/// HTTP) and the legacy SSE stream open.
#[tokio::test]
async fn server_everything_is_watched_for_tool_changes_over_get_and_legacy_sse() {
    use registry::health::list_changed::WatchState;
    let (_http, http_url) = everything("streamableHttp").await;
    let (_sse, sse_url) = everything("sse").await;
    let app = spawn_with(Backend::Sqlite, "[health]\ninterval_seconds = 5\n").await;
    app.register(body("ev-http", "streamable-http", &http_url))
        .await;
    app.register(body("ev-sse", "sse", &sse_url)).await;
    let watchers = &app.running.state.health.watchers;
    let deadline = Instant::now() + Duration::from_secs(20);
    for path in ["ev-http", "ev-sse"] {
        let path = ServerPath::parse(path).unwrap();
        while watchers.state(&path) != Some(WatchState::Listening) {
            assert!(
                Instant::now() < deadline,
                "{path}: {:?}",
                watchers.state(&path)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Still open a moment later (not a stream that ends at once and reconnects).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for path in ["ev-http", "ev-sse"] {
        let path = ServerPath::parse(path).unwrap();
        assert_eq!(watchers.state(&path), Some(WatchState::Listening), "{path}");
    }
    app.running.stop().await;
}
