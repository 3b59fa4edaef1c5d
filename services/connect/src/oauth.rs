//! The OAuth steps of a public native client (OAuth 2.1, RFC 8252): dynamic client
//! registration (RFC 7591), the authorization code flow with PKCE S256 and `resource`
//! (RFC 8707) on a loopback redirect, and the refresh grant.
//!
//! Rules:
//! - the redirect listener binds `127.0.0.1` on a port the OS picks, answers one request to
//!   `/callback` whose `state` matches, and gives up after [`SIGN_IN_TIMEOUT`]; the
//!   registered redirect URI has no port that matters (the server ignores a loopback port,
//!   RFC 8252 §7.3), so a registered client is reused across sign-ins;
//! - `state`, the verifier and the code are never printed; the authorization URL holds only the
//!   challenge, so printing it (`--no-browser`) gives nothing away;
//! - the token answer must be a `Bearer` token; its `expires_in` becomes an absolute time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Client;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

use crate::discovery::Discovered;
use crate::error::{ConnectError, chain};

/// How long the browser step may take.
pub const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);
/// The path of the loopback redirect URI.
const CALLBACK: &str = "/callback";

/// How the authorization URL reaches a browser.
#[derive(Debug, Clone)]
pub enum Browser {
    /// The desktop's browser (`xdg-open`, `open`, `start`).
    System,
    /// Only printed (`--no-browser`).
    Print,
    /// A command that gets the URL as its last argument (`--browser "…"`; tests drive
    /// headless Chromium this way).
    Command(String),
}

/// A token answer (RFC 6749 §5.1).
#[derive(Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    #[serde(default)]
    pub token_type: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

impl TokenAnswer {
    /// Unix seconds when the access token expires.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_in.map(|s| now() + s)
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Registers a public client for loopback redirects; its `client_id`.
pub async fn register(
    http: &Client,
    discovered: &Discovered,
    redirect_uri: &str,
) -> Result<String, ConnectError> {
    let endpoint = discovered
        .server
        .registration_endpoint
        .as_deref()
        .ok_or_else(|| ConnectError::NoRegistration {
            issuer: discovered.server.issuer.clone(),
        })?;
    let body = json!({
        "client_name": "mcpgw-connect",
        "software_id": "mcpgw-connect",
        "software_version": env!("CARGO_PKG_VERSION"),
        "redirect_uris": [redirect_uri],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    });
    let response =
        http.post(endpoint)
            .json(&body)
            .send()
            .await
            .map_err(|e| ConnectError::Registration {
                detail: format!("{endpoint}: {}", chain(&e)),
            })?;
    let status = response.status();
    let reply: serde_json::Value = response.json().await.unwrap_or_default();
    match reply.get("client_id").and_then(|v| v.as_str()) {
        Some(id) if status.is_success() => Ok(id.to_owned()),
        _ => Err(ConnectError::Registration {
            detail: format!("{endpoint} answered {status}: {}", oauth_error(&reply)),
        }),
    }
}

/// The browser step and the code exchange. `client_id` is a client registered before (its
/// redirect URI is a loopback one), else one is registered now. Returns the client used and
/// the token.
pub async fn sign_in(
    http: &Client,
    discovered: &Discovered,
    client_id: Option<String>,
    browser: &Browser,
) -> Result<(String, TokenAnswer), ConnectError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| ConnectError::Browser {
            cause: format!("no loopback port for the redirect: {e}"),
        })?;
    let port = listener.local_addr().expect("a bound address").port();
    let redirect_uri = format!("http://127.0.0.1:{port}{CALLBACK}");
    let client_id = match client_id {
        Some(id) => id,
        None => register(http, discovered, &redirect_uri).await?,
    };
    let verifier = random_token();
    let state = random_token();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut url = Url::parse(&discovered.server.authorization_endpoint).map_err(|e| {
        ConnectError::Metadata {
            url: discovered.server.issuer.clone(),
            detail: format!("authorization_endpoint is not a URL ({e})"),
        }
    })?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state)
            .append_pair("resource", &discovered.resource);
        if let Some(scope) = &discovered.scope {
            q.append_pair("scope", scope);
        }
    }
    open(browser, url.as_str())?;
    let code = tokio::time::timeout(SIGN_IN_TIMEOUT, callback(&listener, &state))
        .await
        .map_err(|_| ConnectError::Timeout {
            seconds: SIGN_IN_TIMEOUT.as_secs(),
        })??;
    let token = token_request(
        http,
        &discovered.server.token_endpoint,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
            ("resource", &discovered.resource),
        ],
    )
    .await?;
    Ok((client_id, token))
}

/// The refresh grant (the answer may rotate the refresh token).
pub async fn refresh(
    http: &Client,
    token_endpoint: &str,
    client_id: &str,
    refresh_token: &str,
    resource: &str,
) -> Result<TokenAnswer, ConnectError> {
    token_request(
        http,
        token_endpoint,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
            ("resource", resource),
        ],
    )
    .await
}

async fn token_request(
    http: &Client,
    endpoint: &str,
    form: &[(&str, &str)],
) -> Result<TokenAnswer, ConnectError> {
    let failed = |detail: String| ConnectError::Token {
        url: endpoint.to_owned(),
        detail,
    };
    let response = http
        .post(endpoint)
        .form(form)
        .send()
        .await
        .map_err(|e| failed(chain(&e)))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| failed(chain(&e)))?;
    if !status.is_success() {
        let reply = serde_json::from_str(&text).unwrap_or_default();
        return Err(failed(format!("{status}: {}", oauth_error(&reply))));
    }
    let answer: TokenAnswer =
        serde_json::from_str(&text).map_err(|e| failed(format!("not a token answer ({e})")))?;
    if !answer.token_type.eq_ignore_ascii_case("bearer") {
        return Err(failed(format!(
            "token_type {:?}, not Bearer",
            answer.token_type
        )));
    }
    Ok(answer)
}

/// `error: error_description` of an OAuth error body (never the body itself, which could echo
/// a secret back).
fn oauth_error(reply: &serde_json::Value) -> String {
    let field = |k: &str| reply.get(k).and_then(|v| v.as_str()).unwrap_or("");
    match (field("error"), field("error_description")) {
        ("", _) => "no OAuth error in the answer".into(),
        (e, "") => e.to_owned(),
        (e, d) => format!("{e}: {d}"),
    }
}

/// Shows `url` to the person (stderr), and opens it as `browser` says.
fn open(browser: &Browser, url: &str) -> Result<(), ConnectError> {
    eprintln!("mcpgw-connect: sign in at {url}");
    let mut command = match browser {
        Browser::Print => return Ok(()),
        Browser::Command(line) => {
            let mut words = line.split_whitespace();
            let program = words.next().ok_or_else(|| ConnectError::Browser {
                cause: "--browser is empty".into(),
            })?;
            let mut c = std::process::Command::new(program);
            c.args(words);
            c
        }
        Browser::System if cfg!(target_os = "macos") => std::process::Command::new("open"),
        Browser::System if cfg!(windows) => {
            let mut c = std::process::Command::new("cmd");
            c.args(["/C", "start", ""]);
            c
        }
        Browser::System => std::process::Command::new("xdg-open"),
    };
    // The browser's output is not JSON-RPC: it must not reach our stdout.
    command
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    match command.spawn() {
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
            Ok(())
        }
        Err(e) if matches!(browser, Browser::System) => {
            eprintln!("mcpgw-connect: no browser could be started ({e}); open the URL above");
            Ok(())
        }
        Err(e) => Err(ConnectError::Browser {
            cause: e.to_string(),
        }),
    }
}

/// Waits on `listener` for the redirect with our `state`; the code it carries.
async fn callback(listener: &TcpListener, state: &str) -> Result<String, ConnectError> {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let mut buf = vec![0u8; 8192];
        let mut len = 0;
        while len < buf.len() && !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf[len..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => len += n,
            }
        }
        let head = String::from_utf8_lossy(&buf[..len]);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let Ok(url) = Url::parse(&format!("http://127.0.0.1{target}")) else {
            continue;
        };
        if url.path() != CALLBACK {
            let _ = reply(&mut stream, "404 Not Found", "Not the sign-in callback.").await;
            continue;
        }
        let param = |k: &str| {
            url.query_pairs()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.into_owned())
        };
        if param("state").as_deref() != Some(state) {
            let _ = reply(
                &mut stream,
                "400 Bad Request",
                "This sign-in is not the one mcpgw-connect started.",
            )
            .await;
            continue;
        }
        if let Some(error) = param("error") {
            let _ = reply(&mut stream, "200 OK", "The sign-in did not complete.").await;
            return Err(ConnectError::Denied {
                error,
                description: param("error_description")
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default(),
            });
        }
        let Some(code) = param("code") else {
            let _ = reply(&mut stream, "400 Bad Request", "No code in the redirect.").await;
            continue;
        };
        let _ = reply(
            &mut stream,
            "200 OK",
            "Signed in. You can close this window and go back to your MCP client.",
        )
        .await;
        return Ok(code);
    }
}

async fn reply(
    stream: &mut tokio::net::TcpStream,
    status: &str,
    text: &str,
) -> std::io::Result<()> {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>mcpgw-connect</title>\
         <body style=\"font-family:system-ui;margin:3rem\"><p>{text}</p></body>"
    );
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// 32 random bytes, base64url: a PKCE verifier (RFC 7636 §4.1: 43 characters) or a `state`.
fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_is_43_url_safe_characters_and_never_repeats() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
    }

    #[test]
    fn an_oauth_error_is_shown_without_the_rest_of_the_body() {
        let reply =
            json!({"error": "invalid_grant", "error_description": "expired", "x": "s3cret"});
        assert_eq!(oauth_error(&reply), "invalid_grant: expired");
        assert_eq!(oauth_error(&json!({})), "no OAuth error in the answer");
    }
}
