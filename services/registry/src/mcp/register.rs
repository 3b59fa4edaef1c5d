//! At start, the registry ensures a server record for its own `/mcp`, so gateways route it
//! like any server (`/<mcp.path>/mcp`).
//!
//! Idempotent across restarts and replicas: the record is created once (a replica that loses
//! the race revokes the key it minted and uses the winner's record); later starts only bring
//! the URL, the tools and the lifecycle up to date. A record at that path made by someone
//! else is left alone. Every step goes through the same service calls as any client
//! (validation, egress policy, audit), as the system principal `system:mcpgw-registry`.
//!
//! Its credential is an API key holding only `gateway:delegate`, and `gateway.assert_caller`
//! is set: gateways present the key with the caller they verified, and the registry acts for
//! that caller (see `auth::AuthChain` and docs/security.md). The record is system-owned (only
//! the registry, or a caller with `servers:system`, changes it), and the key is sealed bound to
//! the record's URL: when a start moves the URL, a new key is minted and the old one revoked,
//! so the key never goes anywhere but this registry's listener (or the configured `mcp.url`).

use std::net::SocketAddr;

use anyhow::Context;
use mcpgw_core::auth::{Permission, Principal};
use mcpgw_core::domain::{
    EndpointSpec, GatewaySettings, Governance, Lifecycle, ServerPath, ServerRecord, ServerSpec,
    ToolSpec, UpstreamAuth, UpstreamAuthSpec,
};
use mcpgw_core::upstream_auth::fields;

use crate::app::AppState;
use crate::error::RegistryError;
use crate::service::RequestContext;

/// The system principal's name: its subject is `service::SYSTEM_OWNER`, which makes the
/// record system-owned (writes need `servers:system`).
const ACTOR: &str = "mcpgw-registry";

/// Ensures the record; failures are logged, never fatal (the REST API serves regardless).
pub async fn ensure_registered(state: &AppState, listen: SocketAddr) {
    if let Err(e) = try_register(state, listen).await {
        tracing::warn!(error = %format!("{e:#}"), path = %state.config.mcp.path,
            "could not register the registry's MCP server; set mcp.url (and the egress policy) or mcp.register = false");
    }
}

fn url(state: &AppState, listen: SocketAddr) -> String {
    if !state.config.mcp.url.is_empty() {
        return state.config.mcp.url.clone();
    }
    let host = if listen.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], listen.port()))
    } else {
        listen
    };
    format!("http://{host}/mcp")
}

async fn try_register(state: &AppState, listen: SocketAddr) -> anyhow::Result<()> {
    let registry = &state.registry;
    let system = Principal::system(ACTOR);
    let ctx = RequestContext::default();
    let path = ServerPath::parse(&state.config.mcp.path).map_err(anyhow::Error::msg)?;
    let endpoint = EndpointSpec::StreamableHttp {
        url: url(state, listen),
    };
    let mut record = match registry.store.get_server(&path).await? {
        None => match create(state, &system, &ctx, endpoint.clone()).await? {
            Some(r) => r,
            None => registry
                .store
                .get_server(&path)
                .await?
                .context("the record another replica created is gone")?,
        },
        Some(existing) => existing,
    };
    if record.created_by != system.subject {
        tracing::warn!(path = %path, "a server exists at mcp.path and was not made by the registry; leaving it alone");
        return Ok(());
    }
    let wanted = record.to_spec();
    if wanted.endpoint != endpoint {
        record = repoint(state, &system, &ctx, &record, wanted, endpoint).await?;
    }
    // Tools first: the review transition below approves the tools recorded before it.
    let tools = super::definitions()
        .iter()
        .map(|t| ToolSpec::from_mcp(&serde_json::to_value(t)?).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let known: Vec<&ToolSpec> = record.tools.iter().map(|t| &t.spec).collect();
    if known != tools.iter().collect::<Vec<_>>() {
        record = registry
            .set_tools(&system, &ctx, &path, tools, None)
            .await?;
    }
    // The registry's own server ships with it, so it is approved for every stage.
    for to in [
        Lifecycle::Submitted,
        Lifecycle::SecurityReview,
        Lifecycle::ApprovedDev,
        Lifecycle::ApprovedProd,
    ] {
        if record.lifecycle.transition_permission(to).is_some() && record.lifecycle < to {
            record = registry
                .transition(
                    &system,
                    &ctx,
                    &path,
                    to,
                    "the registry's own MCP server, registered at start",
                    None,
                )
                .await?;
        }
    }
    tracing::info!(path = %path, lifecycle = %record.lifecycle, "the registry's MCP server is registered");
    Ok(())
}

/// Moves the record to this start's URL. The stored delegation key is bound to the old
/// endpoint and never follows it (see `ServerRecord::secret_context`): a fresh key is minted
/// for the new URL and the old one revoked. The move sends the record back to review, which
/// the caller's loop completes as the system.
async fn repoint(
    state: &AppState,
    system: &Principal,
    ctx: &RequestContext,
    record: &ServerRecord,
    mut wanted: ServerSpec,
    endpoint: EndpointSpec,
) -> anyhow::Result<ServerRecord> {
    let registry = &state.registry;
    let old_key_id = match &record.upstream_auth {
        UpstreamAuth::Bearer { token } => record
            .open_secret(&registry.keyring, fields::TOKEN, token)
            .ok()
            .and_then(|plain| crate::keys::parse(&plain).map(|(id, _)| id.to_owned())),
        _ => None,
    };
    let minted = mint_delegate_key(state, system, ctx).await?;
    wanted.endpoint = endpoint;
    wanted.upstream_auth = UpstreamAuthSpec::Bearer {
        token: Some(minted.plain),
    };
    match registry
        .replace_server(system, ctx, &record.path, wanted, Some(record.revision))
        .await
    {
        Ok(moved) => {
            if let Some(id) = old_key_id
                && let Err(e) = registry.revoke_api_key(system, ctx, &id).await
            {
                tracing::warn!(error = %e, key = %id, "could not revoke the previous delegation key");
            }
            Ok(moved)
        }
        Err(e) => {
            registry
                .revoke_api_key(system, ctx, &minted.record.id)
                .await?;
            Err(e.into())
        }
    }
}

/// A key holding only `gateway:delegate`, for the record's bearer credential.
async fn mint_delegate_key(
    state: &AppState,
    system: &Principal,
    ctx: &RequestContext,
) -> anyhow::Result<crate::keys::MintedKey> {
    Ok(state
        .registry
        .create_api_key(
            system,
            ctx,
            &format!("gateway delegation for {}", state.config.mcp.path),
            vec![Permission::GatewayDelegate],
            None,
        )
        .await?)
}

/// Creates the record with a fresh delegation key; `None` when another replica was first.
async fn create(
    state: &AppState,
    system: &Principal,
    ctx: &RequestContext,
    endpoint: EndpointSpec,
) -> anyhow::Result<Option<mcpgw_core::domain::ServerRecord>> {
    let registry = &state.registry;
    let minted = mint_delegate_key(state, system, ctx).await?;
    let spec = spec(&state.config.mcp.path, endpoint, minted.plain);
    match registry.create_server(system, ctx, spec).await {
        Ok(record) => Ok(Some(record)),
        Err(e) => {
            // Not kept: nobody else holds this key.
            registry
                .revoke_api_key(system, ctx, &minted.record.id)
                .await?;
            match e {
                RegistryError::ServerExists(_) => Ok(None),
                e => Err(e.into()),
            }
        }
    }
}

fn spec(path: &str, endpoint: EndpointSpec, key: String) -> ServerSpec {
    ServerSpec {
        path: Some(path.to_owned()),
        name: "mcpgw registry".to_owned(),
        description: "The registry's own MCP server: find, register and govern MCP servers (list, search, register, update, toggle, lifecycle, tool discovery, health).".to_owned(),
        tags: vec!["mcpgw".to_owned(), "registry".to_owned()],
        endpoint,
        upstream_auth: UpstreamAuthSpec::Bearer { token: Some(key) },
        custom_headers: None,
        governance: Governance {
            business_capability: Some("MCP server catalog".to_owned()),
            owner_team: "mcpgw".to_owned(),
            technical_owner: None,
            environment: Default::default(),
            risk_level: mcpgw_core::domain::RiskLevel::Medium,
            data_classification: mcpgw_core::domain::DataClassification::Internal,
            required_scopes: vec![],
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            health_check_endpoint: None,
            health_check_interval_seconds: None,
            license: Some("Apache-2.0".to_owned()),
            provider: None,
        },
        gateway: GatewaySettings {
            assert_caller: true,
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_registry_record_is_made_by_the_system_owner() {
        let system = mcpgw_core::auth::Principal::system(super::ACTOR);
        assert_eq!(system.subject, crate::service::SYSTEM_OWNER);
    }
}
