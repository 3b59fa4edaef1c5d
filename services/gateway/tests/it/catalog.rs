//! A hosted catalog of real stdio servers, as a new user registers it: `mcp-server-time`
//! (PyPI), `@modelcontextprotocol/server-memory` and `server-filesystem` (npm), installed by
//! `scripts/deps/mcp-peers.sh` and `scripts/deps/stdio-catalog.sh`. Each is registered,
//! discovered by the gateway that runs it (no `PUT` of tools), approved by a reviewer, and
//! called through `/{server}/mcp` and through `/mcp` (`discover_tools` then `call_tool`) with a
//! real token.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::peers::{approve_discovered, env, route};
use crate::stdio_tools::discovered;

/// One hosted server: how it is started, and one call that shows it works.
struct Hosted {
    path: &'static str,
    endpoint: Value,
    tool: &'static str,
    arguments: Value,
    /// A part of the call's text result.
    answers: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_real_stdio_servers_are_discovered_approved_and_called_through_both_endpoints() {
    let node = env("MCPGW_TEST_NODE");
    let node_dir = std::path::Path::new(&node).parent().unwrap().to_owned();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("hello.txt"), "hello from the catalog").unwrap();
    // server-memory's graph, one JSON object a line, as it writes it itself.
    std::fs::write(
        files.path().join("memory.jsonl"),
        json!({"type": "entity", "name": "mcpgw", "entityType": "project",
               "observations": ["hosts stdio servers"]})
        .to_string()
            + "\n",
    )
    .unwrap();
    // The Node that runs the npm servers is allowed beside the Python peers.
    let stack = Stack::start_with(&format!(
        "[stdio]\nallowed_dirs = [{py:?}, {node:?}]\n",
        py = env("MCPGW_TEST_PY_PEERS"),
        node = node_dir.display().to_string(),
    ))
    .await;
    let catalog = [
        Hosted {
            path: "time",
            endpoint: json!({"transport": "stdio",
                "command": format!("{}/mcp-server-time", env("MCPGW_TEST_PY_PEERS")),
                "args": ["--local-timezone", "UTC"]}),
            tool: "get_current_time",
            arguments: json!({"timezone": "UTC"}),
            answers: "UTC".to_owned(),
        },
        Hosted {
            path: "memory",
            endpoint: json!({"transport": "stdio", "command": node,
                "args": [env("MCPGW_TEST_STDIO_MEMORY")],
                "env": {"MEMORY_FILE_PATH": files.path().join("memory.jsonl").display().to_string()}}),
            tool: "search_nodes",
            arguments: json!({"query": "mcpgw"}),
            answers: "hosts stdio servers".to_owned(),
        },
        Hosted {
            path: "files",
            endpoint: json!({"transport": "stdio", "command": node,
                "args": [env("MCPGW_TEST_STDIO_FILESYSTEM"), files.path().display().to_string()]}),
            tool: "read_text_file",
            arguments: json!({"path": files.path().join("hello.txt").display().to_string()}),
            answers: "hello from the catalog".to_owned(),
        },
    ];
    for hosted in &catalog {
        route(&stack, hosted.path, hosted.endpoint.clone(), &["*"]).await;
    }
    // No `PUT` of tools anywhere: the gateway reports them, a reviewer approves them.
    for hosted in &catalog {
        approve_discovered(&stack, hosted.path).await;
    }
    let token = stack.token("alice", &["agents"]);
    for hosted in &catalog {
        let mut c = RawClient::new(&stack.url(), hosted.path, Some(token.clone()));
        assert_eq!(
            c.initialize().await.status,
            StatusCode::OK,
            "{}",
            hosted.path
        );
        let listed = c.request("tools/list", json!({})).await;
        assert!(
            listed.last()["result"]["tools"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["name"] == hosted.tool)),
            "{}: {}",
            hosted.path,
            listed.text
        );
        let called = c.call(hosted.tool, hosted.arguments.clone()).await;
        assert!(
            called.text.contains(&hosted.answers),
            "{} through /{}/mcp: {}",
            hosted.tool,
            hosted.path,
            called.text
        );
    }
    let mut a = RawClient::new(&stack.url(), "unused", Some(token));
    a.url = format!("{}/mcp", stack.url());
    assert_eq!(a.initialize().await.status, StatusCode::OK);
    for hosted in &catalog {
        let name = format!("{}__{}", hosted.path, hosted.tool);
        let found = a
            .call(
                "discover_tools",
                json!({"query": hosted.tool.replace('_', " "), "limit": 10}),
            )
            .await;
        assert!(discovered(&found).contains(&name), "{name}: {}", found.text);
        let called = a
            .call(
                "call_tool",
                json!({"name": name, "arguments": hosted.arguments.clone()}),
            )
            .await;
        assert!(
            called.text.contains(&hosted.answers),
            "{name} through /mcp: {}",
            called.text
        );
    }
}
