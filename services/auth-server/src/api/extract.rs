//! Request extractors: the caller's session (with the CSRF rule), the caller of the token API
//! (a session or an OAuth client's sign-in token), administrators, JSON bodies and path
//! parameters (core's `ApiJson` / `ApiPath`, `mcpgw_core::extract`), query parameters, the
//! request id and the client's address.
//!
//! The CSRF rule lives in [`Session`]: for any method other than GET, HEAD and OPTIONS, a
//! cookie-authenticated request must carry `X-CSRF-Token` equal to the session's token.
//! Handlers cannot forget it, because the session is only available through this extractor.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use mcpgw_core::extract::BodyLimit;
pub use mcpgw_core::extract::{ApiJson, ApiPath};
use mcpgw_core::input::Params;
use mcpgw_core::telemetry::RequestId;

use crate::app::AppState;
use crate::error::AuthError;
use crate::session::csrf_matches;
use crate::store::SessionRecord;
use crate::tokens::{Principal, verify_own};

pub const CSRF_HEADER: &str = "x-csrf-token";

/// The request id of the current request.
pub struct Ctx(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Ctx(parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())))
    }
}

impl Ctx {
    pub fn id(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// The caller's live session (401 without one; 403 on a mutation without the CSRF token).
pub struct Session {
    /// The session id from the cookie (needed to end it).
    pub id: String,
    pub record: SessionRecord,
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Looks up the session a request's cookie names, without the CSRF rule (for HTML pages,
/// which check a form field instead).
pub async fn session_of(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, AuthError> {
    let Some(id) = state.sessions.id_from(headers) else {
        return Ok(None);
    };
    Ok(state
        .sessions
        .find(&id)
        .await?
        .map(|record| Session { id, record }))
}

impl FromRequestParts<AppState> for Session {
    type Rejection = AuthError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = session_of(state, &parts.headers).await?.ok_or_else(|| {
            AuthError::Unauthenticated(
                "log in first: this endpoint needs a session (sign in at /login)".to_owned(),
            )
        })?;
        if !is_safe(&parts.method) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !csrf_matches(sent, &session.record.csrf_token) {
                return Err(AuthError::CsrfFailed);
            }
        }
        Ok(session)
    }
}

/// The `Authorization: Bearer` token of a request: `None` without the header, an error when
/// the header is not `Bearer <token>`.
pub fn bearer_token(headers: &HeaderMap) -> Option<Result<String, String>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let text = value.to_str().unwrap_or("");
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Some(Err(
            "the Authorization header must be `Bearer <token>`".to_owned()
        ));
    }
    Some(Ok(token.trim().to_owned()))
}

/// How a [`Caller`] authenticated.
pub enum Via {
    /// The session cookie (mutations carried the CSRF token). Boxed: a session record is
    /// far larger than the other variant.
    Session(Box<Session>),
    /// A sign-in token of an OAuth client with `manage_tokens` (`crate::oauth`).
    SignInToken {
        client_id: String,
        /// The token's `jti` (the client revokes it to sign out).
        token_id: String,
        /// Unix seconds.
        expires_at: i64,
        /// The browser session the token was issued from, sealed (`crate::oauth::SID_CONTEXT`).
        sid: Option<String>,
    },
}

/// The user behind a request to `/api/v1/me` and `/api/v1/tokens`: a session, or
/// `Authorization: Bearer` with a sign-in token of an OAuth client whose `manage_tokens` is
/// true. A bearer token is no ambient credential (a browser never attaches it by itself), so
/// it needs no CSRF token. Any other token of ours (agent tokens, clients without
/// `manage_tokens`) is 403; a token that does not verify is 401. The header wins over a cookie.
pub struct Caller {
    pub principal: Principal,
    pub via: Via,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AuthError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = match bearer_token(&parts.headers) {
            None => {
                let session = Session::from_request_parts(parts, state).await?;
                return Ok(Caller {
                    principal: Principal::from(&session.record),
                    via: Via::Session(Box::new(session)),
                });
            }
            Some(Err(m)) => return Err(AuthError::Unauthenticated(m)),
            Some(Ok(t)) => t,
        };
        // Agent tokens are verified too (their audience is the gateway), so that they are
        // refused for what they are (403) rather than as unreadable (401).
        let verified = verify_own(
            state,
            &token,
            &[&state.public_url, &state.config.tokens.audience],
        )
        .await?
        .map_err(|why| {
            AuthError::Unauthenticated(format!(
                "the bearer token was refused: {why}; sign in again"
            ))
        })?;
        let client = verified
            .client_id
            .as_deref()
            .and_then(|id| state.config.oauth_client(id));
        let for_us = verified.audiences.iter().any(|a| *a == *state.public_url);
        let client = match client {
            Some(c) if c.manage_tokens && for_us => c,
            Some(c) => {
                return Err(AuthError::Forbidden(format!(
                    "tokens of the OAuth client {:?} may not manage tokens (its manage_tokens is false in oauth.clients); use a session",
                    c.id
                )));
            }
            None => {
                return Err(AuthError::Forbidden(
                    "this is an agent token: it is for the gateway, not for managing tokens; \
                     sign in (a session) or use a sign-in token of an OAuth client with manage_tokens"
                        .to_owned(),
                ));
            }
        };
        Ok(Caller {
            principal: Principal {
                username: verified.username.clone().unwrap_or_default(),
                subject: verified.subject,
                groups: verified.groups,
                scopes: verified.scopes,
            },
            via: Via::SignInToken {
                client_id: client.id.clone(),
                sid: verified
                    .claims
                    .get("sid")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
                token_id: verified.token_id.unwrap_or_default(),
                expires_at: verified.expires_at,
            },
        })
    }
}

/// A session of a member of one of `admin_groups` (403 otherwise).
pub struct Admin(pub Session);

impl FromRequestParts<AppState> for Admin {
    type Rejection = AuthError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state).await?;
        if !state.is_admin(&session.record.groups) {
            return Err(AuthError::Forbidden(
                "this endpoint is for administrators (members of admin_groups)".to_owned(),
            ));
        }
        Ok(Admin(session))
    }
}

/// The auth-server's body limit for [`ApiJson`]: `max_body_bytes`.
impl FromRef<AppState> for BodyLimit {
    fn from_ref(state: &AppState) -> Self {
        BodyLimit(state.config.max_body_bytes)
    }
}

/// Parses the query with an endpoint's list of parameters.
pub fn params(parts_query: Option<&str>, allowed: &[&str]) -> Result<Params, AuthError> {
    Ok(Params::parse(parts_query, allowed)?)
}

/// The client's address: the TCP peer, or with `login.trusted_proxy_hops = N` the address the
/// N-th proxy from us saw (X-Forwarded-For is client-controlled except for the entries our own
/// proxies appended, which are the last N).
pub fn client_address(parts_headers: &HeaderMap, peer: Option<SocketAddr>, hops: usize) -> String {
    let peer_ip = peer.map(|p| p.ip());
    if hops > 0 {
        let entries: Vec<&str> = parts_headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        if entries.len() >= hops
            && let Ok(ip) = entries[entries.len() - hops].parse::<IpAddr>()
        {
            return ip.to_string();
        }
    }
    peer_ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// The TCP peer of the request, when served with connect info.
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_client_address_trusts_only_our_own_proxies() {
        let peer: SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.9"),
        );
        assert_eq!(client_address(&h, Some(peer), 0), "10.0.0.5");
        assert_eq!(client_address(&h, Some(peer), 1), "203.0.113.9");
        assert_eq!(client_address(&h, Some(peer), 2), "6.6.6.6");
        assert_eq!(client_address(&h, Some(peer), 3), "10.0.0.5");
        h.insert("x-forwarded-for", HeaderValue::from_static("not-an-ip"));
        assert_eq!(client_address(&h, Some(peer), 1), "10.0.0.5");
    }
}
