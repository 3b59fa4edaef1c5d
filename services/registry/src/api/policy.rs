//! `/api/v1/scopes` and `/api/v1/policy`: the scope documents that decide who may call which
//! server, method and tool (and what they may do here), in the anchor system's format.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use mcpgw_core::error::ErrorBody;
use mcpgw_core::input::InputError;
use mcpgw_core::policy::{self, Decision, Identity, PolicyNote, PolicySnapshot, ScopeDocument};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Ctx;
use super::extract::{ApiJson, ApiPath, Params};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{RegistryError, Result};

#[derive(Serialize, Deserialize, ToSchema)]
pub struct PolicyVersion {
    /// The policy version after the change.
    pub version: u64,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ImportResult {
    pub version: u64,
    pub imported: usize,
    /// What the reader dropped, converted or found suspicious (never an error).
    pub notes: Vec<PolicyNote>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// IdP groups of the identity to check.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Token scopes of the identity to check.
    #[serde(default)]
    pub scopes: Vec<String>,
    pub server: String,
    /// A JSON-RPC method, e.g. `tools/call`.
    pub method: String,
    #[serde(default)]
    pub tool: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct CheckResult {
    pub allowed: bool,
    /// The scope and rule that allowed it, or why it was denied.
    pub explanation: String,
    pub policy_version: u64,
}

/// All scope documents and the policy version (what gateways compile).
#[utoipa::path(get, path = "/api/v1/scopes", tag = "policy",
    responses((status = 200, body = PolicySnapshot), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<impl IntoResponse> {
    Ok(Json(state.registry.policy(&caller).await?))
}

/// One scope document.
#[utoipa::path(get, path = "/api/v1/scopes/{name}", tag = "policy",
    params(("name" = String, Path)),
    responses((status = 200, body = ScopeDocument), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse> {
    let snapshot = state.registry.policy(&caller).await?;
    snapshot
        .documents
        .into_iter()
        .find(|d| d.name() == name)
        .map(Json)
        .ok_or(RegistryError::ScopeNotFound(name))
}

/// Create or replace a scope document (the body's name must match the path).
#[utoipa::path(put, path = "/api/v1/scopes/{name}", tag = "policy",
    params(("name" = String, Path)), request_body = ScopeDocument,
    responses((status = 200, body = PolicyVersion), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn put(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<impl IntoResponse> {
    let (doc, _notes) = ScopeDocument::from_value(&body)?;
    if doc.name() != name {
        return Err(mcpgw_core::validate::FieldError::new(
            "name",
            format!("{:?} differs from the path's {name:?}", doc.name()),
        )
        .into());
    }
    let version = state.registry.put_scope(&caller, &ctx.0, doc).await?;
    Ok(Json(PolicyVersion { version }))
}

/// Delete a scope document.
#[utoipa::path(delete, path = "/api/v1/scopes/{name}", tag = "policy",
    params(("name" = String, Path)),
    responses((status = 200, body = PolicyVersion), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse> {
    let version = state.registry.delete_scope(&caller, &ctx.0, &name).await?;
    Ok(Json(PolicyVersion { version }))
}

/// Import scope documents from a JSON or YAML file: one document, a list, JSON lines, or the
/// legacy `scopes.yml` mapping. `mode=merge` (default) upserts; `mode=replace` makes the file
/// the whole policy. All or nothing.
#[utoipa::path(post, path = "/api/v1/scopes/import", tag = "policy",
    params(("mode" = Option<String>, Query, description = "merge (default) or replace")),
    request_body(content = String, content_type = "application/yaml",
        description = "The file; Content-Type application/json or application/yaml"),
    responses((status = 200, body = ImportResult), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn import(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse> {
    let p = Params::parse(query.as_deref(), &["mode"])?;
    let replace_all = match p.text("mode").unwrap_or("merge") {
        "merge" => false,
        "replace" => true,
        other => {
            return Err(RegistryError::Input(InputError::InvalidQuery(
                mcpgw_core::validate::FieldError::new(
                    "mode",
                    format!("must be merge or replace (got {other:?})"),
                ),
            )));
        }
    };
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let text = std::str::from_utf8(&body).map_err(|_| InputError::MalformedJson {
        field: None,
        detail: "the file is not UTF-8 text".to_owned(),
    })?;
    let parsed = match mime.as_str() {
        "application/json" => policy::parse_json(text),
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => {
            policy::parse_yaml(text)
        }
        _ => return Err(InputError::UnsupportedMediaType.into()),
    }
    .map_err(|e| match e {
        policy::PolicyError::Invalid(field) => RegistryError::Invalid(field),
        policy::PolicyError::TooLarge { max, .. } => InputError::PayloadTooLarge(max).into(),
        policy::PolicyError::Syntax {
            format: policy::SourceFormat::Json,
            message,
        } => InputError::MalformedJson {
            field: None,
            detail: format!("the file is not valid JSON: {message}"),
        }
        .into(),
        policy::PolicyError::Syntax {
            format: policy::SourceFormat::Yaml,
            message,
        } => RegistryError::MalformedYaml(format!("the file is not valid YAML: {message}")),
    })?;
    let version = state
        .registry
        .import_scopes(&caller, &ctx.0, &parsed.documents, replace_all)
        .await?;
    Ok((
        StatusCode::OK,
        Json(ImportResult {
            version,
            imported: parsed.documents.len(),
            notes: parsed.notes,
        }),
    ))
}

/// "Can this identity call this tool on this server?" against the stored policy.
#[utoipa::path(post, path = "/api/v1/policy/check", tag = "policy", request_body = CheckRequest,
    responses((status = 200, body = CheckResult), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn check(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<CheckRequest>,
) -> Result<impl IntoResponse> {
    caller.require(mcpgw_core::auth::Permission::PoliciesRead)?;
    let compiled = state.registry.compiled_policy().await?;
    let identity = Identity::new(body.groups, body.scopes);
    let decision: Decision =
        compiled.decide(&identity, &body.server, &body.method, body.tool.as_deref());
    Ok(Json(CheckResult {
        allowed: decision.allowed,
        explanation: decision.to_string(),
        policy_version: compiled.version(),
    }))
}
