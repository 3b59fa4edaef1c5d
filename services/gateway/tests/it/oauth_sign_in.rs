//! A real MCP client signs in with nothing but the URL: the Python SDK's OAuth client provider
//! against the gateway, with the auth-server of `make run`'s embedded mode (its
//! `config/local.toml`: SQLite, local users) as the authorization server, and headless Chromium
//! for the browser step (the auth-server's login page, then the page that allows the client).
//! The client finds everything from the gateway's 401: protected resource metadata,
//! authorization server metadata, dynamic client registration, the code flow with PKCE and
//! `resource`; then it lists and calls tools. `scripts/deps/mcp-peers.sh` installs the SDK,
//! `scripts/deps/browser.sh` Chromium and playwright-core; `scripts/test.sh` exports where.

use std::process::Stdio;

use auth_server::config::AuthConfig;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::helpers::*;
use crate::peers::env;

/// Two ports free now on 127.0.0.1, distinct (both are held until both are known): the
/// auth-server and the gateway must know each other's URL before either starts.
fn free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, b) = (bind(), bind());
    let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port();
    (port(&a), port(&b))
}

/// The repository's `tests/browser` (the sign-in script and its playwright-core).
fn browser_dir() -> String {
    format!("{}/../../tests/browser", env!("CARGO_MANIFEST_DIR"))
}

/// Runs the Python SDK's OAuth client at `url`; its one JSON line.
async fn oauth_client(url: &str, password: &str, args: &[&str]) -> Value {
    let browser = format!(
        "{node} {dir}/oauth_sign_in.mjs admin {password}",
        node = env("MCPGW_TEST_NODE"),
        dir = browser_dir(),
    );
    let out = Command::new(format!("{}/python", env("MCPGW_TEST_PY_PEERS")))
        .arg(format!(
            "{}/py_oauth_client.py",
            env("MCPGW_TEST_PEERS_SRC")
        ))
        .arg(url)
        .args(["--browser", &browser])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("the python OAuth client runs");
    success_of(&out, "py_oauth_client")
}

/// A client's one JSON line, which must not be an error (its stderr is shown if it is).
fn success_of(out: &std::process::Output, client: &str) -> Value {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let reply: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("{client} printed no JSON: {stdout}\n{stderr}"));
    assert!(reply.get("error").is_none(), "{reply}\n{stderr}");
    reply
}

/// The auth-server (embedded mode), the registry and the gateway, knowing each other, with
/// the rmcp test server at `weather` for the bootstrap administrator's group.
struct SignInStack {
    gateway: String,
    password: String,
    dir: tempfile::TempDir,
    _stack: Stack,
    auth: auth_server::app::Running,
    _up: crate::upstream::Upstream,
}

/// The lifetime of the sign-in's access tokens in these tests: short, so the clients refresh.
const ACCESS_TOKEN_SECONDS: u64 = 5;

async fn sign_in_stack() -> SignInStack {
    let (auth_port, gw_port) = free_ports();
    let gateway = format!("http://127.0.0.1:{gw_port}");
    let dir = tempfile::tempdir().unwrap();
    let config = AuthConfig::from_toml_layers(&[
        include_str!("../../../auth-server/config/local.toml"),
        &format!(
            "listen = \"127.0.0.1:{auth_port}\"\nmetrics_listen = \"127.0.0.1:0\"\n\
             data_dir = \"{data}\"\n[local]\nbootstrap_password_file = \"\"\n\
             [local.password_hash]\nmemory_kib = 1024\niterations = 1\n\
             [resource]\nurl = \"{gateway}\"\n\
             [oauth.registration]\ntoken_ttl_seconds = {ACCESS_TOKEN_SECONDS}\n",
            data = dir.path().display(),
        ),
    ])
    .unwrap();
    let auth = auth_server::app::start(config).await.unwrap();
    let password = auth
        .bootstrap_password
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
    let issuer = auth.public_url.clone();
    let stack = Stack::start_with(&format!(
        "listen = \"127.0.0.1:{gw_port}\"\npublic_url = \"{gateway}\"\n\
         [[auth.issuers]]\nissuer = \"{issuer}\"\naudiences = [\"mcp-gateway\"]\n\
         revocations_url = \"{issuer}/api/v1/revocations\"\n"
    ))
    .await;
    let up = crate::upstream::start(false).await;
    stack
        .register(
            "weather",
            json!({"transport": "streamable-http", "url": up.url()}),
            json!({}),
        )
        .await;
    // The bootstrap administrator's group may use the server.
    stack
        .put_scope(scope(
            "admins",
            "mcpgw-admins",
            "weather",
            ALL_METHODS,
            &["echo"],
        ))
        .await;
    wait_routed(&stack.gateway, "weather", true).await;
    wait_scope(&stack, "admins").await;
    SignInStack {
        gateway,
        password,
        dir,
        _stack: stack,
        auth,
        _up: up,
    }
}

#[tokio::test]
async fn the_python_sdk_signs_in_with_only_the_url_on_a_server_route_and_on_mcp() {
    let SignInStack {
        gateway,
        password,
        dir,
        auth,
        ..
    } = &sign_in_stack().await;
    let (gateway, password) = (gateway.as_str(), password.as_str());

    // Two more calls, each after the access token expired: the SDK refreshes (rotating the
    // refresh token) and keeps calling, without the browser.
    let every = (ACCESS_TOKEN_SECONDS + 1).to_string();
    let direct = oauth_client(
        &format!("{gateway}/weather/mcp"),
        password,
        &[
            "--call",
            "echo",
            "--args",
            r#"{"text": "signed in"}"#,
            "--again",
            "2",
            "--every",
            &every,
        ],
    )
    .await;
    assert_eq!(direct["calls"], json!([false, false]), "{direct}");
    assert!(direct["tokens"].as_u64().unwrap() >= 3, "{direct}");
    assert_eq!(direct["refresh_tokens"], direct["tokens"], "{direct}");
    let refreshes = auth
        .state
        .store
        .list_audit(
            &auth_server::store::AuditFilter {
                action: Some("oauth.refresh".into()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert!(refreshes.len() >= 2, "{refreshes:?}");
    assert!(direct.get("error").is_none(), "{direct}");
    assert!(
        direct["client_id"].as_str().unwrap().starts_with("dcr."),
        "{direct}"
    );
    assert_eq!(direct["browser"]["allow_page"], true, "{direct}");
    assert!(
        direct["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "echo"),
        "{direct}"
    );
    assert_eq!(
        direct["call"]["result"]["isError"],
        json!(false),
        "{direct}"
    );
    assert!(
        direct["call"]["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("signed in"),
        "{direct}"
    );

    let aggregated = oauth_client(
        &format!("{gateway}/mcp"),
        password,
        &["--call", "discover_tools", "--args", r#"{"query": "echo"}"#],
    )
    .await;
    assert!(aggregated.get("error").is_none(), "{aggregated}");
    assert_eq!(
        aggregated["tools"],
        json!(["discover_tools", "call_tool"]),
        "{aggregated}"
    );
    assert_eq!(
        aggregated["call"]["result"]["isError"],
        json!(false),
        "{aggregated}"
    );

    // The same client again, after the user allowed it: Chromium signs in on the login page
    // and goes straight on to the client, with no page (the login form's CSP must allow the
    // client's redirect origin, which is on a new port each run).
    let state = dir.path().join("client.json");
    let state = state.to_str().unwrap();
    let url = format!("{gateway}/weather/mcp");
    let first = oauth_client(&url, password, &["--state", state]).await;
    assert_eq!(first["browser"]["allow_page"], true, "{first}");
    let again = oauth_client(&url, password, &["--state", state]).await;
    assert_eq!(again["client_id"], first["client_id"], "{again}");
    assert_eq!(again["browser"]["allow_page"], false, "{again}");
    assert!(
        again["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "echo"),
        "{again}"
    );
}

/// Runs the TypeScript SDK's OAuth client at `url` (signing in as the administrator); its
/// one JSON line.
async fn ts_oauth_client(url: &str, password: &str, tool: &[&str]) -> Value {
    let out = Command::new(env("MCPGW_TEST_NODE"))
        .arg(format!(
            "{}/ts_oauth_client.mjs",
            env("MCPGW_TEST_PEERS_SRC")
        ))
        .args([url, "admin", password])
        .args(tool)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("the TypeScript OAuth client runs");
    success_of(&out, "ts_oauth_client")
}

#[tokio::test]
async fn the_typescript_sdk_signs_in_with_only_the_url_on_a_server_route() {
    let s = sign_in_stack().await;
    let reply = ts_oauth_client(
        &format!("{}/weather/mcp", s.gateway),
        &s.password,
        &["echo", r#"{"text": "typescript"}"#],
    )
    .await;
    assert!(
        reply["client_id"].as_str().unwrap().starts_with("dcr."),
        "{reply}"
    );
    assert_eq!(reply["browser"]["allow_page"], true, "{reply}");
    assert!(
        reply["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "echo"),
        "{reply}"
    );
    assert!(
        reply["call"]["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("typescript"),
        "{reply}"
    );
}
