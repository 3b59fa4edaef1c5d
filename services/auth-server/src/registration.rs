//! Dynamic Client Registration (RFC 7591) for MCP clients: what a registration request may
//! ask for, and how a redirect URI presented at `/oauth/authorize` matches a registered one.
//!
//! Rules of this module (the policy, `oauth.registration` in the config):
//! - Every registered client is public (`token_endpoint_auth_method: none`), uses the
//!   authorization code grant with PKCE S256 and nothing else; a request asking for a secret,
//!   another grant or response type is refused as `invalid_client_metadata`, not silently
//!   narrowed, so a client never believes it holds what it does not. The one exception is
//!   `refresh_token` in `grant_types`, which every MCP SDK sends: the answer lists it when
//!   `oauth.refresh.enabled` (every registered client then gets refresh tokens,
//!   `crate::refresh`), else only `authorization_code`.
//! - Redirect URIs: `https` with a host; `http` only on a loopback host (`127.0.0.1`, `[::1]`,
//!   `localhost`); a custom scheme (`com.example.app:/cb`, RFC 8252 §7.1) only when listed in
//!   `oauth.registration.custom_schemes`. No fragment, no user information. Anything else is
//!   `invalid_redirect_uri` (RFC 7591 §3.2.2).
//! - At authorize time a redirect URI equals a registered one exactly, except that for an
//!   `http` loopback URI the port is ignored (RFC 8252 §7.3: a native app listens on whatever
//!   port the OS gives it). Host, path and query still match exactly.
//! - Sizes are bounded: the request body ([`MAX_REQUEST_BYTES`]), the number of redirect URIs
//!   ([`MAX_REDIRECT_URIS`]), each URI ([`MAX_URI_BYTES`]), and the free-text fields.
//! - Metadata this server does not use (`logo_uri`, `contacts`, …) is accepted and dropped:
//!   RFC 7591 §2 lets a server ignore fields it does not understand; the response says what
//!   was registered.

use serde::{Deserialize, Serialize};
use url::Url;

/// Largest registration request body accepted.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Most redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 10;
/// Longest redirect URI accepted.
pub const MAX_URI_BYTES: usize = 1024;
/// Longest `client_name` (and `client_uri`, `software_id`, `software_version`).
pub const MAX_TEXT_BYTES: usize = 200;
/// The prefix of every registered `client_id`; configured clients (`oauth.clients`) may not
/// use it, so the two kinds never collide.
pub const CLIENT_ID_PREFIX: &str = "dcr.";

/// What a registered client is, as stored and as answered (RFC 7591 §3.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClientMetadata {
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// Space-separated scopes the client said it would ask for (informational: the token is
    /// the user's scopes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The fields of a registration request this server reads; the rest is ignored.
#[derive(Debug, Default, Deserialize)]
struct RegistrationRequest {
    redirect_uris: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    client_name: Option<String>,
    client_uri: Option<String>,
    software_id: Option<String>,
    software_version: Option<String>,
    scope: Option<String>,
}

/// A refused registration: the RFC 7591 §3.2.2 error code and a description safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct RegistrationError {
    /// `invalid_redirect_uri` or `invalid_client_metadata`.
    pub error: &'static str,
    pub description: String,
}

impl RegistrationError {
    fn redirect(description: impl Into<String>) -> Self {
        Self {
            error: "invalid_redirect_uri",
            description: description.into(),
        }
    }

    fn metadata(description: impl Into<String>) -> Self {
        Self {
            error: "invalid_client_metadata",
            description: description.into(),
        }
    }
}

/// Parses and checks a registration request body against the policy.
pub fn parse_request(
    body: &[u8],
    custom_schemes: &[String],
) -> Result<ClientMetadata, RegistrationError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(RegistrationError::metadata(format!(
            "the registration request must be at most {MAX_REQUEST_BYTES} bytes"
        )));
    }
    let request: RegistrationRequest = serde_json::from_slice(body).map_err(|e| {
        RegistrationError::metadata(format!("the body is not client metadata JSON: {e}"))
    })?;
    if let Some(method) = request.token_endpoint_auth_method.as_deref()
        && method != "none"
    {
        return Err(RegistrationError::metadata(format!(
            "token_endpoint_auth_method {method:?} is not supported: clients are public (\"none\") and use PKCE"
        )));
    }
    if let Some(grants) = &request.grant_types
        && let Some(bad) = grants
            .iter()
            .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err(RegistrationError::metadata(format!(
            "grant type {bad:?} is not supported: only authorization_code"
        )));
    }
    if let Some(types) = &request.response_types
        && let Some(bad) = types.iter().find(|t| *t != "code")
    {
        return Err(RegistrationError::metadata(format!(
            "response type {bad:?} is not supported: only code"
        )));
    }
    let redirect_uris = request.redirect_uris.unwrap_or_default();
    if redirect_uris.is_empty() {
        return Err(RegistrationError::redirect(
            "redirect_uris is required: at least one URI the client receives codes at",
        ));
    }
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(RegistrationError::redirect(format!(
            "at most {MAX_REDIRECT_URIS} redirect_uris may be registered"
        )));
    }
    for uri in &redirect_uris {
        check_redirect_uri(uri, custom_schemes)?;
    }
    let text = |name: &str, value: Option<String>| -> Result<Option<String>, RegistrationError> {
        match value {
            Some(v) if v.len() > MAX_TEXT_BYTES || v.chars().any(char::is_control) => {
                Err(RegistrationError::metadata(format!(
                    "{name} must be at most {MAX_TEXT_BYTES} bytes without control characters"
                )))
            }
            Some(v) if v.trim().is_empty() => Ok(None),
            other => Ok(other),
        }
    };
    let client_uri = text("client_uri", request.client_uri)?;
    if let Some(u) = &client_uri
        && !matches!(Url::parse(u), Ok(u) if matches!(u.scheme(), "http" | "https"))
    {
        return Err(RegistrationError::metadata(
            "client_uri must be an http(s) URL",
        ));
    }
    let scope = text("scope", request.scope)?;
    if let Some(s) = &scope
        && let Some(bad) = s
            .split(' ')
            .find(|s| crate::scope::Scope::parse(s).is_err())
    {
        return Err(RegistrationError::metadata(format!(
            "{bad:?} is not a scope: scopes are separated by single spaces"
        )));
    }
    Ok(ClientMetadata {
        redirect_uris,
        client_name: text("client_name", request.client_name)?,
        client_uri,
        software_id: text("software_id", request.software_id)?,
        software_version: text("software_version", request.software_version)?,
        scope,
    })
}

/// One redirect URI against the policy (see the module rules).
fn check_redirect_uri(uri: &str, custom_schemes: &[String]) -> Result<(), RegistrationError> {
    if uri.len() > MAX_URI_BYTES {
        return Err(RegistrationError::redirect(format!(
            "a redirect URI must be at most {MAX_URI_BYTES} bytes"
        )));
    }
    let url = Url::parse(uri).map_err(|e| {
        RegistrationError::redirect(format!("{uri:?} is not an absolute URI ({e})"))
    })?;
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(RegistrationError::redirect(format!(
            "{uri:?} must have no fragment and no user information"
        )));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err(RegistrationError::redirect(format!(
            "{uri:?}: plain http is allowed only on a loopback host (127.0.0.1, [::1], localhost); use https"
        ))),
        scheme if custom_schemes.iter().any(|s| s == scheme) => Ok(()),
        scheme => Err(RegistrationError::redirect(format!(
            "{uri:?}: the scheme {scheme:?} is not allowed: use https, http on a loopback host, or a custom scheme the operator listed in oauth.registration.custom_schemes"
        ))),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether `presented` (from an authorization request) matches `registered`: exactly, or for
/// an `http` loopback URI with any port (RFC 8252 §7.3).
pub fn redirect_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(mut r), Ok(mut p)) = (Url::parse(registered), Url::parse(presented)) else {
        return false;
    };
    if r.scheme() != "http" || !is_loopback(&r) {
        return false;
    }
    // Set both ports to one value: what remains must be equal.
    if r.set_port(None).is_err() || p.set_port(None).is_err() {
        return false;
    }
    r == p
}

/// A new `client_id`: the prefix and 128 random bits.
pub fn new_client_id() -> String {
    format!("{CLIENT_ID_PREFIX}{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(body: serde_json::Value) -> Result<ClientMetadata, RegistrationError> {
        parse_request(body.to_string().as_bytes(), &["com.example.app".to_owned()])
    }

    #[test]
    fn an_mcp_sdk_registration_is_accepted_as_a_public_client() {
        let m = register(serde_json::json!({
            "redirect_uris": ["http://localhost:3030/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "Python MCP client",
            "logo_uri": "https://example.com/logo.png",
        }))
        .unwrap();
        assert_eq!(m.redirect_uris, ["http://localhost:3030/callback"]);
        assert_eq!(m.client_name.as_deref(), Some("Python MCP client"));
    }

    #[test]
    fn redirect_uris_follow_the_policy() {
        for ok in [
            "http://127.0.0.1:9/cb",
            "http://[::1]/cb",
            "http://localhost:1234/cb?x=1",
            "https://app.example.com/cb",
            "com.example.app:/oauth",
        ] {
            assert!(
                register(serde_json::json!({"redirect_uris": [ok]})).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "http://app.example.com/cb",
            "https://app.example.com/cb#frag",
            "https://user@app.example.com/cb",
            "javascript:alert(1)",
            "org.other.app:/oauth",
            "/relative",
        ] {
            let e = register(serde_json::json!({"redirect_uris": [bad]})).unwrap_err();
            assert_eq!(e.error, "invalid_redirect_uri", "{bad}: {e}");
        }
        let e = register(serde_json::json!({"client_name": "x"})).unwrap_err();
        assert_eq!(e.error, "invalid_redirect_uri");
        let many: Vec<String> = (0..11).map(|i| format!("http://127.0.0.1/{i}")).collect();
        let e = register(serde_json::json!({"redirect_uris": many})).unwrap_err();
        assert_eq!(e.error, "invalid_redirect_uri");
    }

    #[test]
    fn secrets_other_grants_and_oversized_requests_are_invalid_metadata() {
        let uris = ["http://127.0.0.1/cb"];
        for body in [
            serde_json::json!({"redirect_uris": uris, "token_endpoint_auth_method": "client_secret_basic"}),
            serde_json::json!({"redirect_uris": uris, "grant_types": ["client_credentials"]}),
            serde_json::json!({"redirect_uris": uris, "response_types": ["token"]}),
            serde_json::json!({"redirect_uris": uris, "client_name": "x".repeat(201)}),
            serde_json::json!({"redirect_uris": uris, "client_uri": "ftp://x"}),
            serde_json::json!({"redirect_uris": uris, "scope": "a  b"}),
            serde_json::json!({"redirect_uris": "http://127.0.0.1/cb"}),
        ] {
            let e = register(body.clone()).unwrap_err();
            assert_eq!(e.error, "invalid_client_metadata", "{body}: {e}");
        }
        let big = format!(
            "{{\"redirect_uris\":[\"http://127.0.0.1/cb\"],\"x\":\"{}\"}}",
            "a".repeat(MAX_REQUEST_BYTES)
        );
        let e = parse_request(big.as_bytes(), &[]).unwrap_err();
        assert_eq!(e.error, "invalid_client_metadata");
    }

    #[test]
    fn a_loopback_redirect_matches_on_any_port_and_nothing_else_is_relaxed() {
        let r = "http://127.0.0.1:3000/callback";
        assert!(redirect_matches(r, r));
        assert!(redirect_matches(r, "http://127.0.0.1:49152/callback"));
        assert!(redirect_matches(r, "http://127.0.0.1/callback"));
        assert!(redirect_matches(
            "http://localhost/cb",
            "http://localhost:8/cb"
        ));
        assert!(redirect_matches("http://[::1]:1/cb", "http://[::1]:2/cb"));
        assert!(!redirect_matches(r, "http://127.0.0.1:3000/callback/x"));
        assert!(!redirect_matches(r, "http://localhost:3000/callback"));
        assert!(!redirect_matches(r, "http://127.0.0.1:3000/callback?x"));
        let https = "https://app.example.com:8443/cb";
        assert!(!redirect_matches(https, "https://app.example.com:9443/cb"));
        assert!(new_client_id().starts_with(CLIENT_ID_PREFIX));
    }
}
