//! Token vending (`/api/v1/tokens`), revocations for gateways, key rotation and the JWKS.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpgw_core::error::ErrorBody;
use mcpgw_core::time::Timestamp;
use mcpgw_core::validate::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Admin, ApiJson, ApiPath, Caller, Ctx, Via, params};
use crate::app::AppState;
use crate::error::{AuthError, Result};
use crate::store::{AuditRecord, StoreError, VendedToken};
use crate::tokens::{MintRequest, mint};

/// A minted token. The token is shown once; the ledger keeps only its id and facts.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct MintedToken {
    /// The JWT to give the agent (`Authorization: Bearer …`).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    #[serde(flatten)]
    pub record: VendedToken,
}

/// Mint a short-lived token for an agent, with scopes you hold.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = MintRequest,
    responses((status = 201, body = MintedToken), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "no or wrong X-CSRF-Token (csrf_failed), or a scope you do not hold (scope_not_granted)"),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody, description = "mint limit reached; see Retry-After")),
    security(("session" = []), ("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ctx: Ctx,
    ApiJson(body): ApiJson<MintRequest>,
) -> Result<impl IntoResponse> {
    let minted = mint(&state, &caller.principal, body, ctx.id()).await?;
    let expires_in = (minted.record.expires_at.as_datetime()
        - minted.record.issued_at.as_datetime())
    .num_seconds()
    .max(0) as u64;
    let mut response = (
        StatusCode::CREATED,
        Json(MintedToken {
            access_token: minted.token,
            token_type: "Bearer".to_owned(),
            expires_in,
            record: minted.record,
        }),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<VendedToken>,
}

/// Your tokens, newest first (the tokens themselves are never stored).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    params(("limit" = Option<u32>, Query, description = "1–500, default 100")),
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<TokenList>> {
    let p = params(query.as_deref(), &["limit"])?;
    let limit = p.limit("limit", 500, 100)?;
    let items = state
        .store
        .list_vended_tokens(&caller.principal.subject, limit)
        .await?;
    Ok(Json(TokenList { items }))
}

/// Revoke one of your tokens (administrators: any token). Gateways learn of it from
/// `/api/v1/revocations`; `/validate` refuses it at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{jti}", tag = "tokens",
    params(("jti" = String, Path, description = "The token's id (jti)")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ctx: Ctx,
    ApiPath(jti): ApiPath<String>,
) -> Result<StatusCode> {
    if uuid::Uuid::parse_str(&jti).is_err() || jti.len() != 36 {
        return Err(
            FieldError::new("jti", "must be a token id (a UUID such as 0190f8c2-…)").into(),
        );
    }
    let not_found = || AuthError::TokenNotFound(jti.clone());
    let token = state
        .store
        .get_vended_token(&jti)
        .await?
        .ok_or_else(not_found)?;
    let who = &caller.principal;
    let admin = state.is_admin(&who.groups);
    if token.subject != who.subject && !admin {
        // Someone else's token looks the same as no token.
        return Err(not_found());
    }
    let client_id = match &caller.via {
        Via::SignInToken { client_id, .. } => Some(client_id.as_str()),
        Via::Session(_) => None,
    };
    let audit = AuditRecord::new(
        &who.subject,
        ctx.id(),
        "token.revoke",
        "vended_token",
        &jti,
        serde_json::json!({"owner": token.subject, "by_admin": token.subject != who.subject, "via_client": client_id}),
    );
    match state
        .store
        .revoke_vended_token(&jti, Timestamp::now(), &audit)
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    }
    if let Via::SignInToken {
        token_id,
        sid: Some(sid),
        ..
    } = &caller.via
        && *token_id == jti
    {
        end_signed_in_session(&state, sid, &who.subject, ctx.id()).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A sign-in token revoking itself is its client signing out: the browser session the token
/// came from ends too, so signing out of the console is one click (the console's own form,
/// CSRF-checked there) instead of a second confirmation here. A session of an OIDC provider is
/// left to `/logout`, which ends it at the provider as well (the browser must go there).
async fn end_signed_in_session(
    state: &AppState,
    sealed_sid: &str,
    subject: &str,
    request_id: Option<&str>,
) -> Result<()> {
    let Some(id_hash) = state
        .keyring
        .open_text::<String>(crate::oauth::SID_CONTEXT, sealed_sid)
    else {
        return Ok(());
    };
    let Some(session) = state.store.get_session(&id_hash).await? else {
        return Ok(());
    };
    if session.subject != subject || session.id_token.is_some() {
        return Ok(());
    }
    let audit = AuditRecord::new(
        subject,
        request_id,
        "logout",
        "session",
        &id_hash[..16],
        serde_json::json!({"provider": session.provider, "via": "sign-in token revoked"}),
    );
    state.store.delete_session(&id_hash, Some(&audit)).await?;
    Ok(())
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Revocation {
    pub jti: String,
    pub revoked_at: Timestamp,
    /// After this the token is expired anyway and leaves the list.
    pub expires_at: Timestamp,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Revocations {
    /// Pass this back as `since` next time (revocations at or after it are listed).
    pub as_of: Timestamp,
    pub items: Vec<Revocation>,
}

/// Revoked tokens that have not expired yet, for gateways to refuse (public: token ids only).
#[utoipa::path(get, path = "/api/v1/revocations", tag = "tokens",
    params(("since" = Option<String>, Query, description = "RFC 3339; only revocations at or after it")),
    responses((status = 200, body = Revocations), (status = 400, body = ErrorBody)))]
pub async fn revocations(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Revocations>> {
    let p = params(query.as_deref(), &["since"])?;
    let since = p.timestamp("since")?;
    let as_of = Timestamp::now();
    let items = state
        .store
        .list_revocations(since, as_of)
        .await?
        .into_iter()
        .filter_map(|t| {
            t.revoked_at.map(|revoked_at| Revocation {
                jti: t.jti,
                revoked_at,
                expires_at: t.expires_at,
            })
        })
        .collect();
    Ok(Json(Revocations { as_of, items }))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct RotatedKey {
    /// The new signing key's id.
    pub kid: String,
    pub generation: i64,
}

/// Replace the signing key now. The previous key stays in the JWKS until its tokens expire.
#[utoipa::path(post, path = "/api/v1/keys/rotate", tag = "keys",
    responses((status = 200, body = RotatedKey), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "another rotation happened at the same time")),
    security(("session" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ctx: Ctx,
) -> Result<Json<RotatedKey>> {
    let record = state.keys.rotate(&admin.record.subject, ctx.id()).await?;
    Ok(Json(RotatedKey {
        kid: record.kid,
        generation: record.generation,
    }))
}

/// The public keys that verify vended tokens: the current key and retired keys whose tokens
/// may still be valid.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys",
    responses((status = 200, description = "JWK Set (RFC 7517)", content_type = "application/json")))]
pub async fn jwks(State(state): State<AppState>) -> Result<Response> {
    let set = state.keys.jwks().await?;
    let mut response = Json(set).into_response();
    // Gateways refetch on an unknown kid; a cache in between must not hide a new key.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Authorization server metadata (RFC 8414): the issuer of our tokens, where their keys are,
/// the authorization code flow, and where MCP clients register (RFC 7591). Served at both
/// well-known names, so validators that discover keys from `openid-configuration` (core's
/// `TokenValidator`) find them.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ServerMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    /// `authorization_code`, and `refresh_token` when `oauth.refresh.enabled` (agent tokens
    /// are vended through the API, not a grant).
    pub grant_types_supported: Vec<String>,
    /// RFC 7009: clients revoke their refresh and access tokens here.
    pub revocation_endpoint: String,
    /// `none`: public clients send their `client_id`.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    pub response_types_supported: Vec<String>,
    /// `S256` only.
    pub code_challenge_methods_supported: Vec<String>,
    /// `none`: registered clients are public (PKCE, no secret).
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 9207: authorization responses carry `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    pub scopes_supported: Vec<String>,
    /// Dynamic Client Registration (RFC 7591); absent when `oauth.registration.enabled` is
    /// false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// Where gateways read revoked token ids (`mcpgw` extension).
    pub mcpgw_revocations_endpoint: String,
}

fn server_metadata(state: &AppState) -> Response {
    let base = &state.public_url;
    let mut response = Json(ServerMetadata {
        issuer: base.to_string(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        authorization_endpoint: format!("{base}/oauth/authorize"),
        token_endpoint: format!("{base}/oauth/token"),
        grant_types_supported: crate::refresh::grant_types(&state.config),
        revocation_endpoint: format!("{base}/oauth/revoke"),
        revocation_endpoint_auth_methods_supported: vec!["none".to_owned()],
        response_types_supported: vec!["code".to_owned()],
        code_challenge_methods_supported: vec![crate::oauth::PKCE_METHOD.to_owned()],
        token_endpoint_auth_methods_supported: vec!["none".to_owned()],
        authorization_response_iss_parameter_supported: true,
        scopes_supported: state.config.all_scopes(),
        registration_endpoint: state
            .config
            .oauth
            .registration
            .enabled
            .then(|| format!("{base}{}", super::registration::REGISTER_PATH)),
        mcpgw_revocations_endpoint: format!("{base}/api/v1/revocations"),
    })
    .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// Authorization server metadata (RFC 8414).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "keys",
    responses((status = 200, body = ServerMetadata)))]
pub async fn oauth_metadata(State(state): State<AppState>) -> Response {
    server_metadata(&state)
}

/// The same document under the OpenID discovery name.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "keys",
    responses((status = 200, body = ServerMetadata)))]
pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    server_metadata(&state)
}
