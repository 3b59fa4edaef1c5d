//! What a user allowed dynamically registered clients (the page of `/oauth/authorize`):
//! `GET /api/v1/oauth/consents` lists them, `DELETE /api/v1/oauth/consents/{client_id}`
//! forgets one, so the next sign-in of that client asks again. Only the signed-in user's own,
//! through the session (the CSRF rule of `extract::Session` applies to the DELETE). Forgetting
//! also ends the user's sign-ins of that client: their refresh tokens are deleted and their
//! access tokens revoked (`crate::refresh`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mcpgw_core::error::ErrorBody;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiPath, Ctx, Session};
use crate::app::AppState;
use crate::error::AuthError;
use crate::store::{AuditRecord, Consent, StoreError};

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ConsentList {
    /// Newest first.
    pub items: Vec<Consent>,
}

/// The clients you allowed, with the scopes and resource of that sign-in.
#[utoipa::path(get, path = "/api/v1/oauth/consents", tag = "oauth",
    responses((status = 200, body = ConsentList), (status = 401, body = ErrorBody)),
    security(("session" = [])))]
pub async fn list(
    State(state): State<AppState>,
    session: Session,
) -> Result<Json<ConsentList>, AuthError> {
    Ok(Json(ConsentList {
        items: state.store.list_consents(&session.record.subject).await?,
    }))
}

/// Forget that you allowed a client: its next sign-in asks again.
#[utoipa::path(delete, path = "/api/v1/oauth/consents/{client_id}", tag = "oauth",
    params(("client_id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "oauth_consent_not_found")),
    security(("session" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    session: Session,
    ctx: Ctx,
    ApiPath(client_id): ApiPath<String>,
) -> Result<StatusCode, AuthError> {
    let subject = &session.record.subject;
    let audit = AuditRecord::new(
        subject,
        ctx.id(),
        "oauth_consent.revoke",
        "oauth_client",
        &client_id,
        serde_json::json!({}),
    );
    match state
        .store
        .delete_consent(subject, &client_id, &audit)
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::NotFound) => Err(AuthError::ConsentNotFound(client_id)),
        Err(e) => Err(e.into()),
    }
}
