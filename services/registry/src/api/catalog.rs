//! `/v0.1/servers`: the read-only shape of the official MCP Registry API, so tools that speak
//! it can list this registry's servers.
//!
//! Listed: enabled servers a gateway of this deployment routes, plus deprecated ones (and
//! retired ones with `include_deleted=true`). Remote URLs point at the gateway, never at the
//! upstream: internal addresses do not leak, and clients always go through policy. Each remote
//! declares the `Authorization` header the gateway requires (see `remote`).

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::IntoResponse;
use mcpgw_core::auth::Permission;
use mcpgw_core::domain::{DeploymentStage, Lifecycle, ServerPath, ServerRecord};
use mcpgw_core::error::ErrorBody;
use mcpgw_core::input::InputError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::extract::{ApiPath, Params, encode_cursor};
use crate::app::AppState;
use crate::auth::MaybeCaller;
use crate::error::{RegistryError, Result};
use crate::store::ServerFilter;

const SCHEMA: &str = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json";
const OFFICIAL: &str = "io.modelcontextprotocol.registry/official";
const PUBLISHER: &str = "io.modelcontextprotocol.registry/publisher-provided";

#[derive(Serialize, Deserialize, ToSchema)]
pub struct CatalogEntry {
    /// A `server.json` document.
    #[schema(value_type = Object)]
    pub server: Value,
    #[serde(rename = "_meta")]
    #[schema(value_type = Object)]
    pub meta: Value,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct CatalogMetadata {
    pub count: usize,
    #[serde(rename = "nextCursor", skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct CatalogList {
    pub servers: Vec<CatalogEntry>,
    pub metadata: CatalogMetadata,
}

fn listed_states(stage: DeploymentStage, include_deleted: bool) -> Vec<Lifecycle> {
    let mut states: Vec<Lifecycle> = Lifecycle::ALL
        .into_iter()
        .filter(|l| l.is_routable(stage) || *l == Lifecycle::Deprecated)
        .collect();
    if include_deleted {
        states.push(Lifecycle::Retired);
    }
    states
}

fn version_of(r: &ServerRecord) -> String {
    r.governance
        .version
        .clone()
        .unwrap_or_else(|| format!("0.0.{}", r.revision))
}

/// One remote of a `server.json`, with the header it needs. Every gateway route requires an
/// access token, and server.json says so the way the schema allows: a required, secret
/// `Authorization` header (`KeyValueInput`) whose `{access_token}` variable the client asks
/// the user for. Without it, clients that install from the catalog connected without a token
/// and met a bare 401.
fn remote(kind: &str, url: String) -> Value {
    json!({
        "type": kind,
        "url": url,
        "headers": [{
            "name": "Authorization",
            "description": ACCESS_TOKEN_HINT,
            "isRequired": true,
            "isSecret": true,
            "value": "Bearer {access_token}",
            "variables": {"access_token": {
                "description": ACCESS_TOKEN_HINT,
                "isRequired": true,
                "isSecret": true,
            }},
        }],
    })
}

const ACCESS_TOKEN_HINT: &str = "An OAuth access token (JWT) from the auth-server: mint one on the console's Tokens page (/console/tokens)";

fn entry(state: &AppState, r: &ServerRecord) -> CatalogEntry {
    let base = state.config.gateway_public_url.trim_end_matches('/');
    let description: String = if r.description.is_empty() {
        r.name.chars().take(100).collect()
    } else {
        r.description.chars().take(100).collect()
    };
    let status = match r.lifecycle {
        Lifecycle::Deprecated => "deprecated",
        Lifecycle::Retired => "deleted",
        _ => "active",
    };
    let g = &r.governance;
    CatalogEntry {
        server: json!({
            "$schema": SCHEMA,
            "name": format!("{}/{}", state.config.catalog_namespace, r.path),
            "title": r.name,
            "description": description,
            "version": version_of(r),
            "remotes": [
                remote("streamable-http", format!("{base}/{}/mcp", r.path)),
                remote("sse", format!("{base}/{}/sse", r.path)),
            ],
            "_meta": {PUBLISHER: {
                "owner_team": g.owner_team,
                "environment": g.environment,
                "risk_level": g.risk_level,
                "data_classification": g.data_classification,
                "required_scopes": g.required_scopes,
                "lifecycle": r.lifecycle,
                "tags": r.tags,
                "tool_count": r.tools.len(),
            }},
        }),
        meta: json!({OFFICIAL: {
            "status": status,
            "publishedAt": r.created_at,
            "updatedAt": r.updated_at,
            "statusChangedAt": r.lifecycle_history.last().map(|e| e.at).unwrap_or(r.created_at),
            "isLatest": true,
        }}),
    }
}

fn check_access(state: &AppState, caller: &MaybeCaller) -> Result<()> {
    match &caller.0 {
        // A public catalog is public to every caller, with or without a key.
        _ if state.config.anonymous_catalog => Ok(()),
        Some(p) => Ok(p.require(Permission::ServersRead)?),
        None => Err(RegistryError::Unauthenticated(
            "the catalog needs credentials here: send `Authorization: Bearer <API key>`".to_owned(),
        )),
    }
}

/// List servers in `server.json` form (official MCP Registry API, v0.1).
#[utoipa::path(get, path = "/v0.1/servers", tag = "catalog",
    params(
        ("cursor" = Option<String>, Query), ("limit" = Option<u32>, Query, description = "1–100 (default 30)"),
        ("search" = Option<String>, Query, description = "Case-insensitive substring of path, name, description or tags"),
        ("updated_since" = Option<String>, Query, description = "RFC 3339"),
        ("version" = Option<String>, Query, description = "Only `latest` (each server has one version here)"),
        ("include_deleted" = Option<bool>, Query),
    ),
    responses((status = 200, body = CatalogList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: MaybeCaller,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse> {
    check_access(&state, &caller)?;
    let p = Params::parse(
        query.as_deref(),
        &[
            "cursor",
            "limit",
            "search",
            "updated_since",
            "version",
            "include_deleted",
        ],
    )?;
    if let Some(v) = p.text("version")
        && v != "latest"
    {
        return Err(RegistryError::Input(InputError::InvalidQuery(
            mcpgw_core::validate::FieldError::new(
                "version",
                "only `latest` is supported: this registry keeps one version per server",
            ),
        )));
    }
    let filter = ServerFilter {
        enabled: Some(true),
        lifecycle: Some(listed_states(
            state.config.stage,
            p.bool("include_deleted")?.unwrap_or(false),
        )),
        text: p.text("search").map(str::to_owned),
        updated_since: p.timestamp("updated_since")?,
        ..Default::default()
    };
    let limit = p.limit("limit", 100, 30)?;
    let cursor = p.cursor("cursor")?;
    let system = mcpgw_core::auth::Principal::system("catalog");
    let page = state
        .registry
        .list_servers(&system, &filter, cursor.as_deref(), limit)
        .await?;
    let servers: Vec<CatalogEntry> = page.items.iter().map(|r| entry(&state, r)).collect();
    Ok(Json(CatalogList {
        metadata: CatalogMetadata {
            count: servers.len(),
            next_cursor: page.next.as_deref().map(encode_cursor),
        },
        servers,
    }))
}

async fn find(state: &AppState, name: &str) -> Result<ServerRecord> {
    let not_found = || RegistryError::ServerNotFound(name.to_owned());
    let prefix = format!("{}/", state.config.catalog_namespace);
    let path = name.strip_prefix(&prefix).ok_or_else(not_found)?;
    let path = ServerPath::parse(path).map_err(|_| not_found())?;
    let record = state
        .registry
        .get_server(&mcpgw_core::auth::Principal::system("catalog"), &path)
        .await?;
    let listed =
        record.enabled && listed_states(state.config.stage, true).contains(&record.lifecycle);
    if listed { Ok(record) } else { Err(not_found()) }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VersionList {
    pub servers: Vec<CatalogEntry>,
    pub metadata: CatalogMetadata,
}

/// The versions of one server (always one here).
#[utoipa::path(get, path = "/v0.1/servers/{server_name}/versions", tag = "catalog",
    params(("server_name" = String, Path, description = "URL-encoded `namespace/path`")),
    responses((status = 200, body = VersionList), (status = 404, body = ErrorBody)))]
pub async fn versions(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse> {
    check_access(&state, &caller)?;
    let record = find(&state, &name).await?;
    Ok(Json(VersionList {
        servers: vec![entry(&state, &record)],
        metadata: CatalogMetadata {
            count: 1,
            next_cursor: None,
        },
    }))
}

/// One version of one server (`latest` or the exact version).
#[utoipa::path(get, path = "/v0.1/servers/{server_name}/versions/{version}", tag = "catalog",
    params(("server_name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = CatalogEntry), (status = 404, body = ErrorBody)))]
pub async fn version(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse> {
    check_access(&state, &caller)?;
    let record = find(&state, &name).await?;
    if version != "latest" && version != version_of(&record) {
        return Err(RegistryError::ServerNotFound(format!("{name}@{version}")));
    }
    Ok(Json(entry(&state, &record)))
}
