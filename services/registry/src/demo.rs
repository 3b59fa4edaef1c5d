//! A small MCP server for local evaluation, run inside the registry process when
//! `demo.enabled` is set, and registered at first start as the server `demo`.
//!
//! Registration goes through the same service calls as any client (validation, egress policy,
//! audit), walks the lifecycle to `approved_dev` so a non-production gateway routes it, and
//! records its tools from a real `tools/list` over Streamable HTTP.

use std::net::SocketAddr;

use mcpgw_core::auth::Principal;
use mcpgw_core::domain::{EndpointSpec, Governance, Lifecycle, ServerPath, ServerSpec, ToolSpec};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{
    StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
};
use rmcp::{ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};

use crate::service::{Registry, RequestContext};

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// Text to send back.
    pub text: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct AddArgs {
    pub a: f64,
    pub b: f64,
}

#[derive(Clone)]
pub struct DemoServer {
    tool_router: ToolRouter<Self>,
}

impl Default for DemoServer {
    fn default() -> Self {
        Self::new()
    }
}

#[tool_router]
impl DemoServer {
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Echo the input text back",
        annotations(read_only_hint = true)
    )]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    #[tool(description = "Add two numbers", annotations(read_only_hint = true))]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        (a + b).to_string()
    }

    #[tool(
        description = "The current time in UTC (RFC 3339)",
        annotations(read_only_hint = true)
    )]
    fn current_time(&self) -> String {
        mcpgw_core::time::Timestamp::now().to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("mcpgw demo server: echo, add, current_time")
    }
}

/// The demo server's HTTP routes (`/mcp`), answering requests whose `Host` is one of
/// `allowed_hosts` (see [`allowed_hosts`]).
pub fn router(allowed_hosts: Vec<String>) -> axum::Router {
    let service: StreamableHttpService<DemoServer, LocalSessionManager> =
        StreamableHttpService::new(
            || Ok(DemoServer::new()),
            Default::default(),
            StreamableHttpServerConfig::default().with_allowed_hosts(allowed_hosts),
        );
    axum::Router::new().nest_service("/mcp", service)
}

/// The `Host` names the demo server answers (rmcp's DNS-rebinding check): the loopback names
/// (rmcp's default), the address it registers (what gateways and the registry's own tool
/// discovery send: under compose a container address, not loopback), and the host names of
/// the registry's configured URLs (`console.public_url`, `mcp.url`), which are names of this
/// host on the networks it serves. With only rmcp's default, the registration's own
/// `tools/list` was refused with 403 everywhere but on loopback, so `/demo/mcp` answered 404.
pub fn allowed_hosts(registered: SocketAddr, configured_urls: &[&str]) -> Vec<String> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).into();
    let named = configured_urls
        .iter()
        .filter_map(|u| url::Url::parse(u).ok())
        .filter_map(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()));
    for host in std::iter::once(registered_host(registered).ip().to_string()).chain(named) {
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts
}

/// The address the demo registers: the bound one, loopback for an unspecified listen address.
fn registered_host(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

/// Lists the tools of a Streamable HTTP MCP server.
pub async fn list_tools(url: &str) -> anyhow::Result<Vec<ToolSpec>> {
    let client = ().serve(StreamableHttpClientTransport::from_uri(url.to_owned())).await?;
    let tools = client.list_all_tools().await;
    let _ = client.cancel().await;
    tools?
        .iter()
        .map(|t| {
            let value = serde_json::to_value(t)?;
            ToolSpec::from_mcp(&value).map_err(anyhow::Error::from)
        })
        .collect()
}

/// Registers the demo server unless it exists; failures are logged, never fatal.
pub async fn register(registry: &Registry, addr: SocketAddr) {
    if let Err(e) = try_register(registry, addr).await {
        tracing::warn!(error = %e, "could not register the demo MCP server");
    }
}

async fn try_register(registry: &Registry, addr: SocketAddr) -> anyhow::Result<()> {
    let system = Principal::system("demo");
    let ctx = RequestContext::default();
    let path = ServerPath::parse("demo").map_err(anyhow::Error::msg)?;
    let url = format!("http://{}/mcp", registered_host(addr));
    let endpoint = EndpointSpec::StreamableHttp { url: url.clone() };
    // Each step below is skipped when already done, so a start that stopped half-way through
    // (or a changed demo.listen) is completed by the next one.
    let mut record = match registry.store.get_server(&path).await? {
        None => {
            registry
                .create_server(&system, &ctx, spec(endpoint))
                .await?
        }
        Some(existing) if existing.created_by != system.subject => {
            tracing::warn!(
                "a server named \"demo\" exists and was not made by the demo; leaving it alone"
            );
            return Ok(());
        }
        Some(existing) => {
            let mut wanted = existing.to_spec();
            if wanted.endpoint != endpoint {
                wanted.endpoint = endpoint;
                registry
                    .replace_server(&system, &ctx, &path, wanted, Some(existing.revision))
                    .await?
            } else {
                existing
            }
        }
    };
    // Tools first: the review transition below approves the tools recorded before it (tool
    // integrity), so the demo's tools are served from the start.
    let tools = list_tools(&url).await?;
    let known: Vec<&ToolSpec> = record.tools.iter().map(|t| &t.spec).collect();
    if known != tools.iter().collect::<Vec<_>>() {
        record = registry
            .set_tools(&system, &ctx, &path, tools, None)
            .await?;
    }
    for to in [
        Lifecycle::Submitted,
        Lifecycle::SecurityReview,
        Lifecycle::ApprovedDev,
    ] {
        if record.lifecycle.transition_permission(to).is_some() && record.lifecycle < to {
            record = registry
                .transition(
                    &system,
                    &ctx,
                    &path,
                    to,
                    "demo server registered at start",
                    None,
                )
                .await?;
        }
    }
    tracing::info!(url = %url, tools = record.tools.len(), lifecycle = %record.lifecycle, "demo MCP server registered");
    seed_demo_scopes(registry).await?;
    Ok(())
}

/// The scope documents of the scopes the local auth-server's admin holds (its embedded
/// `group_scopes`), the same as the setup spec's (`services/setup-keycloak/spec/mcpgw.toml`), so
/// that a local evaluation works signed in as that admin and every scope the Tokens page offers
/// grants something:
/// - `mcp-servers-unrestricted/execute`: every method and tool of every server through the
///   gateway (the demo, the registry's own MCP server and whatever the evaluator registers,
///   writes included);
/// - `mcp-servers-unrestricted/read`: listing only, on every server;
/// - `mcp-registry-admin`: every registry permission, for the web console and for what the
///   registry's own MCP server does as the caller. A token for that server through the gateway
///   needs it beside `…/execute` (README's quick start names both; a gateway test mints that).
///
/// Each is only created when absent: an operator's own document of that name is never replaced.
pub async fn seed_demo_scopes(registry: &Registry) -> anyhow::Result<()> {
    let system = &Principal::system("demo");
    let ctx = &RequestContext::default();
    // Every UI action of every permission, on every server.
    let all_ui: serde_json::Map<String, serde_json::Value> = mcpgw_core::auth::Permission::ALL
        .iter()
        .flat_map(|p| p.ui_actions())
        .map(|action| ((*action).to_owned(), serde_json::json!(["all"])))
        .collect();
    let documents = [
        serde_json::json!({
            "name": "mcp-servers-unrestricted/execute",
            "group_mappings": [],
            "server_access": [{"server": "*", "methods": "*", "tools": "*", "allow_write": true}]
        }),
        serde_json::json!({
            "name": "mcp-servers-unrestricted/read",
            "group_mappings": [],
            "server_access": [{"server": "*", "methods": ["initialize", "ping", "tools/list", "resources/list", "resources/templates/list", "prompts/list"]}]
        }),
        serde_json::json!({
            "name": "mcp-registry-admin",
            "group_mappings": [],
            "server_access": [],
            "ui_permissions": all_ui,
        }),
    ];
    let policy = registry.store.policy().await?;
    for value in documents {
        let (doc, _) = mcpgw_core::policy::ScopeDocument::from_value(&value)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if policy.documents.iter().any(|d| d.name() == doc.name()) {
            continue;
        }
        let name = doc.name().to_owned();
        registry.put_scope(system, ctx, doc).await?;
        tracing::info!(scope = %name, "demo scope created for the local auth-server's admin");
    }
    Ok(())
}

fn spec(endpoint: EndpointSpec) -> ServerSpec {
    ServerSpec {
        path: Some("demo".to_owned()),
        name: "Demo MCP server".to_owned(),
        description: "A small MCP server built into the registry for local evaluation: echo, add, current_time.".to_owned(),
        tags: vec!["demo".to_owned()],
        endpoint,
        upstream_auth: Default::default(),
        custom_headers: None,
        governance: Governance {
            business_capability: Some("Platform evaluation".to_owned()),
            owner_team: "mcpgw".to_owned(),
            technical_owner: None,
            environment: Default::default(),
            risk_level: mcpgw_core::domain::RiskLevel::Low,
            data_classification: mcpgw_core::domain::DataClassification::Public,
            required_scopes: vec![],
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            health_check_endpoint: None,
            health_check_interval_seconds: None,
            license: Some("Apache-2.0".to_owned()),
            provider: None,
        },
        gateway: Default::default(),
    }
}
