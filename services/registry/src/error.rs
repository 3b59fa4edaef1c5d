//! Every error the registry can answer with, mapped to the HTTP envelope in one place.
//!
//! The match in [`RegistryError::to_api`] is exhaustive on purpose: a new variant does not
//! compile until someone decides its status and code (and documents it in `docs/API.md`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mcpgw_core::auth::MissingPermission;
use mcpgw_core::domain::Lifecycle;
use mcpgw_core::egress::EgressError;
use mcpgw_core::error::ApiError;
use mcpgw_core::input::InputError;
use mcpgw_core::secrets::SecretError;
use mcpgw_core::validate::FieldError;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error(transparent)]
    Forbidden(#[from] MissingPermission),
    #[error("{0}")]
    ForbiddenGrant(String),
    /// A change made with the console's session cookie without its CSRF token, or from
    /// another origin.
    #[error("{0}")]
    CsrfRejected(String),
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("egress check failed for {field}: {error}")]
    Egress { field: String, error: EgressError },
    #[error("no server is registered at path {0:?}")]
    ServerNotFound(String),
    #[error("a server is already registered at path {0:?}")]
    ServerExists(String),
    /// A write to the registry's own record by a caller without `servers:system`.
    #[error("the server at path {0:?} is the registry's own record")]
    SystemOwned(String),
    #[error("the server changed since revision {expected}; it is now at revision {current}")]
    StaleRevision { expected: u64, current: u64 },
    #[error("cannot move from {from} to {to}")]
    InvalidTransition {
        from: Lifecycle,
        to: Lifecycle,
        allowed: Vec<Lifecycle>,
    },
    #[error("cannot delete a server in {0}")]
    DeleteBlocked(Lifecycle),
    /// An approval named a hash that is not the tool's current one (`field`: where).
    #[error("{detail}")]
    ToolHashMismatch { field: String, detail: String },
    #[error("no agent is registered at path {0:?}")]
    AgentNotFound(String),
    #[error("an agent is already registered at path {0:?}")]
    AgentExists(String),
    #[error("cannot delete an agent in {0}")]
    AgentDeleteBlocked(Lifecycle),
    /// Registration by URL: the card could not be fetched or is not a valid card.
    #[error("{field}: {detail}")]
    AgentCardUnusable { field: String, detail: String },
    #[error("no active API key with id {0:?}")]
    ApiKeyNotFound(String),
    #[error("no scope document is named {0:?}")]
    ScopeNotFound(String),
    #[error("{0}")]
    MalformedYaml(String),
    #[error("{0}")]
    InvalidToken(String),
    /// A body or query the API could not read (`mcpgw_core::input`, mapped there).
    #[error(transparent)]
    Input(#[from] InputError),
    /// A registered server did not answer as MCP requires (tool discovery).
    #[error("the server did not answer: {0}")]
    Upstream(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl RegistryError {
    pub fn to_api(&self) -> ApiError {
        use RegistryError as E;
        match self {
            E::Unauthenticated(detail) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail.clone())
            }
            E::Forbidden(missing) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", missing.to_string())
            }
            E::ForbiddenGrant(detail) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail.clone())
            }
            E::CsrfRejected(detail) => {
                ApiError::new(StatusCode::FORBIDDEN, "csrf_rejected", detail.clone())
            }
            E::Invalid(field) => {
                ApiError::invalid_field(field.field.clone(), field.message.clone())
            }
            E::Egress { field, error } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "egress_denied",
                format!("{field}: {error}"),
            )
            .with_field(field.clone()),
            E::ServerNotFound(_) => ApiError::not_found("server_not_found", self.to_string()),
            E::ServerExists(_) => ApiError::new(
                StatusCode::CONFLICT,
                "server_exists",
                format!("{self}; choose another path or update the existing server"),
            )
            .with_field("path"),
            E::SystemOwned(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{self}: the registry keeps it up to date itself, and only a caller with the permission `servers:system` may change it"
                ),
            ),
            E::StaleRevision { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "revision_conflict",
                format!("{self}; read it again and retry your change against the new revision"),
            ),
            E::InvalidTransition { allowed, .. } => {
                let allowed: Vec<&str> = allowed.iter().map(|l| l.as_str()).collect();
                ApiError::new(
                    StatusCode::CONFLICT,
                    "invalid_transition",
                    format!(
                        "{self}; allowed from here: {}",
                        if allowed.is_empty() {
                            "none (final state)".to_owned()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                )
                .with_field("to")
            }
            E::DeleteBlocked(state) => ApiError::new(
                StatusCode::CONFLICT,
                "server_in_use",
                format!(
                    "cannot delete a server in {state}: deprecate it, then retire it (the lifecycle keeps the trail), or delete it while it is a draft"
                ),
            ),
            E::ToolHashMismatch { field, detail } => ApiError::new(
                StatusCode::CONFLICT,
                "tool_hash_mismatch",
                format!("{detail}; read the server's tools again, review them, and approve the new hashes"),
            )
            .with_field(field.clone()),
            E::AgentNotFound(_) => ApiError::not_found("agent_not_found", self.to_string()),
            E::AgentExists(_) => ApiError::new(
                StatusCode::CONFLICT,
                "agent_exists",
                format!("{self}; choose another path or update the existing agent"),
            )
            .with_field("path"),
            E::AgentDeleteBlocked(state) => ApiError::new(
                StatusCode::CONFLICT,
                "agent_in_use",
                format!(
                    "cannot delete an agent in {state}: deprecate it, then retire it, or delete it while it is a draft"
                ),
            ),
            E::AgentCardUnusable { field, .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "agent_card_unusable",
                self.to_string(),
            )
            .with_field(field.clone()),
            E::ApiKeyNotFound(_) => ApiError::not_found("api_key_not_found", self.to_string()),
            E::ScopeNotFound(_) => ApiError::not_found("scope_not_found", self.to_string()),
            E::MalformedYaml(detail) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_yaml", detail.clone())
            }
            E::InvalidToken(detail) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", detail.clone())
            }
            E::Input(e) => e.to_api(),
            E::Upstream(detail) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("the server did not answer: {detail}"),
            ),
            E::Store(StoreError::Unavailable(msg)) => {
                tracing::error!(error = %msg, "store unavailable");
                ApiError::unavailable("the registry's database is unreachable; retry shortly")
            }
            E::Store(StoreError::NotFound) => ApiError::not_found("not_found", "not found"),
            E::Store(StoreError::Conflict(msg)) => {
                tracing::warn!(error = %msg, "unexpected uniqueness conflict");
                ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "the resource already exists; retry the request",
                )
            }
            E::Store(StoreError::StaleRevision { current }) => ApiError::new(
                StatusCode::CONFLICT,
                "revision_conflict",
                format!("the resource is now at revision {current}; read it again and retry"),
            ),
            E::Store(StoreError::Internal(msg)) => {
                tracing::error!(error = %msg, "store error");
                ApiError::internal()
            }
            E::Secret(e) => {
                tracing::error!(error = %e, "secret handling failed");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let api = self.to_api();
        let mut response = api.into_response();
        if matches!(
            self,
            RegistryError::Unauthenticated(_) | RegistryError::InvalidToken(_)
        ) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"mcpgw-registry\""),
            );
        }
        response
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
