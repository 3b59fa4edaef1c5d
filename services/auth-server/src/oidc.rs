//! Browser login through OIDC identity providers: authorization code flow with PKCE (S256),
//! `state` and `nonce`, providers found by OpenID discovery, and RP-initiated logout.
//!
//! Rules of this module:
//! - The `openidconnect` crate does the protocol: discovery (with the provider's JWKS), the
//!   authorization URL, the code exchange with the PKCE verifier, and the ID token check
//!   (signature, `iss`, `aud`, `exp`, `nonce`). It runs on our reqwest 0.13 client through a
//!   closure adapter, redirects off (as its docs advise: a token endpoint must not redirect).
//! - The login in progress (provider, state, nonce, PKCE verifier, return_to, start time) is
//!   sealed with the keyring into a short-lived `HttpOnly` cookie, so any replica can finish it
//!   and nothing is stored for logins that are never finished. It lives 10 minutes and is used
//!   once (the callback clears it).
//! - The callback checks `state` in constant time and, when the provider sends one, `iss`
//!   (RFC 9207, against mix-up between providers).
//! - Discovery is fetched on first use and kept for 5 minutes; a failed refresh keeps the last
//!   good document, so logins keep working while the provider's discovery endpoint is down.
//! - The user is `<provider id>:<sub>`; groups come from the configured ID token claim (a
//!   leading `/` of Keycloak group paths is dropped); the ID token is kept sealed in the
//!   session for `id_token_hint` at logout. Tokens are never logged.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgw_core::secrets::{Keyring, SecretsManagerConfig};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, LogoutRequest, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout,
    RedirectUrl, TokenResponse,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::config::OidcProviderConfig;

/// How long a started login may take.
pub const LOGIN_TIMEOUT_SECONDS: i64 = 600;
/// How long discovery documents (and the provider's keys with them) are kept.
const DISCOVERY_TTL: Duration = Duration::from_secs(300);
/// Most groups kept from one ID token, and their longest name.
const MAX_GROUPS: usize = 1000;
const MAX_GROUP_LEN: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("no sign-in provider {0:?} is configured")]
    UnknownProvider(String),
    #[error("the provider's discovery document could not be read: {0}")]
    Discovery(String),
    #[error("the provider is not configured correctly: {0}")]
    Configuration(String),
    #[error("the sign-in was started too long ago or in another browser; start again")]
    LoginState,
    #[error("the provider answered with an error: {0}")]
    Denied(String),
    #[error("the code could not be exchanged: {0}")]
    Exchange(String),
    #[error("the provider's ID token was refused: {0}")]
    IdToken(String),
}

/// A login between the redirect to the provider and the callback (sealed in a cookie).
#[derive(Serialize, Deserialize)]
pub struct PendingLogin {
    pub provider: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
    /// Unix seconds.
    pub started_at: i64,
}

const PENDING_CONTEXT: &str = "oidc:pending_login";

impl PendingLogin {
    /// The cookie value: the sealed JSON, base64url.
    pub fn seal(&self, keyring: &Keyring) -> String {
        keyring.seal_text(PENDING_CONTEXT, self)
    }

    /// Opens a cookie value; `None` when it is not one we sealed or has expired.
    pub fn open(keyring: &Keyring, cookie: &str) -> Option<Self> {
        let pending: Self = keyring.open_text(PENDING_CONTEXT, cookie)?;
        let age = chrono::Utc::now().timestamp() - pending.started_at;
        (0..=LOGIN_TIMEOUT_SECONDS)
            .contains(&age)
            .then_some(pending)
    }
}

/// Who the provider says signed in.
pub struct OidcIdentity {
    pub subject: String,
    pub username: String,
    pub groups: Vec<String>,
    /// The raw ID token, for `id_token_hint` at logout.
    pub id_token: String,
}

type HttpFuture =
    Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, reqwest::Error>> + Send>>;

/// openidconnect's async HTTP client, on reqwest 0.13 (its built-in one is reqwest 0.12).
fn http_client(client: reqwest::Client) -> impl Fn(openidconnect::HttpRequest) -> HttpFuture {
    move |req: openidconnect::HttpRequest| {
        let client = client.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let resp = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut builder = http::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                builder = builder.header(k, v);
            }
            let bytes = resp.bytes().await?;
            Ok(builder
                .body(bytes.to_vec())
                .expect("a status and headers from a response make a response"))
        })
    }
}

struct Cached {
    metadata: Arc<ProviderMetadataWithLogout>,
    fetched_at: Instant,
}

/// One configured provider.
pub struct Provider {
    pub config: OidcProviderConfig,
    secret: Option<ClientSecret>,
    cache: RwLock<Option<Cached>>,
}

/// The configured providers, by id.
pub struct OidcProviders {
    providers: Vec<Arc<Provider>>,
    http: reqwest::Client,
}

type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

impl OidcProviders {
    /// Reads each provider's client secret from its configured place. Providers are not
    /// contacted until the first login.
    pub async fn new(
        configs: &[OidcProviderConfig],
        aws: &SecretsManagerConfig,
    ) -> anyhow::Result<Self> {
        let mut providers = Vec::new();
        for config in configs {
            let secret = config
                .client_secret
                .resolve(aws)
                .await
                .map_err(|e| anyhow::anyhow!("oidc provider {}: client_secret: {e}", config.id))?
                .map(|s| ClientSecret::new(s.expose_secret().to_owned()));
            providers.push(Arc::new(Provider {
                config: config.clone(),
                secret,
                cache: RwLock::new(None),
            }));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self { providers, http })
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// `(id, name)` of each provider, in configuration order.
    pub fn list(&self) -> Vec<(String, String)> {
        self.providers
            .iter()
            .map(|p| (p.config.id.clone(), p.config.name.clone()))
            .collect()
    }

    pub fn get(&self, id: &str) -> Result<Arc<Provider>, OidcError> {
        self.providers
            .iter()
            .find(|p| p.config.id == id)
            .cloned()
            .ok_or_else(|| OidcError::UnknownProvider(id.to_owned()))
    }

    async fn metadata(&self, p: &Provider) -> Result<Arc<ProviderMetadataWithLogout>, OidcError> {
        if let Some(c) = p.cache.read().await.as_ref()
            && c.fetched_at.elapsed() < DISCOVERY_TTL
        {
            return Ok(c.metadata.clone());
        }
        let issuer = IssuerUrl::new(p.config.issuer.clone())
            .map_err(|e| OidcError::Configuration(format!("issuer: {e}")))?;
        let http = http_client(self.http.clone());
        match ProviderMetadataWithLogout::discover_async(issuer, &http).await {
            Ok(m) => {
                let metadata = Arc::new(m);
                *p.cache.write().await = Some(Cached {
                    metadata: metadata.clone(),
                    fetched_at: Instant::now(),
                });
                Ok(metadata)
            }
            Err(e) => {
                let message = openidconnect_error_text(&e);
                tracing::warn!(oidc.provider = %p.config.id, error = %message, "OIDC discovery failed");
                match p.cache.read().await.as_ref() {
                    Some(c) => Ok(c.metadata.clone()),
                    None => Err(OidcError::Discovery(message)),
                }
            }
        }
    }

    async fn client(&self, p: &Provider, redirect_uri: &str) -> Result<Client, OidcError> {
        let metadata = self.metadata(p).await?;
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| OidcError::Configuration(format!("redirect URI: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            metadata.as_ref().clone(),
            ClientId::new(p.config.client_id.clone()),
            p.secret.clone(),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a login: the URL to send the browser to, and what the callback needs.
    pub async fn start(
        &self,
        provider_id: &str,
        redirect_uri: &str,
        return_to: String,
    ) -> Result<(String, PendingLogin), OidcError> {
        let p = self.get(provider_id)?;
        let client = self.client(&p, redirect_uri).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in p.config.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(openidconnect::Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok((
            url.to_string(),
            PendingLogin {
                provider: p.config.id.clone(),
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                return_to,
                started_at: chrono::Utc::now().timestamp(),
            },
        ))
    }

    /// Finishes a login: exchanges `code` (with the PKCE verifier) and checks the ID token.
    pub async fn finish(
        &self,
        pending: &PendingLogin,
        redirect_uri: &str,
        code: &str,
        iss: Option<&str>,
    ) -> Result<OidcIdentity, OidcError> {
        let p = self.get(&pending.provider)?;
        if let Some(iss) = iss
            && iss != p.config.issuer
        {
            return Err(OidcError::IdToken(
                "the authorization response names another issuer (RFC 9207)".to_owned(),
            ));
        }
        let client = self.client(&p, redirect_uri).await?;
        let http = http_client(self.http.clone());
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Configuration(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&http)
            .await
            .map_err(|e| OidcError::Exchange(openidconnect_error_text(&e)))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::IdToken("the token response has no ID token".to_owned()))?;
        let verifier = client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &Nonce::new(pending.nonce.clone()))
            .map_err(|e| OidcError::IdToken(e.to_string()))?;
        let sub = claims.subject().as_str().to_owned();
        let username = claims
            .preferred_username()
            .map(|u| u.as_str().to_owned())
            .or_else(|| claims.email().map(|e| e.as_str().to_owned()))
            .unwrap_or_else(|| sub.clone());
        let raw = id_token.to_string();
        // The token verified above; its payload is read again only for the groups claim,
        // which the crate's standard claims do not carry.
        let groups = groups_claim(&raw, &p.config.groups_claim);
        Ok(OidcIdentity {
            subject: format!("{}:{sub}", p.config.id),
            username: clean_text(&username, 256).unwrap_or_else(|| sub.clone()),
            groups,
            id_token: raw,
        })
    }

    /// Where to send the browser to end the provider's session too (RP-initiated logout), if
    /// the provider has an end session endpoint.
    pub async fn end_session_url(&self, provider_id: &str, id_token: &str) -> Option<String> {
        let p = self.get(provider_id).ok()?;
        let metadata = self.metadata(&p).await.ok()?;
        let endpoint = metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let mut request =
            LogoutRequest::from(endpoint).set_client_id(ClientId::new(p.config.client_id.clone()));
        if let Ok(token) = CoreIdToken::from_str(id_token) {
            request = request.set_id_token_hint(&token);
        }
        if !p.config.post_logout_redirect_uri.is_empty()
            && let Ok(uri) = PostLogoutRedirectUrl::new(p.config.post_logout_redirect_uri.clone())
        {
            request = request.set_post_logout_redirect_uri(uri);
        }
        Some(request.http_get_url().to_string())
    }
}

/// The text of an openidconnect error with its sources (they carry the useful part).
fn openidconnect_error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn clean_text(text: &str, max: usize) -> Option<String> {
    let t = text.trim();
    (!t.is_empty() && t.chars().count() <= max && !t.chars().any(char::is_control))
        .then(|| t.to_owned())
}

/// The groups in claim `name` of a (verified) JWT: a list of strings or one string.
fn groups_claim(jwt: &str, name: &str) -> Vec<String> {
    let Some(payload) = jwt.split('.').nth(1) else {
        return Vec::new();
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(payload) else {
        return Vec::new();
    };
    let Ok(claims) = serde_json::from_slice::<HashMap<String, serde_json::Value>>(&bytes) else {
        return Vec::new();
    };
    let values: Vec<String> = match claims.get(name) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let mut groups: Vec<String> = values
        .iter()
        .filter_map(|g| clean_text(g.strip_prefix('/').unwrap_or(g), MAX_GROUP_LEN))
        .take(MAX_GROUPS)
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_login_opens_only_with_its_keyring_and_in_time() {
        let ring = Keyring::from_base64(&Keyring::generate_base64(), &[]).unwrap();
        let mut p = PendingLogin {
            provider: "kc".into(),
            state: "s".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            return_to: "/".into(),
            started_at: chrono::Utc::now().timestamp(),
        };
        let cookie = p.seal(&ring);
        assert!(!cookie.contains("\"v\""));
        assert_eq!(PendingLogin::open(&ring, &cookie).unwrap().state, "s");
        let other = Keyring::from_base64(&Keyring::generate_base64(), &[]).unwrap();
        assert!(PendingLogin::open(&other, &cookie).is_none());
        assert!(PendingLogin::open(&ring, "garbage").is_none());
        p.started_at -= LOGIN_TIMEOUT_SECONDS + 1;
        assert!(PendingLogin::open(&ring, &p.seal(&ring)).is_none());
    }

    #[test]
    fn groups_come_from_the_configured_claim_without_keycloak_slashes() {
        let payload = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"groups": ["/team", "ops", "ops", "bad\u{7}"], "roles": "one"})
                .to_string(),
        );
        let jwt = format!("h.{payload}.s");
        assert_eq!(groups_claim(&jwt, "groups"), vec!["ops", "team"]);
        assert_eq!(groups_claim(&jwt, "roles"), vec!["one"]);
        assert!(groups_claim(&jwt, "missing").is_empty());
        assert!(groups_claim("nonsense", "groups").is_empty());
    }
}
