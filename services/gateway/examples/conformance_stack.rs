//! A registry, a token issuer and a gateway in one process, fronting one upstream MCP server,
//! for `scripts/conformance.sh` (the official conformance suite through the gateway).
//!
//! ```text
//! cargo run -p gateway --example conformance_stack -- --upstream http://127.0.0.1:PORT/mcp
//! ```
//!
//! It starts the registry (SQLite in a temporary directory), a loopback OIDC issuer and one
//! gateway, all on 127.0.0.1 with kernel-chosen ports, the way `tests/it/helpers.rs` does;
//! registers the upstream as server `--path` (default `conformance`, Streamable HTTP), has the
//! registry discover its tools, approves it (and with it those tools), grants group `conformance` every method and every tool on it (`"methods": "*",
//! "tools": "*"`), waits until the gateway routes it, and prints one line on stdout:
//!
//! ```text
//! READY <gateway>/<path>/mcp <bearer token for group conformance, valid 1 h>
//! ```
//!
//! Then it serves until SIGTERM or SIGINT and stops cleanly. Its logs (text, filter
//! `$MCPGW_CONFORMANCE_LOG`, default `warn`) go to stdout too: read the line that starts with
//! `READY `. The gateway listens on a port chosen before it starts, so that its `public_url` is
//! the URL the suite is given (the gateway accepts browser `Origin`s of its public URL only).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mcpgw_core::telemetry::{LogConfig, LogFormat};
use mcpgw_test_support::TestIssuer;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const AUDIENCE: &str = "mcpgw-gateway";
const GROUP: &str = "conformance";

struct Args {
    upstream: String,
    path: String,
    transport: String,
}

fn args() -> anyhow::Result<Args> {
    let mut out = Args {
        upstream: String::new(),
        path: "conformance".into(),
        transport: "streamable-http".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--upstream" => out.upstream = value,
            "--path" => out.path = value,
            "--transport" => out.transport = value,
            _ => bail!(
                "unknown argument {flag}; usage: --upstream URL [--path NAME] [--transport T]"
            ),
        }
    }
    if out.upstream.is_empty() {
        bail!("--upstream URL is required");
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    mcpgw_core::telemetry::init_logging(&LogConfig {
        format: LogFormat::Text,
        filter: std::env::var("MCPGW_CONFORMANCE_LOG").unwrap_or_else(|_| "warn".into()),
    })?;
    let dir = tempfile::tempdir()?;
    let sealing_key = mcpgw_core::secrets::Keyring::generate_base64()
        .expose_secret()
        .to_owned();
    let session_key = mcpgw_core::secrets::Keyring::generate_base64()
        .expose_secret()
        .to_owned();

    // The registry.
    let registry_config = registry::config::RegistryConfig::from_toml_layers(&[&format!(
        "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\
         [egress]\nallow_loopback = true\n[secrets.sealing_key]\nvalue = \"{sealing_key}\"\n\
         [store]\ncatalog_cache_ms = 100\n",
        dir.path().join("registry").display()
    )])?;
    let registry = registry::app::start(registry_config).await?;
    let registry_url = format!("http://{}", registry.addr);
    let admin = Admin {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        base: registry_url.clone(),
        key: registry
            .bootstrap_key
            .clone()
            .context("the registry minted no bootstrap key")?,
    };
    let created = admin
        .call(
            reqwest::Method::POST,
            "/api/v1/api-keys",
            json!({"name": "gateway", "permissions": ["gateway:sync"]}),
        )
        .await?;
    let gateway_key = created["key"]
        .as_str()
        .context("no api key in the registry's answer")?
        .to_owned();

    // The issuer and the gateway.
    let issuer = TestIssuer::start().await;
    let gateway_toml = format!(
        "metrics_listen = \"127.0.0.1:0\"\n\
         data_dir = \"{data}\"\ninstance_id = \"conformance\"\nallowed_hosts = [\"127.0.0.1\"]\n\
         [registry]\nurl = \"{registry_url}\"\n[registry.api_key]\nvalue = \"{gateway_key}\"\n\
         [sync]\npoll_wait_seconds = 5\nretry_seconds = 1\n\
         [secrets.sealing_key]\nvalue = \"{sealing_key}\"\n[secrets.session_key]\nvalue = \"{session_key}\"\n\
         [egress]\nallow_loopback = true\n[audit]\nflush_ms = 500\n\
         [[auth.issuers]]\nissuer = \"{issuer}\"\naudiences = [\"{AUDIENCE}\"]\n",
        data = dir.path().join("gateway").display(),
        issuer = issuer.issuer,
    );
    let gateway = start_gateway(&gateway_toml).await?;

    // The upstream, approved, and a scope granting everything on it.
    let path = &args.path;
    admin
        .call(
            reqwest::Method::POST,
            "/api/v1/servers",
            json!({
                "path": path, "name": "Conformance fixture",
                "endpoint": {"transport": args.transport, "url": args.upstream},
                "governance": {"owner_team": "platform"}
            }),
        )
        .await?;
    // Its tools discovered before the review, so the review approves them (tool integrity
    // withholds tools recorded after approval until someone approves them).
    admin
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/servers/{path}/tools/refresh"),
            json!({}),
        )
        .await?;
    for to in ["submitted", "security_review", "approved_dev"] {
        admin
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/servers/{path}/lifecycle"),
                json!({"to": to, "reason": "conformance run"}),
            )
            .await?;
    }
    admin
        .call(
            reqwest::Method::PUT,
            "/api/v1/scopes/conformance",
            json!({
                "name": "conformance", "group_mappings": [GROUP],
                "server_access": [{"server": path, "methods": "*", "tools": "*"}]
            }),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let table = gateway.state.table.current();
        if table.get(path).is_some()
            && table.policy.version() > 0
            && table.documents.iter().any(|d| d.name() == "conformance")
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the gateway did not route {path} with the conformance scope within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut claims = issuer.claims("conformance-suite", &[GROUP], AUDIENCE);
    claims["exp"] = json!(chrono::Utc::now().timestamp() + 3600);
    let token = issuer.sign(&claims);
    println!("READY {}/{path}/mcp {token}", gateway.url());

    mcpgw_core::serve::shutdown_signal().await;
    gateway.stop().await;
    registry.stop().await;
    drop(dir);
    Ok(())
}

/// Starts the gateway on a port chosen here, so that `public_url` is the URL the suite uses:
/// the gateway accepts browser `Origin`s of its public URL only, and the suite's
/// dns-rebinding-protection scenario sends `Origin: http://127.0.0.1:<port>`.
async fn start_gateway(toml: &str) -> anyhow::Result<gateway::app::Running> {
    let mut last = None;
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let listen =
            format!("listen = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n");
        let config = gateway::config::GatewayConfig::from_toml_layers(&[toml, &listen])?;
        match gateway::app::start(config).await {
            Ok(running) => return Ok(running),
            // Someone took the port between the probe and the bind: try another.
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("tried at least once"))
}

struct Admin {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Admin {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let response = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("registry {method} {path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}
