//! `/api/v1/me`, `/api/v1/csrf`, and the administrators' session and audit endpoints.

use axum::Json;
use axum::extract::{RawQuery, State};
use mcpgw_core::error::ErrorBody;
use mcpgw_core::time::Timestamp;
use mcpgw_core::validate::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Admin, Caller, Ctx, Session, Via, params};
use crate::app::AppState;
use crate::error::{AuthError, Result};
use crate::store::{AuditFilter, AuditRecord};

/// The signed-in user, as the session (or the sign-in token) records them.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// `local:<username>` or `<provider>:<IdP subject>`.
    pub subject: String,
    pub username: String,
    /// `local` or the OIDC provider's id.
    pub provider: String,
    pub groups: Vec<String>,
    /// Scopes you may put in tokens you mint.
    pub scopes: Vec<String>,
    /// Whether you are an administrator of the auth-server.
    pub admin: bool,
    /// The longest lifetime a token you mint may have (`tokens.max_ttl_seconds`), so that a
    /// form (the console's Tokens page) states the same limit the mint enforces.
    pub token_max_ttl_seconds: u64,
    /// With a session: send this as `X-CSRF-Token` on every POST, PUT, PATCH and DELETE.
    /// Absent with a bearer sign-in token (it needs none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// When the session (or the sign-in token) ends.
    pub session_expires_at: Timestamp,
    /// With a bearer sign-in token: the OAuth client it was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// With a bearer sign-in token: its id; `DELETE /api/v1/tokens/{token_id}` signs out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
}

/// Who you are, what you may mint, and (with a session) your CSRF token.
#[utoipa::path(get, path = "/api/v1/me", tag = "session",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "a bearer token that may not manage tokens (an agent token, or a client without manage_tokens)")),
    security(("session" = []), ("bearer" = [])))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Me>> {
    let p = caller.principal;
    // Subjects are `<provider>:<id>` (see `Me::subject`).
    let provider = p.subject.split(':').next().unwrap_or_default().to_owned();
    let (csrf_token, session_expires_at, client_id, token_id) = match caller.via {
        Via::Session(s) => (Some(s.record.csrf_token), s.record.expires_at, None, None),
        Via::SignInToken {
            client_id,
            token_id,
            expires_at,
            ..
        } => {
            let at = chrono::DateTime::from_timestamp(expires_at, 0).ok_or_else(|| {
                AuthError::Internal(format!("a verified token has exp {expires_at}"))
            })?;
            (
                None,
                Timestamp::from_datetime(at),
                Some(client_id),
                Some(token_id),
            )
        }
    };
    Ok(Json(Me {
        admin: state.is_admin(&p.groups),
        token_max_ttl_seconds: state.config.tokens.max_ttl_seconds,
        subject: p.subject,
        username: p.username,
        provider,
        groups: p.groups,
        scopes: p.scopes,
        csrf_token,
        session_expires_at,
        client_id,
        token_id,
    }))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Csrf {
    /// Send this as `X-CSRF-Token` on every POST, PUT, PATCH and DELETE.
    pub csrf_token: String,
}

/// The session's CSRF token.
#[utoipa::path(get, path = "/api/v1/csrf", tag = "session",
    responses((status = 200, body = Csrf), (status = 401, body = ErrorBody)),
    security(("session" = [])))]
pub async fn csrf(session: Session) -> Json<Csrf> {
    Json(Csrf {
        csrf_token: session.record.csrf_token,
    })
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Revoked {
    /// How many sessions ended.
    pub revoked: u64,
}

/// End every session of one user (`?user=` subject or username), or every session.
#[utoipa::path(delete, path = "/api/v1/sessions", tag = "session",
    params(("user" = Option<String>, Query, description = "Subject (local:alice) or username; omit to end every session")),
    responses((status = 200, body = Revoked), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 400, body = ErrorBody)),
    security(("session" = [])))]
pub async fn revoke_sessions(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ctx: Ctx,
    RawQuery(query): RawQuery,
) -> Result<Json<Revoked>> {
    let p = params(query.as_deref(), &["user"])?;
    let user = p.parsed("user", |v| {
        mcpgw_core::validate::text("user", v, 1, 256).map_err(|e| e.message)
    })?;
    let target = user.clone().unwrap_or_else(|| "*".to_owned());
    let audit = AuditRecord::new(
        &admin.record.subject,
        ctx.id(),
        "sessions.revoke",
        "session",
        &target,
        serde_json::json!({"user": user}),
    );
    let revoked = state.store.delete_sessions(user.as_deref(), &audit).await?;
    tracing::info!(
        sessions.revoked = revoked,
        "sessions revoked by an administrator"
    );
    Ok(Json(Revoked { revoked }))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditRecord>,
}

/// The audit trail, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(("actor" = Option<String>, Query), ("action" = Option<String>, Query),
        ("limit" = Option<u32>, Query, description = "1–1000, default 100")),
    responses((status = 200, body = AuditList), (status = 403, body = ErrorBody)),
    security(("session" = [])))]
pub async fn audit(
    State(state): State<AppState>,
    _admin: Admin,
    RawQuery(query): RawQuery,
) -> Result<Json<AuditList>> {
    let p = params(query.as_deref(), &["actor", "action", "limit"])?;
    let limit = p.limit("limit", 1000, 100)?;
    let check = |name: &'static str| {
        move |v: &str| {
            mcpgw_core::validate::text(name, v, 1, 256).map_err(|e: FieldError| e.message)
        }
    };
    let filter = AuditFilter {
        actor: p.parsed("actor", check("actor"))?,
        action: p.parsed("action", check("action"))?,
    };
    let items = state.store.list_audit(&filter, limit).await?;
    Ok(Json(AuditList { items }))
}
