//! `/api/v1/api-keys` and `/api/v1/me`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use mcpgw_core::auth::{Permission, Principal, Role};
use mcpgw_core::error::ErrorBody;
use mcpgw_core::time::Timestamp;
use mcpgw_core::validate::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Ctx;
use super::extract::{ApiJson, ApiPath};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::Result;
use crate::store::ApiKeyRecord;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub name: String,
    /// Either a role …
    #[serde(default)]
    pub role: Option<Role>,
    /// … or explicit permissions (not both).
    #[serde(default)]
    pub permissions: Option<Vec<Permission>>,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct CreatedKey {
    /// The key itself. Shown once; only a hash is stored.
    pub key: String,
    #[serde(flatten)]
    pub record: ApiKeyRecord,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    pub items: Vec<ApiKeyRecord>,
}

/// Mint an API key with at most your own permissions.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = CreateKeyRequest,
    responses((status = 201, body = CreatedKey), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiJson(body): ApiJson<CreateKeyRequest>,
) -> Result<impl IntoResponse> {
    let permissions = match (body.role, body.permissions) {
        (Some(role), None) => role.permissions().into_iter().collect(),
        (None, Some(list)) => list,
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                "permissions",
                "give either role or permissions, not both",
            )
            .into());
        }
        (None, None) => {
            return Err(FieldError::new("role", "give a role or a list of permissions").into());
        }
    };
    let minted = state
        .registry
        .create_api_key(&caller, &ctx.0, &body.name, permissions, body.expires_at)
        .await?;
    let mut record = minted.record;
    record.secret_hash.clear();
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: minted.plain,
            record,
        }),
    ))
}

/// List API keys (without secrets).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys",
    responses((status = 200, body = KeyList), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<impl IntoResponse> {
    let mut items = state.registry.list_api_keys(&caller).await?;
    for k in &mut items {
        k.secret_hash.clear();
    }
    Ok(Json(KeyList { items }))
}

/// Revoke an API key; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ctx: Ctx,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse> {
    state.registry.revoke_api_key(&caller, &ctx.0, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who you are and what you may do.
#[utoipa::path(get, path = "/api/v1/me", tag = "api-keys",
    responses((status = 200, body = Principal), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn me(Caller(caller): Caller) -> Json<Principal> {
    Json(caller)
}
