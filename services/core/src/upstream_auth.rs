//! Credentials that the gateway (and the registry's health checker) add to the requests they
//! send to a registered MCP server, per its [`UpstreamAuth`].
//!
//! Rules of this module:
//! - Secrets (bearer tokens, API keys, client secrets, fetched access tokens, AWS keys) stay
//!   in `secrecy` types from the moment they are opened until they are written into a
//!   request; the header values written are marked sensitive. `Debug` shows the kind and the
//!   non-secret settings only. No error message and no log line carries a secret or a token:
//!   an identity provider's `error_description` is cut short and scrubbed of the client
//!   secret before it is shown.
//! - OAuth 2.0 client credentials: one access token per [`UpstreamCredentials`], fetched on
//!   first use and reused until shortly before `expires_in` runs out (30 s early, or at 90 %
//!   of the lifetime for short-lived tokens). One caller fetches while the others wait for
//!   its result. A failed fetch is remembered for `failure_backoff`, so a down or
//!   misconfigured identity provider is not hammered (nor a client locked out); a token that
//!   has not expired yet keeps being used meanwhile. The token URL must pass the egress
//!   policy at every fetch (DNS answers change) and redirects are not followed.
//! - AWS SigV4: requests are signed in the header form ([`sigv4`]) with the gateway's own
//!   AWS identity from aws-config's default chain (ECS task role, environment, profile, ...),
//!   cached until 5 minutes before it expires. With `role_arn`, that identity assumes the
//!   role through STS first (aws-config's `AssumeRoleProvider`); the role's credentials are
//!   cached the same way. The body must be known when signing (no streaming bodies).
//!
//! The caller opens the sealed values ([`UpstreamCredentials::from_record`] does it with the
//! record's own associated data, see [`fields`]), builds one `UpstreamCredentials` per server
//! and keeps it as long as the record does not change: the token and credentials caches live
//! in it.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use aws_config::sts::AssumeRoleProvider;
use aws_sdk_secretsmanager::config::{Credentials, ProvideCredentials};
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::domain::server::{ServerRecord, UpstreamAuth};
use crate::egress::{EgressError, EgressPolicy};
use crate::secrets::{Keyring, SealedSecret, SecretError};

pub mod sigv4;

/// The associated-data field names under which a record's upstream secrets are sealed
/// (`server:<id>:<field>`, see [`ServerRecord::open_secret`]).
pub mod fields {
    /// `UpstreamAuth::Bearer::token`.
    pub const TOKEN: &str = "upstream_auth.token";
    /// `UpstreamAuth::ApiKey::key`.
    pub const KEY: &str = "upstream_auth.key";
    /// `UpstreamAuth::Oauth2ClientCredentials::client_secret`.
    pub const CLIENT_SECRET: &str = "upstream_auth.client_secret";
}

/// Largest token endpoint response read.
const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest `error_description` of an identity provider quoted in an error.
const MAX_DESCRIPTION_CHARS: usize = 200;
/// AWS credentials are refreshed this long before they expire.
const AWS_REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Credentials without an expiry (static keys) are read from the chain again after this long.
const AWS_STATIC_CREDENTIALS_TTL: Duration = Duration::from_secs(900);
/// The STS session name of assumed roles (shows in the role's CloudTrail entries).
const ASSUME_ROLE_SESSION_NAME: &str = "mcpgw-upstream";

/// Why credentials could not be built or added. Messages never contain a secret or a token
/// and are safe to log and to show to the server's owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamAuthError {
    #[error("the stored {field} could not be opened: {reason}")]
    Secret { field: &'static str, reason: String },
    #[error("{field} is not usable in an HTTP header")]
    InvalidHeader { field: &'static str },
    #[error("the token URL {url} is refused by the egress policy: {reason}")]
    Egress { url: String, reason: EgressError },
    #[error("the token request to {url} failed: {reason}")]
    TokenRequest { url: String, reason: String },
    #[error("the token endpoint {url} refused client {client_id:?}: HTTP {status}{}", oauth_error(.error, .description))]
    TokenRefused {
        url: String,
        client_id: String,
        status: u16,
        /// The OAuth `error` code, e.g. `invalid_client`.
        error: Option<String>,
        /// The provider's `error_description`, shortened and scrubbed of the client secret.
        description: Option<String>,
    },
    #[error("the token endpoint {url} sent an unusable response: {reason}")]
    TokenResponse { url: String, reason: String },
    #[error("AWS credentials are not available: {0}")]
    AwsCredentials(String),
    #[error("the request cannot be signed: {0}")]
    Signing(String),
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
}

fn oauth_error(error: &Option<String>, description: &Option<String>) -> String {
    match (error, description) {
        (None, None) => String::new(),
        (Some(e), None) => format!(" ({e})"),
        (None, Some(d)) => format!(" ({d})"),
        (Some(e), Some(d)) => format!(" ({e}: {d})"),
    }
}

impl UpstreamAuthError {
    /// Whether trying again later may help (network trouble, a provider's 5xx or 429), as
    /// opposed to a configuration the server's owner must fix (wrong secret, refused URL).
    pub fn is_transient(&self) -> bool {
        match self {
            UpstreamAuthError::TokenRequest { .. } | UpstreamAuthError::AwsCredentials(_) => true,
            UpstreamAuthError::TokenRefused { status, .. } => *status >= 500 || *status == 429,
            UpstreamAuthError::Egress { reason, .. } => {
                matches!(reason, EgressError::Unresolvable { .. })
            }
            UpstreamAuthError::Secret { .. }
            | UpstreamAuthError::InvalidHeader { .. }
            | UpstreamAuthError::TokenResponse { .. }
            | UpstreamAuthError::Signing(_)
            | UpstreamAuthError::Client(_) => false,
        }
    }
}

/// How the gateway authenticates itself at a token endpoint (RFC 6749 section 2.3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-encoded client id and secret (the default every provider
    /// must support).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// Settings shared by every server's credentials.
#[derive(Debug, Clone)]
pub struct UpstreamAuthSettings {
    /// Time limit of one token request. Default 10 s.
    pub token_timeout: Duration,
    /// A token is refreshed this long before it expires, or at 90 % of its lifetime when that
    /// comes first. Default 30 s.
    pub refresh_margin: Duration,
    /// Lifetime assumed when a token response has no `expires_in`. Default 5 minutes.
    pub default_token_lifetime: Duration,
    /// After a failed fetch, no new fetch for this long (the error, or a token that is still
    /// valid, is used meanwhile). Default 5 s.
    pub failure_backoff: Duration,
    /// How clients authenticate at token endpoints. Default `client_secret_basic`.
    pub client_auth: ClientAuthMethod,
}

impl Default for UpstreamAuthSettings {
    fn default() -> Self {
        Self {
            token_timeout: Duration::from_secs(10),
            refresh_margin: Duration::from_secs(30),
            default_token_lifetime: Duration::from_secs(300),
            failure_backoff: Duration::from_secs(5),
            client_auth: ClientAuthMethod::ClientSecretBasic,
        }
    }
}

/// What every server's credentials share: the HTTP client for token requests, the egress
/// policy token URLs must pass, the gateway's AWS identity and the settings. Cheap to clone.
#[derive(Clone)]
pub struct UpstreamAuthContext {
    http: reqwest::Client,
    egress: Option<EgressPolicy>,
    aws: AwsIdentity,
    settings: UpstreamAuthSettings,
}

impl std::fmt::Debug for UpstreamAuthContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamAuthContext")
            .field("egress", &self.egress.as_ref().map(EgressPolicy::config))
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl UpstreamAuthContext {
    /// `egress: None` checks no token URL (tests, or a deployment that checks elsewhere).
    pub fn new(
        settings: UpstreamAuthSettings,
        egress: Option<EgressPolicy>,
        aws: AwsIdentity,
    ) -> Result<Self, UpstreamAuthError> {
        // With a policy, token requests connect only to addresses it checked at connect time
        // (a token URL that rebinds after its check reaches nothing).
        let builder = match &egress {
            Some(policy) => crate::egress::client_builder(Arc::new(policy.clone())),
            None => reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()),
        };
        let http = builder
            .timeout(settings.token_timeout)
            .user_agent(concat!("mcpgw/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| UpstreamAuthError::Client(error_chain(&e)))?;
        Ok(Self {
            http,
            egress,
            aws,
            settings,
        })
    }

    pub fn settings(&self) -> &UpstreamAuthSettings {
        &self.settings
    }
}

/// The gateway's own AWS identity: configuration loaded once, on first use, and its
/// credentials cached until 5 minutes before they expire. Cheap to clone; clones share the
/// cache.
#[derive(Clone)]
pub struct AwsIdentity {
    inner: Arc<AwsIdentityInner>,
}

struct AwsIdentityInner {
    loader: Mutex<Option<aws_config::ConfigLoader>>,
    config: OnceCell<aws_config::SdkConfig>,
    credentials: Cache<Credentials>,
}

impl std::fmt::Debug for AwsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsIdentity")
            .field("loaded", &self.inner.config.initialized())
            .finish()
    }
}

impl AwsIdentity {
    /// aws-config's default chain (environment, profile, web identity, ECS, IMDS).
    pub fn default_chain() -> Self {
        Self::from_loader(aws_config::defaults(aws_config::BehaviorVersion::latest()))
    }

    /// A configured loader, e.g. with an endpoint override and static credentials for an
    /// emulator. It is loaded on first use.
    pub fn from_loader(loader: aws_config::ConfigLoader) -> Self {
        Self {
            inner: Arc::new(AwsIdentityInner {
                loader: Mutex::new(Some(loader)),
                config: OnceCell::new(),
                credentials: Cache::new(AWS_REFRESH_MARGIN, Duration::from_secs(5)),
            }),
        }
    }

    async fn sdk_config(&self) -> &aws_config::SdkConfig {
        self.inner
            .config
            .get_or_init(|| async {
                let loader = self
                    .inner
                    .loader
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                match loader {
                    Some(loader) => loader.load().await,
                    // Only reachable if a previous initialisation was cancelled mid-way.
                    None => {
                        aws_config::defaults(aws_config::BehaviorVersion::latest())
                            .load()
                            .await
                    }
                }
            })
            .await
    }

    async fn credentials(&self) -> Result<Credentials, UpstreamAuthError> {
        self.inner
            .credentials
            .get_or_fetch(|| async {
                let config = self.sdk_config().await;
                let provider = config.credentials_provider().ok_or_else(|| {
                    UpstreamAuthError::AwsCredentials(
                        "no credentials provider is configured".to_owned(),
                    )
                })?;
                let creds = provider.provide_credentials().await.map_err(|e| {
                    UpstreamAuthError::AwsCredentials(DisplayErrorContext(&e).to_string())
                })?;
                let lifetime = aws_lifetime(&creds);
                Ok((creds, lifetime))
            })
            .await
    }
}

fn aws_lifetime(creds: &Credentials) -> Duration {
    match creds.expiry() {
        None => AWS_STATIC_CREDENTIALS_TTL,
        Some(at) => at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    }
}

/// The OAuth 2.0 client credentials grant settings of one server, secret opened.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Sent space-separated as `scope`; none = no `scope` parameter.
    pub scopes: Vec<String>,
    /// Sent as `audience` (Auth0, Okta and others) when set.
    pub audience: Option<String>,
    pub auth_method: ClientAuthMethod,
}

/// Adds one server's upstream credentials to requests. Cheap to clone; clones share the
/// token and credentials caches.
#[derive(Clone)]
pub struct UpstreamCredentials {
    kind: Arc<Kind>,
}

#[expect(
    clippy::large_enum_variant,
    reason = "built once per server and kept behind an Arc"
)]
enum Kind {
    None,
    Bearer(SecretString),
    ApiKey {
        header: HeaderName,
        key: SecretString,
    },
    OAuth2(OAuth2Client),
    AwsSigv4(AwsSigner),
}

impl std::fmt::Debug for UpstreamCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("UpstreamCredentials");
        d.field("kind", &self.kind_name());
        match &*self.kind {
            Kind::None | Kind::Bearer(_) => {}
            Kind::ApiKey { header, .. } => {
                d.field("header", header);
            }
            Kind::OAuth2(c) => {
                d.field("token_url", &c.config.token_url)
                    .field("client_id", &c.config.client_id)
                    .field("scopes", &c.config.scopes)
                    .field("audience", &c.config.audience);
            }
            Kind::AwsSigv4(s) => {
                d.field("service", &s.service)
                    .field("region", &s.region)
                    .field("role_arn", &s.role_arn);
            }
        }
        d.finish_non_exhaustive()
    }
}

/// Where a request's body is, for signing.
#[derive(Debug, Clone, Copy)]
enum Body<'a> {
    Bytes(&'a [u8]),
    /// A streaming body: fine for every kind but SigV4.
    Streaming,
}

impl UpstreamCredentials {
    /// No credentials: requests go out unchanged.
    pub fn none() -> Self {
        Self::from_kind(Kind::None)
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(token: SecretString) -> Result<Self, UpstreamAuthError> {
        bearer_value(token.expose_secret()).map_err(|_| UpstreamAuthError::InvalidHeader {
            field: fields::TOKEN,
        })?;
        Ok(Self::from_kind(Kind::Bearer(token)))
    }

    /// `<header>: <key>`.
    pub fn api_key(header: &str, key: SecretString) -> Result<Self, UpstreamAuthError> {
        let header =
            HeaderName::from_bytes(header.to_ascii_lowercase().as_bytes()).map_err(|_| {
                UpstreamAuthError::InvalidHeader {
                    field: "upstream_auth.header",
                }
            })?;
        HeaderValue::from_str(key.expose_secret())
            .map_err(|_| UpstreamAuthError::InvalidHeader { field: fields::KEY })?;
        Ok(Self::from_kind(Kind::ApiKey { header, key }))
    }

    /// `Authorization: Bearer <token>` with a token from the client credentials grant.
    pub fn oauth2(config: ClientCredentials, context: &UpstreamAuthContext) -> Self {
        Self::from_kind(Kind::OAuth2(OAuth2Client {
            config,
            http: context.http.clone(),
            egress: context.egress.clone(),
            default_lifetime: context.settings.default_token_lifetime,
            cache: Cache::new(
                context.settings.refresh_margin,
                context.settings.failure_backoff,
            ),
        }))
    }

    /// SigV4 signing for `service` in `region` with the context's AWS identity, or with the
    /// role `role_arn` that identity assumes.
    pub fn aws_sigv4(
        service: &str,
        region: &str,
        role_arn: Option<&str>,
        context: &UpstreamAuthContext,
    ) -> Self {
        Self::from_kind(Kind::AwsSigv4(AwsSigner {
            service: service.to_owned(),
            region: region.to_owned(),
            role_arn: role_arn.map(str::to_owned),
            options: sigv4::SigningOptions::for_service(service),
            identity: context.aws.clone(),
            role: OnceCell::new(),
            role_credentials: Cache::new(AWS_REFRESH_MARGIN, context.settings.failure_backoff),
        }))
    }

    /// The credentials of `auth`; `open` opens a sealed value given its field name (one of
    /// [`fields`]).
    pub fn from_auth(
        auth: &UpstreamAuth,
        mut open: impl FnMut(&'static str, &SealedSecret) -> Result<SecretString, SecretError>,
        context: &UpstreamAuthContext,
    ) -> Result<Self, UpstreamAuthError> {
        let mut open = |field: &'static str, sealed: &SealedSecret| {
            open(field, sealed).map_err(|e| UpstreamAuthError::Secret {
                field,
                reason: e.to_string(),
            })
        };
        match auth {
            UpstreamAuth::None => Ok(Self::none()),
            UpstreamAuth::Bearer { token } => Self::bearer(open(fields::TOKEN, token)?),
            UpstreamAuth::ApiKey { header, key } => Self::api_key(header, open(fields::KEY, key)?),
            UpstreamAuth::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
                audience,
            } => Ok(Self::oauth2(
                ClientCredentials {
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    client_secret: open(fields::CLIENT_SECRET, client_secret)?,
                    scopes: scopes.clone(),
                    audience: audience.clone(),
                    auth_method: context.settings.client_auth,
                },
                context,
            )),
            UpstreamAuth::AwsSigv4 {
                service,
                region,
                role_arn,
            } => Ok(Self::aws_sigv4(
                service,
                region,
                role_arn.as_deref(),
                context,
            )),
        }
    }

    /// The credentials of a stored server, its secrets opened with `keyring`.
    pub fn from_record(
        record: &ServerRecord,
        keyring: &Keyring,
        context: &UpstreamAuthContext,
    ) -> Result<Self, UpstreamAuthError> {
        Self::from_auth(
            &record.upstream_auth,
            |field, sealed| {
                record
                    .open_secret(keyring, field, sealed)
                    .map(SecretString::from)
            },
            context,
        )
    }

    fn from_kind(kind: Kind) -> Self {
        Self {
            kind: Arc::new(kind),
        }
    }

    /// `none`, `bearer`, `api_key`, `oauth2_client_credentials` or `aws_sigv4` (for logs and
    /// metrics labels).
    pub fn kind_name(&self) -> &'static str {
        match &*self.kind {
            Kind::None => "none",
            Kind::Bearer(_) => "bearer",
            Kind::ApiKey { .. } => "api_key",
            Kind::OAuth2(_) => "oauth2_client_credentials",
            Kind::AwsSigv4(_) => "aws_sigv4",
        }
    }

    /// Adds the credentials to a request about to be sent with `body`, replacing headers of
    /// the same names. The URI must be absolute or the headers must carry `host` (SigV4).
    pub async fn apply(
        &self,
        parts: &mut http::request::Parts,
        body: &[u8],
    ) -> Result<(), UpstreamAuthError> {
        let add = self
            .headers_for(
                &parts.method,
                &parts.uri,
                &parts.headers,
                Body::Bytes(body),
                SystemTime::now(),
            )
            .await?;
        insert_all(&mut parts.headers, add);
        Ok(())
    }

    /// [`apply`](Self::apply) for a built `reqwest` request. SigV4 needs the body in memory (a
    /// streaming body is refused); the other kinds do not look at it.
    pub async fn apply_to_reqwest(
        &self,
        request: &mut reqwest::Request,
    ) -> Result<(), UpstreamAuthError> {
        let uri: Uri =
            request.url().as_str().parse().map_err(|e| {
                UpstreamAuthError::Signing(format!("the URL is not a valid URI: {e}"))
            })?;
        let body = match request.body() {
            None => Body::Bytes(&[]),
            Some(b) => b.as_bytes().map_or(Body::Streaming, Body::Bytes),
        };
        let add = self
            .headers_for(
                request.method(),
                &uri,
                request.headers(),
                body,
                SystemTime::now(),
            )
            .await?;
        insert_all(request.headers_mut(), add);
        Ok(())
    }

    /// Forgets a cached access token, e.g. after the upstream answered 401 to it: the next
    /// request fetches a new one. No effect on other kinds.
    pub fn invalidate(&self) {
        if let Kind::OAuth2(c) = &*self.kind {
            c.cache.invalidate();
        }
    }

    /// The headers to add, for a request at `now`.
    async fn headers_for(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Body<'_>,
        now: SystemTime,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, UpstreamAuthError> {
        match &*self.kind {
            Kind::None => Ok(Vec::new()),
            Kind::Bearer(token) => Ok(vec![(
                http::header::AUTHORIZATION,
                bearer_value(token.expose_secret()).map_err(|_| {
                    UpstreamAuthError::InvalidHeader {
                        field: fields::TOKEN,
                    }
                })?,
            )]),
            Kind::ApiKey { header, key } => {
                let mut value = HeaderValue::from_str(key.expose_secret())
                    .map_err(|_| UpstreamAuthError::InvalidHeader { field: fields::KEY })?;
                value.set_sensitive(true);
                Ok(vec![(header.clone(), value)])
            }
            Kind::OAuth2(client) => {
                let token = client.token().await?;
                let value = bearer_value(token.expose_secret()).map_err(|_| {
                    UpstreamAuthError::TokenResponse {
                        url: display_url(&client.config.token_url),
                        reason: "the access token is not usable in an HTTP header".to_owned(),
                    }
                })?;
                Ok(vec![(http::header::AUTHORIZATION, value)])
            }
            Kind::AwsSigv4(signer) => {
                let Body::Bytes(body) = body else {
                    return Err(UpstreamAuthError::Signing(
                        "a streaming body cannot be signed with SigV4; buffer it first".to_owned(),
                    ));
                };
                signer.sign(method, uri, headers, body, now).await
            }
        }
    }
}

fn insert_all(headers: &mut HeaderMap, add: Vec<(HeaderName, HeaderValue)>) {
    for (name, value) in add {
        headers.insert(name, value);
    }
}

fn bearer_value(token: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// A URL for messages: scheme, host, port and path (no query, which might carry something
/// private).
fn display_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            url.set_query(None);
            url.set_fragment(None);
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => "(an invalid URL)".to_owned(),
    }
}

/// An error and its sources, `: `-separated (reqwest's own message alone says little).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// OAuth 2.0 client credentials

struct OAuth2Client {
    config: ClientCredentials,
    http: reqwest::Client,
    egress: Option<EgressPolicy>,
    default_lifetime: Duration,
    cache: Cache<SecretString>,
}

/// A token endpoint's answer (RFC 6749 section 5.1); `expires_in` as a number or a string
/// (some providers send `"3599"`).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<SecretString>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: Option<String>,
    error_description: Option<String>,
}

impl OAuth2Client {
    async fn token(&self) -> Result<SecretString, UpstreamAuthError> {
        self.cache.get_or_fetch(|| self.fetch()).await
    }

    async fn fetch(&self) -> Result<(SecretString, Duration), UpstreamAuthError> {
        let shown = display_url(&self.config.token_url);
        let url = match &self.egress {
            Some(policy) => policy
                .check_url(&self.config.token_url)
                .await
                .map_err(|reason| UpstreamAuthError::Egress {
                    url: shown.clone(),
                    reason,
                })?,
            None => url::Url::parse(&self.config.token_url).map_err(|e| {
                UpstreamAuthError::TokenRequest {
                    url: shown.clone(),
                    reason: format!("not a valid URL: {e}"),
                }
            })?,
        };
        let scope = self.config.scopes.join(" ");
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        if let Some(audience) = &self.config.audience {
            form.push(("audience", audience));
        }
        let mut request = self
            .http
            .post(url)
            .header(http::header::ACCEPT, "application/json");
        match self.config.auth_method {
            ClientAuthMethod::ClientSecretBasic => {
                request = request.header(
                    http::header::AUTHORIZATION,
                    basic_auth(&self.config.client_id, &self.config.client_secret),
                );
            }
            ClientAuthMethod::ClientSecretPost => {
                form.push(("client_id", &self.config.client_id));
                form.push(("client_secret", self.config.client_secret.expose_secret()));
            }
        }
        let started = Instant::now();
        let response = request.form(&form).send().await.map_err(|e| {
            let reason = if e.is_timeout() {
                "timed out".to_owned()
            } else {
                error_chain(&e.without_url())
            };
            UpstreamAuthError::TokenRequest {
                url: shown.clone(),
                reason,
            }
        })?;
        let status = response.status();
        let body = read_capped(response, MAX_TOKEN_RESPONSE_BYTES)
            .await
            .map_err(|reason| UpstreamAuthError::TokenRequest {
                url: shown.clone(),
                reason,
            })?;
        if !status.is_success() {
            let parsed: Option<ErrorResponse> = serde_json::from_slice(&body).ok();
            let (error, description) = parsed
                .map(|p| (p.error, p.error_description))
                .unwrap_or_default();
            let scrub = |text: String| self.scrub(&text);
            tracing::warn!(
                token.url = %shown,
                client_id = %self.config.client_id,
                http.status = status.as_u16(),
                error = error.as_deref().unwrap_or(""),
                "token endpoint refused the client credentials"
            );
            return Err(UpstreamAuthError::TokenRefused {
                url: shown,
                client_id: self.config.client_id.clone(),
                status: status.as_u16(),
                error: error.map(scrub),
                description: description.map(scrub),
            });
        }
        let unusable = |reason: &str| UpstreamAuthError::TokenResponse {
            url: shown.clone(),
            reason: reason.to_owned(),
        };
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| unusable("the body is not a JSON token response"))?;
        let token = parsed
            .access_token
            .filter(|t| !t.expose_secret().is_empty())
            .ok_or_else(|| unusable("it has no access_token"))?;
        if let Some(kind) = &parsed.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(unusable(&format!(
                "its token_type is {:?}; only Bearer tokens are supported",
                self.scrub(kind)
            )));
        }
        if bearer_value(token.expose_secret()).is_err() {
            return Err(unusable("the access token is not usable in an HTTP header"));
        }
        let lifetime = match parsed.expires_in.as_ref().and_then(seconds) {
            Some(0) | None => self.default_lifetime,
            Some(s) => Duration::from_secs(s),
        };
        tracing::debug!(
            token.url = %shown,
            client_id = %self.config.client_id,
            expires_in = lifetime.as_secs(),
            duration_ms = started.elapsed().as_millis() as u64,
            "fetched an upstream access token"
        );
        Ok((token, lifetime))
    }

    /// Text from the provider, shortened and with the client secret cut out.
    fn scrub(&self, text: &str) -> String {
        let secret = self.config.client_secret.expose_secret();
        let text = if secret.is_empty() {
            text.to_owned()
        } else {
            text.replace(secret, "[redacted]")
        };
        let mut short: String = text
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_DESCRIPTION_CHARS)
            .collect();
        if text.chars().count() > MAX_DESCRIPTION_CHARS {
            short.push('…');
        }
        short
    }
}

fn seconds(value: &serde_json::Value) -> Option<u64> {
    match value {
        serde_json::Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `Basic base64(urlencode(id):urlencode(secret))`, as RFC 6749 section 2.3.1 asks.
fn basic_auth(client_id: &str, secret: &SecretString) -> HeaderValue {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = SecretString::from(format!(
        "{}:{}",
        encode(client_id),
        encode(secret.expose_secret())
    ));
    let mut value = HeaderValue::from_str(&format!("Basic {}", B64.encode(pair.expose_secret())))
        .expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| error_chain(&e.without_url()))?
    {
        if body.len() + chunk.len() > cap {
            return Err(format!("the response is larger than {cap} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------------
// AWS SigV4

struct AwsSigner {
    service: String,
    region: String,
    role_arn: Option<String>,
    options: sigv4::SigningOptions,
    identity: AwsIdentity,
    role: OnceCell<AssumeRoleProvider>,
    role_credentials: Cache<Credentials>,
}

impl AwsSigner {
    async fn credentials(&self) -> Result<Credentials, UpstreamAuthError> {
        let Some(role_arn) = &self.role_arn else {
            return self.identity.credentials().await;
        };
        self.role_credentials
            .get_or_fetch(|| async {
                let provider = self
                    .role
                    .get_or_init(|| async {
                        let base = self.identity.sdk_config().await;
                        let mut builder = AssumeRoleProvider::builder(role_arn.clone())
                            .configure(base)
                            .session_name(ASSUME_ROLE_SESSION_NAME);
                        if base.region().is_none() {
                            builder = builder.region(aws_config::Region::new(self.region.clone()));
                        }
                        builder.build().await
                    })
                    .await;
                let creds = provider.provide_credentials().await.map_err(|e| {
                    UpstreamAuthError::AwsCredentials(format!(
                        "assuming role {role_arn}: {}",
                        DisplayErrorContext(&e)
                    ))
                })?;
                let lifetime = aws_lifetime(&creds);
                Ok((creds, lifetime))
            })
            .await
    }

    async fn sign(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, UpstreamAuthError> {
        let host = match uri.host() {
            Some(host) => match uri.port_u16() {
                Some(port) if !is_default_port(uri.scheme_str(), port) => {
                    format!("{host}:{port}")
                }
                _ => host.to_owned(),
            },
            None => String::new(),
        };
        let payload = sigv4::payload_hash(body);
        let creds = self.credentials().await?;
        let keys = sigv4::AwsKeys {
            access_key_id: creds.access_key_id(),
            secret_access_key: creds.secret_access_key(),
            session_token: creds.session_token(),
        };
        let request = sigv4::SignableRequest {
            method: method.as_str(),
            host: &host,
            path: uri.path(),
            query: uri.query().unwrap_or(""),
            headers,
            payload_sha256: &payload,
        };
        sigv4::sign(
            &request,
            &keys,
            &self.region,
            &self.service,
            now,
            self.options,
        )
        .map(|signed| signed.headers)
        .map_err(|e| UpstreamAuthError::Signing(e.to_string()))
    }
}

fn is_default_port(scheme: Option<&str>, port: u16) -> bool {
    matches!((scheme, port), (Some("http"), 80) | (Some("https"), 443))
}

// ---------------------------------------------------------------------------------------------
// The single-flight cache of tokens and credentials

/// One cached value with a lifetime. Readers take a fresh value without waiting; when it is
/// stale, one caller fetches while the others wait for the flight lock and then find the new
/// value (or the failure) in the state.
struct Cache<T> {
    /// Refresh this long before expiry, or at 90 % of the lifetime when that comes first.
    margin: Duration,
    /// No new fetch for this long after a failed one.
    backoff: Duration,
    state: Mutex<CacheState<T>>,
    flight: tokio::sync::Mutex<()>,
}

struct CacheState<T> {
    entry: Option<Entry<T>>,
    failure: Option<(Instant, UpstreamAuthError)>,
}

struct Entry<T> {
    value: T,
    refresh_at: Instant,
    expires_at: Instant,
}

impl<T: Clone> Cache<T> {
    fn new(margin: Duration, backoff: Duration) -> Self {
        Self {
            margin,
            backoff,
            state: Mutex::new(CacheState {
                entry: None,
                failure: None,
            }),
            flight: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn invalidate(&self) {
        self.lock().entry = None;
    }

    /// The cached value if it is fresh; otherwise `fetch` runs (in one caller at a time) and
    /// returns the value and how long it is valid from when the fetch started.
    async fn get_or_fetch<F, Fut>(&self, fetch: F) -> Result<T, UpstreamAuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, Duration), UpstreamAuthError>>,
    {
        let asked = Instant::now();
        if let Some(entry) = &self.lock().entry
            && asked < entry.refresh_at
        {
            return Ok(entry.value.clone());
        }
        let _flight = self.flight.lock().await;
        {
            let state = self.lock();
            let now = Instant::now();
            if let Some(entry) = &state.entry
                && now < entry.refresh_at
            {
                return Ok(entry.value.clone());
            }
            // A failure that happened while this caller waited, or within the backoff.
            if let Some((at, error)) = &state.failure
                && (*at >= asked || now < *at + self.backoff)
            {
                if let Some(entry) = &state.entry
                    && now < entry.expires_at
                {
                    return Ok(entry.value.clone());
                }
                return Err(error.clone());
            }
        }
        let started = Instant::now();
        let result = fetch().await;
        let mut state = self.lock();
        match result {
            Ok((value, lifetime)) => {
                let early = self.margin.min(lifetime / 10);
                state.entry = Some(Entry {
                    value: value.clone(),
                    refresh_at: started + (lifetime - early),
                    expires_at: started + lifetime,
                });
                state.failure = None;
                Ok(value)
            }
            Err(error) => {
                let now = Instant::now();
                state.failure = Some((now, error.clone()));
                if let Some(entry) = &state.entry
                    && now < entry.expires_at
                {
                    tracing::warn!(error = %error, "refreshing upstream credentials failed; using the current ones until they expire");
                    return Ok(entry.value.clone());
                }
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests;
