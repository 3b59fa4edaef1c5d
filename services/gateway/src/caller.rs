//! Who is calling: the bearer token, validated in-process, and the answers to callers that
//! present none, a bad one, or one without the scope a request needs.
//!
//! Identity comes from the token alone: headers such as `X-User` are never read. Verified
//! tokens are remembered until they expire, so a busy agent does not pay for a
//! signature check per request; expiry and the issuer's revocation list are checked every time.
//! The cache is keyed by the token's text, held in this process's memory only, as every
//! request's token is: a SHA-256 of each token cost a tenth of the gateway's instructions per
//! call, and a shorter digest would let two tokens share an entry. Its hash (std's keyed
//! SipHash) reads only the token's last [`HASHED_TAIL`] bytes, part of the signature; equality
//! still compares the whole text. Only verified tokens are stored, so nobody can fill a bucket
//! with tokens that share a tail without their issuer's key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use mcpgw_core::policy::Identity;
use mcpgw_core::token::{TokenError, TokenValidator, VerifiedToken};
use serde_json::{Value, json};

use crate::session::caller_digest;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: Arc<VerifiedToken>,
    pub identity: Arc<Identity>,
    /// Binds sessions to this caller.
    pub digest: Arc<str>,
}

impl Caller {
    pub fn subject(&self) -> &str {
        &self.token.subject
    }

    /// The key of per-caller limits: issuer and subject.
    pub fn limit_key(&self) -> &str {
        &self.digest
    }
}

pub struct Authenticator {
    validator: Arc<TokenValidator>,
    cache: Mutex<HashMap<Box<str>, Caller, TailHash>>,
    capacity: usize,
}

/// How many bytes at the end of a token its cache hash reads.
const HASHED_TAIL: usize = 48;

/// The token cache's hasher: SipHash with this process's random keys over a token's tail.
#[derive(Default, Clone)]
struct TailHash(std::collections::hash_map::RandomState);

struct TailHasher(std::collections::hash_map::DefaultHasher);

impl std::hash::BuildHasher for TailHash {
    type Hasher = TailHasher;
    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

impl std::hash::Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
    }
    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// Why a request is refused before any policy is consulted.
#[derive(Debug)]
pub enum AuthFailure {
    Missing,
    Malformed(&'static str),
    Invalid(TokenError),
}

impl Authenticator {
    pub fn new(validator: Arc<TokenValidator>, capacity: usize) -> Self {
        Self {
            validator,
            cache: Mutex::new(HashMap::with_hasher(TailHash::default())),
            capacity,
        }
    }

    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthFailure> {
        let value = headers
            .get(http::header::AUTHORIZATION)
            .ok_or(AuthFailure::Missing)?;
        let text = value
            .to_str()
            .map_err(|_| AuthFailure::Malformed("the Authorization header is not ASCII"))?;
        let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(AuthFailure::Malformed(
                "the Authorization header must be `Bearer <access token>`",
            ));
        }
        let cached = self.cache.lock().expect("token cache").get(token).cloned();
        if let Some(caller) = cached {
            match self.validator.recheck(&caller.token).await {
                Ok(()) => return Ok(caller),
                Err(e) => {
                    self.cache.lock().expect("token cache").remove(token);
                    return Err(AuthFailure::Invalid(e));
                }
            }
        }
        // Boxed: validation (a key fetch on a miss) is a large future, needed only on a cache
        // miss; inline, every call's future would carry and copy it.
        let verified = Box::pin(self.validator.validate(token))
            .await
            .map_err(AuthFailure::Invalid)?;
        let caller = Caller {
            identity: Arc::new(Identity::new(
                verified.groups.clone(),
                verified.scopes.clone(),
            )),
            digest: caller_digest(&verified.issuer, &verified.subject).into(),
            token: Arc::new(verified),
        };
        if self.capacity > 0 {
            let mut cache = self.cache.lock().expect("token cache");
            if cache.len() >= self.capacity {
                // Expired entries go first; if that frees nothing, start over (cheap, rare).
                let now = chrono::Utc::now().timestamp();
                cache.retain(|_, c| c.token.expires_at > now);
                if cache.len() >= self.capacity {
                    cache.clear();
                }
            }
            cache.insert(token.into(), caller.clone());
        }
        Ok(caller)
    }
}

/// The caller as a server with `gateway.assert_caller` receives it (the registry's own MCP
/// server, which acts for this caller when the credential beside it holds `gateway:delegate`).
pub fn assertion(caller: &Caller) -> HeaderValue {
    let t = &caller.token;
    let value = mcpgw_core::auth::CallerAssertion {
        issuer: t.issuer.clone(),
        subject: t.subject.clone(),
        username: t.username.clone(),
        client_id: t.client_id.clone(),
        groups: t.groups.clone(),
        scopes: t.scopes.clone(),
    }
    .encode();
    let mut value = HeaderValue::from_str(&value).expect("base64url is a valid header value");
    value.set_sensitive(true);
    value
}

/// Where a server's protected resource metadata is (RFC 9728, path form).
pub fn resource_metadata_url(public_base: &str, server: Option<&str>) -> String {
    match server {
        Some(s) => format!("{public_base}/.well-known/oauth-protected-resource/{s}/mcp"),
        None => format!("{public_base}/.well-known/oauth-protected-resource"),
    }
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// 401 with the challenge MCP clients use to find the authorization server.
pub fn unauthorized(failure: &AuthFailure, metadata_url: &str) -> Response {
    let (challenge, message) = match failure {
        AuthFailure::Missing => (
            format!("Bearer resource_metadata=\"{}\"", quote(metadata_url)),
            "this endpoint needs an access token: send `Authorization: Bearer <token>`".to_owned(),
        ),
        AuthFailure::Malformed(why) => (
            format!(
                "Bearer error=\"invalid_request\", error_description=\"{}\", resource_metadata=\"{}\"",
                quote(why),
                quote(metadata_url)
            ),
            (*why).to_owned(),
        ),
        AuthFailure::Invalid(e) => (
            format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\", resource_metadata=\"{}\"",
                quote(&e.to_string()),
                quote(metadata_url)
            ),
            e.to_string(),
        ),
    };
    let mut response = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"code": "unauthenticated", "detail": message})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, v);
    }
    response
}

/// Most scope names a challenge carries.
pub const MAX_CHALLENGE_SCOPES: usize = 20;

/// 403 naming the scopes that would allow the request (step-up), with a JSON-RPC error body
/// when the request had an id. `scopes` must be exactly those that would grant this request
/// and that the caller does not hold (`policy::Caller::scopes_granting`): the challenge is
/// read by whoever holds the token, so it never names the caller's own scopes or unrelated
/// ones. With none, it names none (the detail should then say what to do instead).
pub fn insufficient_scope(
    scopes: &[&str],
    metadata_url: &str,
    detail: &str,
    id: Option<&Value>,
) -> Response {
    let mut challenge = "Bearer error=\"insufficient_scope\"".to_owned();
    if !scopes.is_empty() {
        challenge.push_str(&format!(", scope=\"{}\"", quote(&scopes.join(" "))));
    }
    challenge.push_str(&format!(", resource_metadata=\"{}\"", quote(metadata_url)));
    let body = match id {
        Some(id) => crate::jsonrpc::error_response(
            id.clone(),
            crate::jsonrpc::codes::INVALID_REQUEST,
            detail,
        ),
        None => json!({"code": "insufficient_scope", "detail": detail}),
    };
    let mut response = (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, v);
    }
    response
}

#[cfg(test)]
mod tail_hash_tests {
    use super::*;

    #[test]
    fn tokens_that_share_their_hashed_tail_are_still_different_keys() {
        let tail = "x".repeat(HASHED_TAIL);
        let (a, b) = (format!("a.{tail}"), format!("b.{tail}"));
        let mut map: HashMap<Box<str>, u8, TailHash> = HashMap::with_hasher(TailHash::default());
        map.insert(a.as_str().into(), 1);
        map.insert(b.as_str().into(), 2);
        assert_eq!(map.len(), 2);
        assert_eq!(
            (map.get(a.as_str()), map.get(b.as_str())),
            (Some(&1), Some(&2))
        );
        assert_eq!(map.get(tail.as_str()), None);
        let hash = |s: &str| std::hash::BuildHasher::hash_one(map.hasher(), s);
        assert_eq!(hash(&a), hash(&b), "only the tail is hashed");
    }
}
