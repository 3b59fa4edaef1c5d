//! `/validate` for proxies in front of other services (nginx `auth_request`, or any proxy that
//! asks before forwarding), and the OAuth protected resource metadata (RFC 9728).
//!
//! Rules of `/validate`:
//! - The credential is `Authorization: Bearer <token>`, or else the session cookie. A token is
//!   accepted when it is one of ours (verified with our keys, present in the ledger and not
//!   revoked) or comes from a configured trusted issuer (core's `TokenValidator`: JWKS,
//!   issuer, audience per RFC 8707, lifetime, type).
//! - No identity header of the request is read; the `X-Auth-*` headers exist only in answers.
//! - 200 carries `X-Auth-Subject`, `X-Auth-Username`, `X-Auth-Groups` (comma-separated),
//!   `X-Auth-Scopes` (space-separated) and `X-Auth-Issuer`. Each value, and each list item, is
//!   percent-encoded outside `A–Z a–z 0–9 - . _ ~ : @ /`, so no value can break a header or
//!   smuggle a separator.
//! - 401 carries `WWW-Authenticate: Bearer resource_metadata="<public>/.well-known/oauth-protected-resource"`
//!   (with `error="invalid_token"` when a token was sent); 403 (`?scope=` not held) carries
//!   `error="insufficient_scope", scope="…"`.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgw_core::error::ErrorBody;
use mcpgw_core::token::VerifiedToken;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiPath, bearer_token, params, session_of};
use crate::app::AppState;
use crate::error::{AuthError, Result};
use crate::scope::Scope;

/// Who the credential belongs to (also sent as `X-Auth-*` headers).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Validated {
    pub subject: String,
    pub username: Option<String>,
    pub issuer: String,
    pub groups: Vec<String>,
    pub scopes: Vec<String>,
}

/// Percent-encodes everything outside a small safe set.
pub fn header_safe(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The unverified `iss` of a JWT, only to choose how to verify it.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("iss")?.as_str().map(str::to_owned)
}

async fn verify_token(
    state: &AppState,
    token: &str,
) -> Result<std::result::Result<VerifiedToken, String>> {
    if token.len() > 16 * 1024 {
        return Ok(Err("the token is longer than 16 KiB".to_owned()));
    }
    let Some(iss) = unverified_issuer(token) else {
        return Ok(Err("the token is not a JWT with an issuer".to_owned()));
    };
    if iss == *state.public_url {
        return crate::tokens::verify_own(state, token, &[&state.config.tokens.audience]).await;
    }
    match &state.validator {
        Some(v) if v.trusts(&iss) => Ok(v.validate(token).await.map_err(|e| e.to_string())),
        _ => Ok(Err("the token's issuer is not trusted here".to_owned())),
    }
}

/// Check a credential for a proxy: 200 with identity headers, 401, or 403.
#[utoipa::path(get, path = "/validate", tag = "validate",
    params(("scope" = Option<String>, Query, description = "Space-separated scopes the resource needs; all must be held")),
    responses(
        (status = 200, body = Validated, description = "Valid; identity in X-Auth-Subject, X-Auth-Username, X-Auth-Groups, X-Auth-Scopes, X-Auth-Issuer"),
        (status = 401, body = ErrorBody, description = "No or invalid credential; WWW-Authenticate names the resource metadata"),
        (status = 403, body = ErrorBody, description = "A needed scope is missing (insufficient_scope)")),
    security(("bearer" = []), ("session" = [])))]
pub async fn validate(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let result = validate_inner(&state, query.as_deref(), &headers).await;
    let label = match &result {
        Ok(_) => "allowed",
        Err(AuthError::InsufficientScope { .. }) => "insufficient_scope",
        Err(AuthError::InvalidToken { .. }) => "unauthenticated",
        Err(_) => "error",
    };
    state
        .auth_metrics
        .validations
        .with_label_values(&[label])
        .inc();
    match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn validate_inner(
    state: &AppState,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response> {
    let p = params(query, &["scope"])?;
    let needed: Vec<Scope> = match p.text("scope") {
        Some(text) => text
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(Scope::parse)
            .collect::<std::result::Result<_, _>>()
            .map_err(|m| {
                AuthError::Input(mcpgw_core::input::InputError::InvalidQuery(
                    mcpgw_core::validate::FieldError::new("scope", m),
                ))
            })?,
        None => Vec::new(),
    };
    let metadata = state.resource_metadata_url();
    let refuse = |detail: String, presented: bool| AuthError::InvalidToken {
        detail,
        presented,
        resource_metadata: metadata.clone(),
    };
    let identity = match bearer_token(headers) {
        Some(Err(detail)) => return Err(refuse(detail, true)),
        Some(Ok(token)) => match verify_token(state, &token).await? {
            Ok(t) => Validated {
                subject: t.subject,
                username: t.username,
                issuer: t.issuer,
                groups: t.groups,
                scopes: t.scopes,
            },
            Err(detail) => return Err(refuse(detail, true)),
        },
        None => match session_of(state, headers).await? {
            Some(s) => Validated {
                subject: s.record.subject,
                username: Some(s.record.username),
                issuer: state.public_url.to_string(),
                groups: s.record.groups,
                scopes: s.record.scopes,
            },
            None => {
                return Err(refuse(
                    "a bearer token (or a session) is needed".to_owned(),
                    false,
                ));
            }
        },
    };
    if needed
        .iter()
        .any(|s| !identity.scopes.iter().any(|h| h == s.as_str()))
    {
        // RFC 6750 section 3: `scope` names every scope the resource needs.
        return Err(AuthError::InsufficientScope {
            scope: needed
                .iter()
                .map(Scope::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            resource_metadata: metadata,
        });
    }
    let list = |items: &[String], sep: &str| {
        items
            .iter()
            .map(|i| header_safe(i))
            .collect::<Vec<_>>()
            .join(sep)
    };
    let values = [
        ("x-auth-subject", header_safe(&identity.subject)),
        (
            "x-auth-username",
            header_safe(identity.username.as_deref().unwrap_or("")),
        ),
        ("x-auth-groups", list(&identity.groups, ",")),
        ("x-auth-scopes", list(&identity.scopes, " ")),
        ("x-auth-issuer", header_safe(&identity.issuer)),
    ];
    let mut response = Json(identity).into_response();
    let h = response.headers_mut();
    for (name, value) in values {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// OAuth 2.0 Protected Resource Metadata (RFC 9728).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ResourceMetadata {
    /// The protected resource: the gateway, or one of its MCP endpoints.
    pub resource: String,
    /// Issuers whose tokens the resource accepts (RFC 8414 discovery from there).
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub bearer_methods_supported: Vec<String>,
    pub resource_name: String,
}

fn metadata_for(state: &AppState, resource: String) -> Response {
    let config = &state.config;
    let authorization_servers = if config.resource.authorization_servers.is_empty() {
        vec![state.public_url.to_string()]
    } else {
        config.resource.authorization_servers.clone()
    };
    let scopes_supported = if config.resource.scopes_supported.is_empty() {
        config.all_scopes()
    } else {
        config.resource.scopes_supported.clone()
    };
    let mut response = Json(ResourceMetadata {
        resource,
        authorization_servers,
        scopes_supported,
        bearer_methods_supported: vec!["header".to_owned()],
        resource_name: "mcpgw MCP gateway".to_owned(),
    })
    .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// Metadata for the gateway as a whole.
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource", tag = "validate",
    responses((status = 200, body = ResourceMetadata)))]
pub async fn resource_metadata(State(state): State<AppState>) -> Response {
    let resource = state.config.resource.url.trim_end_matches('/').to_owned();
    metadata_for(&state, resource)
}

/// Metadata for one of the gateway's endpoints (`/.well-known/oauth-protected-resource/weather/mcp`
/// describes `<gateway>/weather/mcp`, as RFC 9728 section 3.1 derives it).
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource/{path}", tag = "validate",
    params(("path" = String, Path, description = "The endpoint's path on the gateway, e.g. weather/mcp")),
    responses((status = 200, body = ResourceMetadata), (status = 422, body = ErrorBody)))]
pub async fn resource_metadata_for_path(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<String>,
) -> Result<Response> {
    let ok_segment = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    if path.len() > 256 || !path.split('/').all(ok_segment) {
        return Err(mcpgw_core::validate::FieldError::new(
            "path",
            "must be an endpoint path such as weather/mcp: segments of letters, digits, - . _ ~",
        )
        .into());
    }
    let resource = format!("{}/{path}", state.config.resource.url.trim_end_matches('/'));
    Ok(metadata_for(&state, resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_cannot_carry_separators_or_line_breaks() {
        assert_eq!(header_safe("local:alice"), "local:alice");
        assert_eq!(header_safe("a,b c"), "a%2Cb%20c");
        assert_eq!(header_safe("x\r\nX-Evil: 1"), "x%0D%0AX-Evil:%201");
        assert_eq!(header_safe("é"), "%C3%A9");
    }
}
