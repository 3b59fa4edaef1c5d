//! Tool discovery: the registry lists a server's tools itself (`tools/list`, with the server's
//! upstream credentials, through [`crate::mcp_client`]) and records them through
//! [`Registry::record_listed`], the path of `PUT /api/v1/servers/{path}/tools` (validation,
//! hashes, audit, the tool-integrity comparison) except that a listed tool that is not valid
//! is left out with its reason rather than refusing the list.
//!
//! It runs when a server becomes healthy (which includes its first check after registration)
//! and on `POST /api/v1/servers/{path}/tools/refresh`.
//!
//! The registry cannot reach a stdio server (a child process of each gateway): the gateways
//! that run it list its tools on every start of the child and on its
//! `notifications/tools/list_changed`, and report them (`POST /api/v1/gateway/tools`,
//! [`record_reported`]) into the same [`Registry::record_listed`] path.

use std::sync::Arc;

use mcpgw_core::auth::{Permission, Principal};
use mcpgw_core::domain::{Endpoint, LeftOut, ServerPath, ServerRecord};
use mcpgw_core::gateway_sync::StdioToolsReport;
use mcpgw_core::validate::FieldError;
use serde_json::Value;

use crate::error::{RegistryError, Result};
use crate::health::HealthChecker;
use crate::mcp_client::Session;
use crate::service::{Registry, RequestContext, ToolSource};

/// Longest `gateway` name of a report, in bytes (as for health reports).
const GATEWAY_NAME_LIMIT: usize = 128;

/// Lists the tools of `record` (not stored yet): the `tools` of every `tools/list` page.
pub async fn list_tools(
    registry: &Registry,
    checker: &HealthChecker,
    record: &ServerRecord,
) -> Result<Vec<Value>> {
    let upstream = |e: crate::mcp_client::Failure| RegistryError::Upstream(e.to_string());
    let target = checker.target(registry, record).map_err(upstream)?;
    tokio::time::timeout(checker.timeout(), async {
        let mut session = Session::open(checker.http(), &target).await?;
        let tools = session.list_tools().await;
        session.close().await;
        tools
    })
    .await
    .unwrap_or(Err(crate::mcp_client::Failure::Timeout))
    .map_err(upstream)
}

/// `POST /api/v1/gateway/tools`: a gateway's listing of a stdio server it runs, recorded as
/// the gateway's key (`gateway:sync`). A server that is not stdio is refused (the registry
/// lists it itself); an unknown one is `server_not_found` (deleted since the snapshot).
pub async fn record_reported(
    registry: &Registry,
    caller: &Principal,
    ctx: &RequestContext,
    report: &StdioToolsReport,
) -> Result<(ServerRecord, Vec<LeftOut>)> {
    caller.require(Permission::GatewaySync)?;
    if report.gateway.trim().is_empty() || report.gateway.len() > GATEWAY_NAME_LIMIT {
        return Err(FieldError::new(
            "gateway",
            format!("must name the reporting gateway in 1 to {GATEWAY_NAME_LIMIT} bytes"),
        )
        .into());
    }
    let path = ServerPath::parse(&report.server).map_err(|m| FieldError::new("server", m))?;
    let record = registry
        .store
        .get_server(&path)
        .await?
        .ok_or_else(|| RegistryError::ServerNotFound(path.to_string()))?;
    if !matches!(record.endpoint, Endpoint::Stdio { .. }) {
        return Err(FieldError::new(
            "server",
            "is not a stdio server: the registry lists its tools itself",
        )
        .into());
    }
    registry
        .record_listed(caller, ctx, &path, &report.tools, ToolSource::Gateway)
        .await
}

/// `POST /api/v1/servers/{path}/tools/refresh`: whoever may update the server (as for
/// `PUT .../tools`). Returns the record and the listed tools that were left out.
pub async fn refresh(
    registry: &Registry,
    checker: &HealthChecker,
    caller: &Principal,
    ctx: &RequestContext,
    path: &ServerPath,
) -> Result<(ServerRecord, Vec<LeftOut>)> {
    caller.require_for(Permission::ServersUpdate, path.as_str())?;
    let record = registry.get_server(caller, path).await?;
    let listed = list_tools(registry, checker, &record).await?;
    registry
        .record_listed(caller, ctx, path, &listed, ToolSource::Discovery)
        .await
}

/// Discovery the registry starts itself (a server became healthy), as the system.
pub async fn discover_in_background(
    registry: &Arc<Registry>,
    checker: &Arc<HealthChecker>,
    path: &ServerPath,
) -> Result<()> {
    let record = registry
        .store
        .get_server(path)
        .await?
        .ok_or_else(|| RegistryError::ServerNotFound(path.to_string()))?;
    let listed = list_tools(registry, checker, &record).await?;
    let system = Principal::system("tool-discovery");
    registry
        .record_listed(
            &system,
            &RequestContext::default(),
            path,
            &listed,
            ToolSource::Discovery,
        )
        .await?;
    Ok(())
}
