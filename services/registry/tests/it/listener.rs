//! The listener's limits (`mcpgw_core::listener`) on the real registry binary: half-open
//! clients cannot starve the process of descriptors, an unfinished request head is closed, and
//! an early answer tells a pooled client the connection is closing.

use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, Process};

fn port_of(env: &[(String, String)], key: &str) -> String {
    env.iter().find(|(k, _)| k == key).unwrap().1.clone()
}

/// Starts the registry binary with its descriptor limit at `nofile` (`ulimit -n` in the shell
/// that execs it), the demo MCP server on, and `extra` settings.
fn start_limited(
    dir: &std::path::Path,
    nofile: u32,
    extra: &[(&str, &str)],
) -> (tokio::process::Child, String, String) {
    let mut env = Process::env_for(Backend::Sqlite, dir);
    let demo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let demo_addr = demo.local_addr().unwrap().to_string();
    drop(demo);
    env.push(("MCPGW_REGISTRY_DEMO__ENABLED".into(), "true".into()));
    env.push(("MCPGW_REGISTRY_DEMO__LISTEN".into(), demo_addr.clone()));
    for (k, v) in extra {
        env.push(((*k).to_owned(), (*v).to_owned()));
    }
    let listen = port_of(&env, "MCPGW_REGISTRY_LISTEN");
    let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\""))
        .arg(env!("CARGO_BIN_EXE_registry"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true);
    (
        cmd.spawn().expect("sh starts"),
        format!("http://{listen}"),
        format!("http://{demo_addr}/mcp"),
    )
}

async fn wait_healthy(client: &reqwest::Client, base: &str, dir: &std::path::Path) {
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the registry did not become ready: {}",
        std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
    );
}

#[tokio::test]
async fn three_hundred_half_open_connections_do_not_stop_health_or_a_tool_call_at_256_descriptors()
{
    let dir = tempfile::tempdir().unwrap();
    let (_child, base, demo) = start_limited(dir.path(), 256, &[]);
    let client = reqwest::Client::new();
    wait_healthy(&client, &base, dir.path()).await;
    let addr = base.trim_start_matches("http://").to_owned();
    let demo_addr = demo
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned();

    // Half-open: connected, half a request head, then silence. Spread over both listeners.
    let mut idle = Vec::new();
    for i in 0..300 {
        let target = if i % 2 == 0 { &addr } else { &demo_addr };
        let mut s = TcpStream::connect(target).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        idle.push(s);
    }

    let started = Instant::now();
    let fresh = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let health = fresh.get(format!("{base}/health")).send().await;
    assert!(
        matches!(&health, Ok(r) if r.status().is_success()),
        "/health after 300 half-open connections: {health:?}"
    );
    let mcp = tokio::time::timeout(Duration::from_secs(15), async {
        let client = ().serve(StreamableHttpClientTransport::from_uri(demo.clone())).await?;
        let args = serde_json::json!({"text": "still here"});
        let result = client
            .call_tool(
                CallToolRequestParams::new("echo")
                    .with_arguments(args.as_object().unwrap().clone()),
            )
            .await?;
        let _ = client.cancel().await;
        anyhow::Ok(result)
    })
    .await;
    let result = mcp
        .expect("the tool call finished in 15 s")
        .expect("tool call");
    assert!(
        serde_json::to_string(&result)
            .unwrap()
            .contains("still here"),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    drop(idle);
}

#[tokio::test]
async fn a_request_head_that_never_finishes_is_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, base, _demo) = start_limited(
        dir.path(),
        1024,
        &[("MCPGW_REGISTRY_LISTENER__HEADER_READ_TIMEOUT_SECONDS", "1")],
    );
    let client = reqwest::Client::new();
    wait_healthy(&client, &base, dir.path()).await;
    let mut s = TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection is still open after 10 s");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
}

/// Reads one response (head and a `Content-Length` body) from `s`; the head in lower case.
async fn read_response(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).await.ok()?;
    Some(head)
}

/// What a pooled client relies on: an answer given before the body was read either says
/// `Connection: close` or leaves the connection able to serve the next request. (reqwest
/// hides the failure by retrying on a fresh connection; many clients do not.)
#[tokio::test]
async fn an_answer_before_the_body_was_read_says_connection_close() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, base, _demo) = start_limited(dir.path(), 1024, &[]);
    wait_healthy(&reqwest::Client::new(), &base, dir.path()).await;
    let addr = base.trim_start_matches("http://");
    // Over the 1 MiB body limit (413) and without credentials (401): both refuse unread.
    let body = vec![b' '; 1024 * 1024 + 1];
    for round in 0..5 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /api/v1/servers HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        // The server may close while the body is still going out: then the client sees it.
        let _ = s.write_all(&body).await;
        let answer = read_response(&mut s).await.expect("an answer");
        assert!(
            answer.starts_with("http/1.1 401") || answer.starts_with("http/1.1 413"),
            "round {round}: {answer}"
        );
        if answer.contains("connection: close") {
            continue;
        }
        let next = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        let served =
            s.write_all(next.as_bytes()).await.is_ok() && read_response(&mut s).await.is_some();
        assert!(
            served,
            "round {round}: the refusal kept the connection open ({answer}) but it did not \
             serve the next request"
        );
    }
}
