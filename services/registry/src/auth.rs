//! Turning a request into a [`Principal`].
//!
//! Authenticators form a chain; the first that recognises the credential decides. Today the
//! chain holds API keys; the auth issue adds JWTs (with IdP groups → scopes → permissions) by
//! adding an authenticator, without touching a handler. Client-supplied identity headers
//! (`X-User`, `X-Groups`, …) are never read; the one identity header there is, a gateway's
//! caller assertion, counts only beside a credential holding `gateway:delegate`.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use mcpgw_core::auth::{
    CALLER_ASSERTION_HEADER, CallerAssertion, Permission, Principal, PrincipalKind,
};
use mcpgw_core::policy::{Identity, UiGrant};

use crate::app::AppState;
use crate::error::RegistryError;
use crate::keys;
use crate::service::Registry;

/// One way of recognising a caller.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// `Ok(None)`: not my kind of credential; `Err`: mine, and refused.
    async fn authenticate(&self, credential: &str) -> Result<Option<Principal>, RegistryError>;
}

/// API keys stored in the registry.
pub struct ApiKeyAuthenticator {
    pub registry: Arc<Registry>,
}

#[async_trait]
impl Authenticator for ApiKeyAuthenticator {
    async fn authenticate(&self, credential: &str) -> Result<Option<Principal>, RegistryError> {
        if !credential.starts_with(keys::PREFIX) {
            return Ok(None);
        }
        self.registry.authenticate_key(credential).await.map(Some)
    }
}

/// Bearer JWTs from trusted issuers (Keycloak realms, the auth-server, any OIDC IdP). The
/// token's groups and scopes select scope documents; their `ui_permissions` granted on `all`
/// become the principal's permissions (see `Permission::ui_actions`).
pub struct JwtAuthenticator {
    pub validator: Arc<mcpgw_core::token::TokenValidator>,
    pub registry: Arc<Registry>,
}

#[async_trait]
impl Authenticator for JwtAuthenticator {
    async fn authenticate(&self, credential: &str) -> Result<Option<Principal>, RegistryError> {
        if credential.starts_with(keys::PREFIX) || credential.split('.').count() != 3 {
            return Ok(None);
        }
        let token = self
            .validator
            .validate(credential)
            .await
            .map_err(|e| RegistryError::InvalidToken(e.to_string()))?;
        principal_for(
            &self.registry,
            &token.issuer,
            &token.subject,
            token.username.as_deref(),
            token.client_id.as_deref(),
            Identity::new(token.groups.clone(), token.scopes.clone()),
        )
        .await
        .map(Some)
    }
}

/// The principal of a caller known by token claims (verified here, or by a gateway that
/// asserts them): its groups and scopes select scope documents, whose `ui_permissions` become
/// its permissions. Its subject is `jwt:<issuer>#<sub>`: a subject means something only
/// within its issuer, so equal `sub`s of two issuers are two principals.
pub async fn principal_for(
    registry: &Registry,
    issuer: &str,
    subject: &str,
    username: Option<&str>,
    client_id: Option<&str>,
    identity: Identity,
) -> Result<Principal, RegistryError> {
    let policy = registry.compiled_policy().await?;
    let caller = policy.caller(&identity);
    // A permission is held everywhere when one of its UI actions is granted on `all`, else
    // for the servers its actions name.
    let mut permissions = std::collections::BTreeSet::new();
    let mut scoped = std::collections::BTreeMap::new();
    for p in Permission::ALL {
        let mut paths = std::collections::BTreeSet::new();
        let mut everywhere = false;
        for action in p.ui_actions() {
            match caller.ui_grant(action) {
                UiGrant::All => everywhere = true,
                UiGrant::Only(set) => paths.extend(set),
            }
        }
        if everywhere {
            permissions.insert(p);
        } else if !paths.is_empty() {
            scoped.insert(p, paths);
        }
    }
    let (kind, display_name) = match username {
        Some(name) => (PrincipalKind::User, name.to_owned()),
        None => (
            PrincipalKind::Service,
            client_id.unwrap_or(subject).to_owned(),
        ),
    };
    Ok(Principal {
        subject: format!("jwt:{issuer}#{subject}"),
        display_name,
        kind,
        permissions,
        scoped,
        identity: Some(identity),
    })
}

/// The credential a request presents: `Authorization: Bearer …` or `X-API-Key: …`.
fn credential(headers: &HeaderMap) -> Result<Option<String>, RegistryError> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let text = value.to_str().unwrap_or("");
        let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(RegistryError::Unauthenticated(
                "the Authorization header must be `Bearer <token>`".to_owned(),
            ));
        }
        return Ok(Some(token.trim().to_owned()));
    }
    if let Some(value) = headers.get("x-api-key") {
        return Ok(Some(value.to_str().unwrap_or("").trim().to_owned()));
    }
    Ok(None)
}

pub struct AuthChain {
    pub authenticators: Vec<Box<dyn Authenticator>>,
    /// For turning a gateway's caller assertion into a principal.
    pub registry: Arc<Registry>,
    /// The console's sessions, when people can sign in to it: its cookie then counts as the
    /// signed-in user's access token (with a CSRF token on changes).
    pub console: Option<Arc<crate::console::session::Sessions>>,
}

impl AuthChain {
    /// With a caller assertion (`x-mcpgw-caller`), the request runs as the asserted caller,
    /// mapped by the policy exactly like a token the registry verifies, but only when the
    /// credential itself holds `gateway:delegate` (a gateway's). Anyone else sending the
    /// header is refused, so a forged identity never goes unnoticed.
    async fn delegated(
        &self,
        credential: Principal,
        headers: &HeaderMap,
    ) -> Result<Principal, RegistryError> {
        let Some(value) = headers.get(CALLER_ASSERTION_HEADER) else {
            return Ok(credential);
        };
        credential
            .require(Permission::GatewayDelegate)
            .map_err(|_| {
                RegistryError::ForbiddenGrant(format!(
                    "the {CALLER_ASSERTION_HEADER} header is accepted only from a gateway credential with the permission `gateway:delegate`; remove it"
                ))
            })?;
        let asserted = CallerAssertion::decode(value.to_str().unwrap_or("\u{0}"))?;
        let identity = Identity::new(asserted.groups, asserted.scopes);
        let principal = principal_for(
            &self.registry,
            &asserted.issuer,
            &asserted.subject,
            asserted.username.as_deref(),
            asserted.client_id.as_deref(),
            identity,
        )
        .await?;
        tracing::debug!(
            gateway = %credential.subject,
            caller = %principal.subject,
            issuer = %asserted.issuer,
            "request on behalf of a gateway's caller"
        );
        Ok(principal)
    }

    /// The caller of an HTTP request: an explicit credential (`Authorization`, `X-API-Key`)
    /// if one is sent, else the console's session cookie, whose changes must carry the
    /// session's CSRF token.
    pub async fn identify_request(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Option<Principal>, RegistryError> {
        if let Some(principal) = self.identify(headers).await? {
            return Ok(Some(principal));
        }
        let Some(sessions) = &self.console else {
            return Ok(None);
        };
        let Some(session) = sessions.read(headers) else {
            return Ok(None);
        };
        sessions.check_change(method, headers, &session)?;
        for a in &self.authenticators {
            if let Some(p) = a.authenticate(&session.token).await? {
                return Ok(Some(p));
            }
        }
        Err(RegistryError::InvalidToken(
            "the console session's token is not accepted any more; sign in again".to_owned(),
        ))
    }

    /// The caller named by an explicit credential (no cookies: MCP clients and machines).
    pub async fn identify(&self, headers: &HeaderMap) -> Result<Option<Principal>, RegistryError> {
        let Some(credential) = credential(headers)? else {
            return Ok(None);
        };
        for a in &self.authenticators {
            if let Some(p) = a.authenticate(&credential).await? {
                return self.delegated(p, headers).await.map(Some);
            }
        }
        Err(RegistryError::Unauthenticated(
            "the credential is not recognised: send an mcpgw API key or an access token from a trusted issuer as `Authorization: Bearer …`".to_owned(),
        ))
    }
}

/// An authenticated caller; rejects the request with 401 otherwise.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = RegistryError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match state
            .auth
            .identify_request(&parts.method, &parts.headers)
            .await?
        {
            Some(p) => Ok(Caller(p)),
            None => Err(RegistryError::Unauthenticated(
                "this endpoint needs credentials: send `Authorization: Bearer <API key>`"
                    .to_owned(),
            )),
        }
    }
}

/// A caller if credentials were sent; bad credentials are still refused.
pub struct MaybeCaller(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = RegistryError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(MaybeCaller(
            state
                .auth
                .identify_request(&parts.method, &parts.headers)
                .await?,
        ))
    }
}
