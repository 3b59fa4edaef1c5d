//! Every error the auth-server's API can answer with, mapped to the HTTP envelope in one place.
//!
//! The match in [`AuthError::to_api`] is exhaustive on purpose: a new variant does not compile
//! until someone decides its status and code (and documents it in `docs/API.md`). The
//! `WWW-Authenticate` challenges of RFC 6750 and RFC 9728 are added in
//! [`AuthError::into_response`]. The HTML login pages answer in HTML and do not come here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpgw_core::error::ApiError;
use mcpgw_core::input::InputError;
use mcpgw_core::secrets::SecretError;
use mcpgw_core::signing::SigningError;
use mcpgw_core::validate::FieldError;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No session, or it ended.
    #[error("{0}")]
    Unauthenticated(String),
    /// A cookie-authenticated mutation without the session's CSRF token.
    #[error("the X-CSRF-Token header is missing or does not match this session's token")]
    CsrfFailed,
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The user does not hold a scope they asked a token for.
    #[error("you do not hold the scope {scope:?}")]
    ScopeNotGranted { field: String, scope: String },
    #[error("too many requests; retry in {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    #[error("no active token with id {0:?}")]
    TokenNotFound(String),
    #[error("no registered OAuth client with id {0:?}")]
    ClientNotFound(String),
    #[error("you have not allowed the client {0:?}")]
    ConsentNotFound(String),
    /// A bearer token that is missing, malformed, expired, revoked or not for us (`/validate`).
    #[error("{detail}")]
    InvalidToken {
        detail: String,
        /// Whether a token was presented (RFC 6750: no `error` attribute when none was).
        presented: bool,
        /// The `resource_metadata` URL for the challenge.
        resource_metadata: String,
    },
    /// A valid token without a scope the resource needs (`/validate?scope=`).
    #[error("the token lacks the scope {scope:?}")]
    InsufficientScope {
        scope: String,
        resource_metadata: String,
    },
    /// A body or query the API could not read (`mcpgw_core::input`, mapped there).
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// Ours, already described in the log by whoever raised it.
    #[error("internal: {0}")]
    Internal(String),
}

impl AuthError {
    pub fn to_api(&self) -> ApiError {
        use AuthError as E;
        match self {
            E::Unauthenticated(detail) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail.clone())
            }
            E::CsrfFailed => ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                format!(
                    "{self}; read the token from GET /api/v1/csrf (or /api/v1/me) and send it back"
                ),
            )
            .with_field("X-CSRF-Token"),
            E::Forbidden(detail) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail.clone())
            }
            E::Invalid(field) => {
                ApiError::invalid_field(field.field.clone(), field.message.clone())
            }
            E::ScopeNotGranted { field, scope } => ApiError::new(
                StatusCode::FORBIDDEN,
                "scope_not_granted",
                format!(
                    "{field}: you do not hold the scope {scope:?}; a token can carry only scopes your groups grant (see GET /api/v1/me)"
                ),
            )
            .with_field(field.clone()),
            E::RateLimited {
                retry_after_seconds,
            } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; retry in {retry_after_seconds} s"),
            ),
            E::TokenNotFound(_) => ApiError::not_found("token_not_found", self.to_string()),
            E::ClientNotFound(_) => ApiError::not_found("oauth_client_not_found", self.to_string()),
            E::ConsentNotFound(_) => ApiError::not_found("oauth_consent_not_found", self.to_string()),
            E::InvalidToken { detail, .. } => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", detail.clone())
            }
            E::InsufficientScope { scope, .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("the token lacks the scope {scope:?} this resource needs"),
            ),
            E::Input(e) => e.to_api(),
            E::Store(StoreError::Unavailable(msg)) => {
                tracing::error!(error = %msg, "store unavailable");
                ApiError::unavailable("the auth-server's database is unreachable; retry shortly")
            }
            E::Store(StoreError::NotFound) => ApiError::not_found("not_found", "not found"),
            E::Store(StoreError::Conflict(msg)) => {
                tracing::warn!(error = %msg, "unexpected uniqueness conflict");
                ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "the resource changed at the same time; retry the request",
                )
            }
            E::Store(StoreError::Internal(msg)) => {
                tracing::error!(error = %msg, "store error");
                ApiError::internal()
            }
            E::Secret(e) => {
                tracing::error!(error = %e, "secret handling failed");
                ApiError::internal()
            }
            E::Signing(e) => {
                tracing::error!(error = %e, "signing failed");
                ApiError::internal()
            }
            E::Internal(msg) => {
                tracing::error!(error = %msg, "internal error");
                ApiError::internal()
            }
        }
    }

    /// The `WWW-Authenticate` challenge this error carries, if any.
    fn challenge(&self) -> Option<String> {
        match self {
            AuthError::InvalidToken {
                presented,
                resource_metadata,
                detail,
            } => Some(if *presented {
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\", resource_metadata=\"{resource_metadata}\"",
                    quoted_safe(detail)
                )
            } else {
                format!("Bearer resource_metadata=\"{resource_metadata}\"")
            }),
            AuthError::InsufficientScope {
                scope,
                resource_metadata,
            } => Some(format!(
                "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{resource_metadata}\"",
                quoted_safe(scope)
            )),
            _ => None,
        }
    }
}

/// Text safe inside a quoted-string of a header: printable ASCII without `"` and `\`.
fn quoted_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let mut response = self.to_api().into_response();
        if let Some(challenge) = self.challenge()
            && let Ok(value) = HeaderValue::from_str(&challenge)
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        if let AuthError::RateLimited {
            retry_after_seconds,
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
        }
        response
    }
}

pub type Result<T, E = AuthError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc_6750_and_rfc_9728() {
        let meta = "https://auth.example.com/.well-known/oauth-protected-resource".to_owned();
        let none = AuthError::InvalidToken {
            detail: "no token".into(),
            presented: false,
            resource_metadata: meta.clone(),
        };
        assert_eq!(
            none.challenge().unwrap(),
            format!("Bearer resource_metadata=\"{meta}\"")
        );
        let bad = AuthError::InvalidToken {
            detail: "the \"token\" has expired".into(),
            presented: true,
            resource_metadata: meta.clone(),
        };
        let c = bad.challenge().unwrap();
        assert!(c.starts_with("Bearer error=\"invalid_token\""), "{c}");
        assert!(c.contains("the ?token? has expired"), "{c}");
        let scope = AuthError::InsufficientScope {
            scope: "mcp:tools".into(),
            resource_metadata: meta,
        };
        assert!(
            scope
                .challenge()
                .unwrap()
                .contains("error=\"insufficient_scope\", scope=\"mcp:tools\"")
        );
        assert_eq!(scope.to_api().status, StatusCode::FORBIDDEN);
    }
}
