//! `POST /oauth/register` (Dynamic Client Registration, RFC 7591) and the administrators'
//! view of registered clients (`GET /api/v1/oauth/clients`, `DELETE /api/v1/oauth/clients/
//! {client_id}`). What a request may register is `crate::registration`'s policy.
//!
//! Rules of this endpoint:
//! - Open, like RFC 7591 §3 allows without an initial access token: that is what lets an MCP
//!   client connect with nothing but a URL. What stops abuse is the policy (public clients,
//!   the redirect URIs allowed) and the limits, checked in the same transaction as the insert:
//!   `max_clients` at once, `registrations_per_hour` from everyone and
//!   `registrations_per_hour_per_address` from one client address. The address is the TCP
//!   peer unless `login.trusted_proxy_hops` says how many proxies to trust in X-Forwarded-For:
//!   a client-sent header is never believed by default.
//! - Errors are RFC 7591 §3.2.2 bodies (`{"error", "error_description"}`): 400
//!   `invalid_redirect_uri` or `invalid_client_metadata`; 429 `temporarily_unavailable` past
//!   a limit (with `Retry-After` for the rate limits). Answers carry `Cache-Control: no-store`.
//! - With `oauth.registration.enabled = false` the endpoint answers 404 and the metadata does
//!   not list it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use mcpgw_core::error::ErrorBody;
use mcpgw_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Admin, ApiPath, Ctx, Peer, client_address, params};
use super::oauth::OAuthErrorBody;
use crate::app::AppState;
use crate::error::AuthError;
use crate::registration::{ClientMetadata, RegistrationError, new_client_id, parse_request};
use crate::store::{
    AuditRecord, RegisteredClient, RegistrationLimits, RegistrationOutcome, StoreError,
};

/// Where clients register (listed in the authorization server metadata).
pub const REGISTER_PATH: &str = "/oauth/register";

/// A registration response (RFC 7591 §3.2.1): the client's id and what was registered.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RegistrationResponse {
    pub client_id: String,
    /// Unix seconds.
    pub client_id_issued_at: i64,
    /// `none`: public client, PKCE.
    pub token_endpoint_auth_method: String,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    #[serde(flatten)]
    pub metadata: ClientMetadata,
}

fn error(status: StatusCode, error: &str, description: String) -> Response {
    let mut response = (
        status,
        Json(OAuthErrorBody {
            error: error.to_owned(),
            error_description: description,
        }),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Register an OAuth client (RFC 7591): public (no secret), authorization code with PKCE.
#[utoipa::path(post, path = "/oauth/register", tag = "oauth",
    request_body(content = ClientMetadata, description = "RFC 7591 client metadata, at most 8 KiB; token_endpoint_auth_method must be none if given"),
    responses(
        (status = 201, body = RegistrationResponse),
        (status = 400, body = OAuthErrorBody, description = "invalid_redirect_uri or invalid_client_metadata"),
        (status = 404, body = OAuthErrorBody, description = "registration is disabled (oauth.registration.enabled)"),
        (status = 429, body = OAuthErrorBody, description = "temporarily_unavailable: a registration limit is reached (Retry-After)")))]
pub async fn register(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Peer(peer): Peer,
    body: Bytes,
) -> Response {
    let policy = &state.config.oauth.registration;
    if !policy.enabled {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "client registration is disabled on this server (oauth.registration.enabled)".into(),
        );
    }
    let metadata = match parse_request(&body, &policy.custom_schemes) {
        Ok(m) => m,
        Err(RegistrationError {
            error: e,
            description,
        }) => {
            tracing::info!(
                oauth.error = e,
                "client registration refused: {description}"
            );
            return error(StatusCode::BAD_REQUEST, e, description);
        }
    };
    let from = client_address(&headers, peer, state.config.login.trusted_proxy_hops);
    let now = Timestamp::now();
    let client = RegisteredClient {
        client_id: new_client_id(),
        metadata,
        registered_from: from,
        created_at: now,
        last_used_at: now,
    };
    let limits = RegistrationLimits {
        max_clients: policy.max_clients,
        max_recent: policy.registrations_per_hour,
        max_recent_per_address: policy.registrations_per_hour_per_address,
        since: Timestamp::from_datetime(now.as_datetime() - Duration::hours(1)),
    };
    let audit = AuditRecord::new(
        "system:registration",
        ctx.id(),
        "oauth_client.register",
        "oauth_client",
        &client.client_id,
        serde_json::json!({
            "client_name": client.metadata.client_name,
            "redirect_uris": client.metadata.redirect_uris,
            "registered_from": client.registered_from,
        }),
    );
    match state
        .store
        .insert_oauth_client(&client, limits, &audit)
        .await
    {
        Ok(RegistrationOutcome::Recorded) => {}
        Ok(RegistrationOutcome::Full) => {
            tracing::warn!("client registration refused: oauth.registration.max_clients reached");
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                "this server has as many registered clients as it allows; retry later".into(),
            );
        }
        Ok(RegistrationOutcome::Limited { oldest }) => {
            let free_at = oldest.as_datetime() + Duration::hours(1);
            let wait = (free_at - now.as_datetime()).num_seconds().max(1);
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                format!("too many client registrations; retry in {wait} s"),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            return response;
        }
        Err(e) => return AuthError::from(e).into_response(),
    }
    tracing::info!(oauth.client_id = %client.client_id, "OAuth client registered");
    let mut response = (
        StatusCode::CREATED,
        Json(RegistrationResponse {
            client_id: client.client_id,
            client_id_issued_at: now.as_datetime().timestamp(),
            token_endpoint_auth_method: "none".to_owned(),
            grant_types: crate::refresh::grant_types(&state.config),
            response_types: vec!["code".to_owned()],
            metadata: client.metadata,
        }),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClientList {
    /// Newest first.
    pub items: Vec<RegisteredClient>,
}

/// The dynamically registered OAuth clients (administrators).
#[utoipa::path(get, path = "/api/v1/oauth/clients", tag = "oauth",
    params(("limit" = Option<u32>, Query, description = "1-1000, default 100")),
    responses((status = 200, body = ClientList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("session" = [])))]
pub async fn list_clients(
    State(state): State<AppState>,
    _admin: Admin,
    RawQuery(query): RawQuery,
) -> Result<Json<ClientList>, AuthError> {
    let p = params(query.as_deref(), &["limit"])?;
    let limit = p
        .parsed("limit", |v| match v.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err("must be a number between 1 and 1000".to_owned()),
        })?
        .unwrap_or(100);
    Ok(Json(ClientList {
        items: state.store.list_oauth_clients(limit).await?,
    }))
}

/// Revoke a registered client: it can start no new sign-in and redeem no code. Tokens already
/// issued to it stay valid until they expire (revoke them on the Tokens page).
#[utoipa::path(delete, path = "/api/v1/oauth/clients/{client_id}", tag = "oauth",
    params(("client_id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "oauth_client_not_found")),
    security(("session" = [])))]
pub async fn delete_client(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ctx: Ctx,
    ApiPath(client_id): ApiPath<String>,
) -> Result<StatusCode, AuthError> {
    let audit = AuditRecord::new(
        &admin.record.subject,
        ctx.id(),
        "oauth_client.revoke",
        "oauth_client",
        &client_id,
        serde_json::json!({}),
    );
    match state.store.delete_oauth_client(&client_id, &audit).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::NotFound) => Err(AuthError::ClientNotFound(client_id)),
        Err(e) => Err(e.into()),
    }
}
