//! `mcpgw-connect config`: the snippet each client's documented format takes, running this
//! binary with the URL and the options given.

use serde_json::Value;

use crate::stack::{connect, connect_bin};

#[tokio::test]
async fn config_prints_a_snippet_that_runs_this_binary_with_the_url_and_options() {
    let url = "https://gw.example.com/weather/mcp";
    let out = connect(&["config", url, "--allow-write", "--client", "vscode"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snippet: Value = serde_json::from_slice(&out.stdout).unwrap();
    let server = &snippet["servers"]["weather"];
    assert_eq!(server["type"], "stdio");
    assert_eq!(server["command"], connect_bin());
    assert_eq!(server["args"], serde_json::json!([url, "--allow-write"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains(".vscode/mcp.json"));

    let out = connect(&[
        "config",
        "http://127.0.0.1:8080/mcp",
        "--client",
        "claude-code",
    ])
    .await;
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.starts_with("claude mcp add mcpgw -- ")
            && line.trim_end().ends_with(" http://127.0.0.1:8080/mcp"),
        "{line}"
    );
}
