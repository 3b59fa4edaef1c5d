//! Tool discovery: the registry lists a server's tools itself (`tools/list`, with the server's
//! upstream credentials, through [`crate::mcp_client`]) and records them through
//! [`Registry::record_tools`], the same path as `PUT /api/v1/servers/{path}/tools`
//! (validation, hashes, audit, the tool-integrity comparison).
//!
//! It runs when a server becomes healthy (which includes its first check after registration)
//! and on `POST /api/v1/servers/{path}/tools/refresh`.

use std::sync::Arc;

use mcpgw_core::auth::{Permission, Principal};
use mcpgw_core::domain::{ServerPath, ServerRecord, ToolSpec};

use crate::error::{RegistryError, Result};
use crate::health::HealthChecker;
use crate::mcp_client::Session;
use crate::service::{Registry, RequestContext, ToolSource};

/// Lists the tools of `record` (not stored yet).
pub async fn list_tools(
    registry: &Registry,
    checker: &HealthChecker,
    record: &ServerRecord,
) -> Result<Vec<ToolSpec>> {
    let upstream = |e: crate::mcp_client::Failure| RegistryError::Upstream(e.to_string());
    let target = checker.target(registry, record).map_err(upstream)?;
    let listed = tokio::time::timeout(checker.timeout(), async {
        let mut session = Session::open(checker.http(), &target).await?;
        let tools = session.list_tools().await;
        session.close().await;
        tools
    })
    .await
    .unwrap_or(Err(crate::mcp_client::Failure::Timeout))
    .map_err(upstream)?;
    listed
        .iter()
        .enumerate()
        .map(|(i, t)| {
            ToolSpec::from_mcp(t).map_err(|e| {
                RegistryError::Upstream(format!(
                    "the server's tools[{i}]: {}: {}",
                    e.field, e.message
                ))
            })
        })
        .collect()
}

/// `POST /api/v1/servers/{path}/tools/refresh`: whoever may update the server (as for
/// `PUT .../tools`).
pub async fn refresh(
    registry: &Registry,
    checker: &HealthChecker,
    caller: &Principal,
    ctx: &RequestContext,
    path: &ServerPath,
) -> Result<ServerRecord> {
    caller.require_for(Permission::ServersUpdate, path.as_str())?;
    let record = registry.get_server(caller, path).await?;
    let specs = list_tools(registry, checker, &record).await?;
    registry
        .record_tools(caller, ctx, path, specs, ToolSource::Discovery)
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
    let specs = list_tools(registry, checker, &record).await?;
    let system = Principal::system("tool-discovery");
    registry
        .record_tools(
            &system,
            &RequestContext::default(),
            path,
            specs,
            ToolSource::Discovery,
        )
        .await?;
    Ok(())
}
