//! The real MCP peers that `scripts/deps/mcp-peers.sh` installs and exports (the reference
//! server-everything, Node), started per test on a free loopback port.

/// An environment variable the MCP peers setup exports; panics with what to run when missing.
pub fn peer_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the suite with `make test`, or `eval \"$(scripts/deps/mcp-peers.sh env)\"` after `scripts/deps/mcp-peers.sh install`"
        )
    })
}

/// The reference MCP server-everything (from `scripts/deps/mcp-peers.sh`) in `mode`
/// (`streamableHttp` or `sse`) on a free loopback port, once it listens. Returns the process
/// (killed when dropped) and its MCP URL (`/mcp`, or `/sse` for the legacy transport).
pub async fn server_everything(mode: &str) -> (tokio::process::Child, String) {
    use std::time::{Duration, Instant};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let child = tokio::process::Command::new(peer_env("MCPGW_TEST_NODE"))
        .args([
            "--require",
            &peer_env("MCPGW_TEST_NODE_LOOPBACK"),
            &peer_env("MCPGW_TEST_SERVER_EVERYTHING"),
            mode,
        ])
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("server-everything starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "server-everything did not listen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let path = if mode == "sse" { "sse" } else { "mcp" };
    (child, format!("http://127.0.0.1:{port}/{path}"))
}
