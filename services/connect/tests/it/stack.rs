//! The stack under test and how the tests run `mcpgw-connect` and the Python SDK client.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use auth_server::config::AuthConfig;
use mcpgw_test_support::peer_env as env;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::process::Command;

/// The auth-server, the registry and the gateway, knowing each other, with the rmcp test
/// server at `weather`, usable by the bootstrap administrator's group.
pub struct Stack {
    /// `http://127.0.0.1:<port>` of the gateway.
    pub gateway: String,
    /// The bootstrap administrator's password (user `admin`).
    pub password: String,
    pub dir: tempfile::TempDir,
    admin: Admin,
    gw: gateway::app::Running,
    _registry: registry::app::Running,
    _auth: auth_server::app::Running,
    /// The rmcp server behind `weather` (its counters say what reached it).
    pub up: crate::upstream::Upstream,
}

/// Two ports free now on 127.0.0.1, distinct: the auth-server and the gateway must know each
/// other's URL before either starts.
fn free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, b) = (bind(), bind());
    let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port();
    (port(&a), port(&b))
}

impl Stack {
    /// Starts everything; `auth_toml` is added to the auth-server's configuration.
    pub async fn start(auth_toml: &str) -> Stack {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let (auth_port, gw_port) = free_ports();
        let gateway = format!("http://127.0.0.1:{gw_port}");
        let dir = tempfile::tempdir().unwrap();
        let config = AuthConfig::from_toml_layers(&[
            include_str!("../../../auth-server/config/local.toml"),
            &format!(
                "listen = \"127.0.0.1:{auth_port}\"\nmetrics_listen = \"127.0.0.1:0\"\n\
                 data_dir = \"{data}\"\n[local]\nbootstrap_password_file = \"\"\n\
                 [local.password_hash]\nmemory_kib = 1024\niterations = 1\n\
                 [resource]\nurl = \"{gateway}\"\n",
                data = dir.path().join("auth").display(),
            ),
            auth_toml,
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

        let key = || {
            mcpgw_core::secrets::Keyring::generate_base64()
                .expose_secret()
                .to_owned()
        };
        let (sealing, session) = (key(), key());
        let registry = registry::app::start(
            registry::config::RegistryConfig::from_toml_layers(&[&format!(
                "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\
                 [egress]\nallow_loopback = true\n[secrets.sealing_key]\nvalue = \"{sealing}\"\n\
                 [store]\ncatalog_cache_ms = 100\n[health]\ndiscover_tools = false\n\
                 [mcp]\nregister = false\n",
                dir.path().join("registry").display()
            )])
            .unwrap(),
        )
        .await
        .unwrap();
        let registry_url = format!("http://{}", registry.addr);
        let admin = Admin {
            http: reqwest::Client::new(),
            url: registry_url.clone(),
            key: registry.bootstrap_key.clone().unwrap(),
        };
        let created = admin
            .call(
                reqwest::Method::POST,
                "/api/v1/api-keys",
                json!({"name": "gateway", "permissions": ["gateway:sync"]}),
            )
            .await;
        let gateway_key = created["key"].as_str().expect("key created").to_owned();
        let gateway_config = gateway::config::GatewayConfig::from_toml_layers(&[&format!(
            "listen = \"127.0.0.1:{gw_port}\"\nmetrics_listen = \"127.0.0.1:0\"\n\
             public_url = \"{gateway}\"\ndata_dir = \"{data}\"\ninstance_id = \"gw\"\n\
             allowed_hosts = [\"127.0.0.1\"]\n\
             [registry]\nurl = \"{registry_url}\"\n[registry.api_key]\nvalue = \"{gateway_key}\"\n\
             [sync]\npoll_wait_seconds = 5\nretry_seconds = 1\n\
             [secrets.sealing_key]\nvalue = \"{sealing}\"\n[secrets.session_key]\nvalue = \"{session}\"\n\
             [egress]\nallow_loopback = true\n[audit]\nflush_ms = 100\n\
             [[auth.issuers]]\nissuer = \"{issuer}\"\naudiences = [\"mcp-gateway\"]\n\
             revocations_url = \"{issuer}/api/v1/revocations\"\n",
            data = dir.path().join("gateway").display(),
        )])
        .unwrap();
        let gw = gateway::app::start(gateway_config).await.unwrap();

        let up = crate::upstream::start(false).await;
        admin
            .call(
                reqwest::Method::POST,
                "/api/v1/servers",
                json!({"path": "weather", "name": "Weather",
                    "endpoint": {"transport": "streamable-http", "url": up.url()},
                    "governance": {"owner_team": "platform"}}),
            )
            .await;
        for to in ["submitted", "security_review", "approved_dev"] {
            admin
                .call(
                    reqwest::Method::POST,
                    "/api/v1/servers/weather/lifecycle",
                    json!({"to": to, "reason": "test"}),
                )
                .await;
        }
        admin
            .call(
                reqwest::Method::PUT,
                "/api/v1/scopes/admins",
                json!({"name": "admins", "group_mappings": ["mcpgw-admins"],
                    "server_access": [{"server": "weather", "methods": ["*"], "tools": ["*"]}]}),
            )
            .await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(gw.state.table.current().get("weather").is_some()
            && gw
                .state
                .table
                .current()
                .documents
                .iter()
                .any(|d| d.name() == "admins"))
        {
            assert!(
                Instant::now() < deadline,
                "the gateway never routed weather"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Stack {
            gateway,
            password,
            dir,
            admin,
            gw,
            _registry: registry,
            _auth: auth,
            up,
        }
    }

    /// Records the upstream's tools in the registry (as its `tools/list` gives them) and
    /// approves them, as the aggregated endpoint's catalog needs; waits until the gateway has
    /// them.
    pub async fn record_tools(&self) {
        use rmcp::ServiceExt;
        let transport =
            rmcp::transport::StreamableHttpClientTransport::from_uri(self.up.url().as_str());
        let client = ().serve(transport).await.expect("the test server answers");
        let tools = client.list_all_tools().await.unwrap();
        let _ = client.cancel().await;
        let recorded = self
            .admin
            .call(
                reqwest::Method::PUT,
                "/api/v1/servers/weather/tools",
                json!({ "tools": tools }),
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
        self.admin
            .call(
                reqwest::Method::POST,
                "/api/v1/servers/weather/tools/approve",
                json!({"tools": hashes, "reason": "reviewed"}),
            )
            .await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let routes = self.gw.state.table.current();
            if let Some(route) = routes.get("weather")
                && route.entry.tools.len() == tools.len()
                && route.entry.tools.iter().all(|t| t.approved_hash.is_some())
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway never got the approved tools"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A fresh token directory for one client.
    pub fn state_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The browser command: headless Chromium signs in as `admin` and allows the client.
    pub fn browser(&self) -> String {
        format!(
            "{node} {dir}/../../tests/browser/oauth_sign_in.mjs admin {password}",
            node = env("MCPGW_TEST_NODE"),
            dir = env!("CARGO_MANIFEST_DIR"),
            password = self.password,
        )
    }
}

/// The registry's API as the bootstrap administrator.
struct Admin {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Admin {
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let reply: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {reply}");
        reply
    }
}

/// The built binary.
pub fn connect_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcpgw-connect")
}

/// Runs `mcpgw-connect args…` to its end.
pub async fn connect(args: &[&str]) -> Output {
    Command::new(connect_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("mcpgw-connect runs")
}

/// The Python SDK's stdio client (the gateway tests' `py_client.py --transport stdio`)
/// running `mcpgw-connect bridge_args…`; its one JSON line (an `error` member when it failed).
pub async fn stdio_client(bridge_args: &[&str], client_args: &[&str]) -> Value {
    let command: Vec<String> = std::iter::once(connect_bin())
        .chain(bridge_args.iter().copied())
        .map(|w| format!("'{w}'"))
        .collect();
    let out = Command::new(format!("{}/python", env("MCPGW_TEST_PY_PEERS")))
        .arg(format!("{}/py_client.py", env("MCPGW_TEST_PEERS_SRC")))
        .arg(command.join(" "))
        .args(["--transport", "stdio"])
        .args(client_args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("the python stdio client runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let mut reply: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("py_client printed no JSON: {stdout}\n{stderr}"));
    reply["stderr"] = Value::String(stderr.into_owned());
    reply
}

/// The one token file under `dir`, parsed.
pub fn token_file(dir: &Path) -> (PathBuf, Value) {
    let files: Vec<PathBuf> = std::fs::read_dir(dir.join("tokens"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    (files[0].clone(), serde_json::from_str(&text).unwrap())
}
