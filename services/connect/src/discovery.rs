//! From an MCP URL to the authorization server that issues its tokens, as the MCP
//! authorization spec has a client do it (both eras):
//!
//! 1. an unauthenticated request to the URL; the answer must be `401` with
//!    `WWW-Authenticate: Bearer resource_metadata="…"` (when the parameter is missing, the
//!    well-known URL of RFC 9728 §3.1 is tried: path-inserted, then at the root);
//! 2. the protected resource metadata: its `resource` must be this URL (or the origin it lives
//!    under), so a gateway cannot send us to sign in for something else; the first of its
//!    `authorization_servers` is used;
//! 3. that server's metadata (RFC 8414 path-inserted, then OpenID discovery); it must list
//!    `S256` among `code_challenge_methods_supported` (the spec forbids proceeding otherwise).

use reqwest::{Client, StatusCode, header};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::error::{ConnectError, chain};

/// What a sign-in needs to know about the URL's authorization server.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// The protected resource (RFC 8707 `resource`), as its metadata names it.
    pub resource: String,
    /// The scopes the 401 asked for, or the resource's `scopes_supported`.
    pub scope: Option<String>,
    pub server: ServerMetadata,
}

/// The part of RFC 8414 authorization-server metadata a public client uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub registration_endpoint: Option<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
}

#[derive(Deserialize)]
struct ResourceMetadata {
    resource: String,
    #[serde(default)]
    authorization_servers: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
}

/// The outcome of the unauthenticated probe.
pub enum Probe {
    /// The URL answers without a token.
    Open(StatusCode),
    /// A `401`: where its metadata is and which scope it asked for.
    Challenge {
        metadata: Option<String>,
        scope: Option<String>,
    },
}

/// Sends an unauthenticated `initialize` (what a client sends first) and reads the challenge.
pub async fn probe(http: &Client, url: &Url) -> Result<Probe, ConnectError> {
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "mcpgw-connect", "version": env!("CARGO_PKG_VERSION")}}});
    let response = http
        .post(url.clone())
        .header(header::ACCEPT, "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .map_err(|e| unreachable(url.as_str(), &e))?;
    if response.status() != StatusCode::UNAUTHORIZED {
        return Ok(Probe::Open(response.status()));
    }
    let challenge = response
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.trim_start().to_ascii_lowercase().starts_with("bearer"))
        .unwrap_or("");
    Ok(Probe::Challenge {
        metadata: auth_param(challenge, "resource_metadata"),
        scope: auth_param(challenge, "scope"),
    })
}

/// The whole discovery for `url`.
pub async fn discover(http: &Client, url: &Url) -> Result<Discovered, ConnectError> {
    let (metadata, scope) = match probe(http, url).await? {
        Probe::Open(status) => {
            return Err(ConnectError::NoChallenge {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        Probe::Challenge { metadata, scope } => (metadata, scope),
    };
    let candidates = match metadata {
        Some(m) => vec![m],
        None => well_known(url, "oauth-protected-resource"),
    };
    let resource: ResourceMetadata = first_json(http, &candidates).await?;
    check_resource(url, &resource.resource)?;
    let issuer = resource
        .authorization_servers
        .first()
        .ok_or_else(|| ConnectError::Metadata {
            url: candidates[0].clone(),
            detail: "the protected resource metadata names no authorization_servers".into(),
        })?;
    let issuer_url = Url::parse(issuer).map_err(|e| ConnectError::Metadata {
        url: candidates[0].clone(),
        detail: format!("authorization server {issuer:?} is not a URL ({e})"),
    })?;
    let mut server_urls = well_known(&issuer_url, "oauth-authorization-server");
    server_urls.extend(well_known(&issuer_url, "openid-configuration"));
    server_urls.push(format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ));
    server_urls.dedup();
    let server: ServerMetadata = first_json(http, &server_urls).await?;
    if !server
        .code_challenge_methods_supported
        .iter()
        .any(|m| m == "S256")
    {
        return Err(ConnectError::Metadata {
            url: issuer.clone(),
            detail: "the authorization server does not list PKCE S256 \
                     (code_challenge_methods_supported), which MCP clients require"
                .into(),
        });
    }
    let scope = scope.or_else(|| {
        (!resource.scopes_supported.is_empty()).then(|| resource.scopes_supported.join(" "))
    });
    Ok(Discovered {
        resource: resource.resource,
        scope,
        server,
    })
}

/// The resource metadata must describe this URL: the same origin, and a path this URL is at or
/// under (RFC 9728 §3.3 has the client compare; a root resource covers every path).
fn check_resource(url: &Url, resource: &str) -> Result<(), ConnectError> {
    let bad = |detail: String| ConnectError::Metadata {
        url: url.to_string(),
        detail,
    };
    let named = Url::parse(resource).map_err(|e| bad(format!("resource {resource:?}: {e}")))?;
    let path = named.path().trim_end_matches('/');
    let ours = url.path().trim_end_matches('/');
    let under = ours == path || ours.starts_with(&format!("{path}/"));
    if named.origin() != url.origin() || !under {
        return Err(bad(format!(
            "the protected resource metadata is for {resource}, not for this URL"
        )));
    }
    Ok(())
}

/// The RFC 8414 / RFC 9728 well-known URLs of `base`: path-inserted first, then at the root.
fn well_known(base: &Url, name: &str) -> Vec<String> {
    let origin = base.origin().ascii_serialization();
    let path = base.path().trim_end_matches('/');
    let mut urls = Vec::new();
    if !path.is_empty() {
        urls.push(format!("{origin}/.well-known/{name}{path}"));
    }
    urls.push(format!("{origin}/.well-known/{name}"));
    urls
}

/// The first of `urls` that answers `200` with JSON of this shape.
async fn first_json<T: serde::de::DeserializeOwned>(
    http: &Client,
    urls: &[String],
) -> Result<T, ConnectError> {
    let mut last = String::from("no URL to try");
    for url in urls {
        let response = match http.get(url).send().await {
            Ok(r) => r,
            Err(e) => {
                last = format!("{url}: {}", chain(&e));
                continue;
            }
        };
        let status = response.status();
        if !status.is_success() {
            last = format!("{url} answered {status}");
            continue;
        }
        match response.json::<T>().await {
            Ok(v) => return Ok(v),
            Err(e) => last = format!("{url}: not the expected metadata ({})", chain(&e)),
        }
    }
    Err(ConnectError::Metadata {
        url: urls.first().cloned().unwrap_or_default(),
        detail: last,
    })
}

/// One parameter of an RFC 9110 challenge (`name="value"` or `name=token`), after the scheme.
pub fn auth_param(challenge: &str, name: &str) -> Option<String> {
    let mut rest = challenge
        .trim_start()
        .split_once(char::is_whitespace)
        .map_or("", |(_, params)| params);
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            return None;
        }
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            let (mut value, mut end) = (String::new(), quoted.len());
            let mut chars = quoted.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, n)| n)),
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    _ => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        if key.trim().eq_ignore_ascii_case(name) {
            return Some(value);
        }
        rest = remainder;
    }
}

fn unreachable(url: &str, e: &reqwest::Error) -> ConnectError {
    ConnectError::Unreachable {
        url: url.to_owned(),
        cause: chain(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_yields_its_quoted_and_bare_parameters() {
        let c = r#"Bearer error="invalid_token", resource_metadata="http://g/.well-known/oauth-protected-resource/w/mcp", scope=read"#;
        assert_eq!(
            auth_param(c, "resource_metadata").as_deref(),
            Some("http://g/.well-known/oauth-protected-resource/w/mcp")
        );
        assert_eq!(auth_param(c, "scope").as_deref(), Some("read"));
        assert_eq!(auth_param(c, "error").as_deref(), Some("invalid_token"));
        assert_eq!(auth_param("Bearer", "scope"), None);
        assert_eq!(
            auth_param(r#"Bearer realm="a\"b,c", scope="x y""#, "scope").as_deref(),
            Some("x y")
        );
    }

    #[test]
    fn well_known_urls_are_path_inserted_then_at_the_root() {
        let url = Url::parse("http://gw:8080/weather/mcp").unwrap();
        assert_eq!(
            well_known(&url, "oauth-protected-resource"),
            [
                "http://gw:8080/.well-known/oauth-protected-resource/weather/mcp",
                "http://gw:8080/.well-known/oauth-protected-resource"
            ]
        );
        let root = Url::parse("http://auth:9000").unwrap();
        assert_eq!(
            well_known(&root, "oauth-authorization-server"),
            ["http://auth:9000/.well-known/oauth-authorization-server"]
        );
    }

    #[test]
    fn resource_metadata_for_another_url_is_refused() {
        let url = Url::parse("http://gw/weather/mcp").unwrap();
        assert!(check_resource(&url, "http://gw/weather/mcp").is_ok());
        assert!(check_resource(&url, "http://gw").is_ok());
        assert!(check_resource(&url, "http://gw/other/mcp").is_err());
        assert!(check_resource(&url, "http://evil/weather/mcp").is_err());
        assert!(check_resource(&url, "http://gw/wea").is_err());
    }
}
