//! Validation of bearer JWTs from trusted issuers, in-process, with a JWKS cache.
//!
//! Rules of this module:
//! - Only configured issuers are trusted; the `iss` of a token picks its issuer's settings
//!   (algorithms, audiences, token types, claim names) before anything is verified.
//! - Algorithms come from a per-issuer allow-list of asymmetric algorithms. `none` and every
//!   HMAC algorithm are refused outright, so a token "signed" with a public key as an HMAC
//!   secret never verifies.
//! - A token must name its key (`kid`). Keys come from the issuer's JWKS, fetched on first use,
//!   refreshed when a token names an unknown `kid` (at most once per `refresh_min_interval`, so a
//!   flood of bogus `kid`s cannot hammer the IdP) and when the cache is older than `jwks_ttl`.
//!   A failed refresh keeps the cached keys: tokens keep validating while the IdP is down.
//! - `exp` is required; `exp` and `nbf` are checked with a small leeway; `iss` and `aud` must
//!   match. The token type is checked both in the header (`typ`) and, where an IdP puts it in
//!   the payload (Keycloak's `typ: "ID"` or `"Refresh"`), there: only access tokens pass.
//! - An ID token is never an access token, even when its `aud` (the client it was issued to)
//!   is a configured audience: a token carrying `nonce`, `at_hash` or `c_hash` (claims only ID
//!   tokens have, OpenID Connect Core 1.0 section 2 and 3.1.3.6), a payload `typ` of `ID`, or
//!   Cognito's `token_use: "id"` is refused. Access-token shapes that pass: RFC 9068 (`typ:
//!   at+jwt`), Keycloak's (`typ: "Bearer"` in the payload) and Entra ID, Okta and Auth0 access
//!   tokens, which carry none of these claims. Keycloak before 25 also put `nonce` into access
//!   tokens of the code flow (keycloak/keycloak#26893): those are refused; use Keycloak 25+.
//! - A resource server may also accept its own resource URLs as audiences (RFC 8707): with
//!   [`IssuerConfig::resource_base`] set (by the gateway, never by configuration), an `aud`
//!   of `<base>/mcp` or `<base>/<server>/mcp` passes besides the configured `audiences`;
//!   which routes such a token may use is the resource server's check
//!   ([`resource_audience`]), on every request.
//! - `sub` is required and non-empty: sessions, rate-limit buckets and audit subjects are keyed
//!   by issuer and subject, so two callers without one would be the same caller.
//! - Nothing here logs a token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

/// Settings for one trusted issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss` value, e.g. `https://kc.example.com/realms/mcpgw`.
    pub issuer: String,
    /// Where the keys are; empty = from the issuer's OpenID discovery document.
    #[serde(default)]
    pub jwks_uri: String,
    /// Accepted `aud` values (one must match).
    pub audiences: Vec<String>,
    /// Accepted signature algorithms (asymmetric only).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<Algorithm>,
    /// Accepted header `typ` values (case-insensitive); empty = any.
    #[serde(default = "default_token_types")]
    pub token_types: Vec<String>,
    /// The claim that carries IdP groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Where the issuer lists revoked token ids (the auth-server's `/api/v1/revocations`);
    /// empty = the issuer revokes nothing early. With it set, tokens must carry a `jti`.
    #[serde(default)]
    pub revocations_url: String,
    /// The public base URL of the resource server this validator guards (the gateway's),
    /// whose resource URLs are accepted as audiences (see the module rules). Set by code.
    #[serde(skip)]
    pub resource_base: Option<String>,
}

/// What an `aud` that is one of a resource server's URLs names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceAudience<'a> {
    /// `<base>/mcp`: the aggregated endpoint, which is every route.
    Aggregated,
    /// `<base>/<server>/mcp`: that server's route only.
    Server(&'a str),
}

/// Whether `aud` is one of the resource URLs under `base` (no trailing slash), and which.
pub fn resource_audience<'a>(base: &str, aud: &'a str) -> Option<ResourceAudience<'a>> {
    let path = aud.strip_prefix(base)?.strip_prefix('/')?;
    if path == "mcp" {
        return Some(ResourceAudience::Aggregated);
    }
    let server = path.strip_suffix("/mcp")?;
    (!server.is_empty() && !server.contains(['/', '?', '#']))
        .then_some(ResourceAudience::Server(server))
}

fn default_algorithms() -> Vec<Algorithm> {
    vec![
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ]
}

fn default_token_types() -> Vec<String> {
    vec!["JWT".to_owned(), "at+jwt".to_owned()]
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

/// Validator-wide settings.
#[derive(Debug, Clone)]
pub struct ValidatorSettings {
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Least time between two JWKS fetches of one issuer.
    pub refresh_min_interval: Duration,
    /// Age after which cached keys are refreshed (failures keep the old keys).
    pub jwks_ttl: Duration,
    /// Time limit of one JWKS or discovery request.
    pub http_timeout: Duration,
    /// Age after which an issuer's revocation list is fetched again (on the next token). A
    /// failed fetch keeps the last list: revocations then apply once the issuer answers again.
    pub revocation_refresh: Duration,
}

impl Default for ValidatorSettings {
    fn default() -> Self {
        Self {
            leeway: Duration::from_secs(30),
            refresh_min_interval: Duration::from_secs(10),
            jwks_ttl: Duration::from_secs(600),
            http_timeout: Duration::from_secs(5),
            revocation_refresh: Duration::from_secs(2),
        }
    }
}

/// Why a token was refused. The messages are safe to return to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    /// The bearer is not a JWT at all (not three dot-separated parts): most often a registry
    /// API key (`mcpgw_<id>.<secret>`) sent where an access token is needed. The text says
    /// what to send instead, because "not well-formed" left new users guessing. ASCII only:
    /// it is also the challenge's `error_description`.
    #[error(
        "the bearer is not a JWT (an API key?): this takes OAuth access tokens (JWTs) from the auth-server; mint one on the console's Tokens page (/console/tokens) or with the auth-server's POST /api/v1/tokens"
    )]
    NotAJwt,
    #[error("the token's issuer is not trusted here")]
    UntrustedIssuer,
    #[error("the token's algorithm {0} is not allowed")]
    Algorithm(String),
    #[error("the token names no key id (kid)")]
    NoKeyId,
    #[error("the token's key {0:?} is not among the issuer's keys")]
    UnknownKey(String),
    #[error("the issuer's keys could not be fetched: {0}")]
    KeysUnavailable(String),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is not meant for this audience")]
    Audience,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token is not an access token ({0})")]
    TokenType(String),
    #[error(
        "the token is an ID token ({0}), not an access token: send the access token the identity provider issued for this audience"
    )]
    IdToken(String),
    #[error(
        "the token names no subject (`sub`): callers are told apart by issuer and subject, so the identity provider must include `sub` in access tokens (Keycloak 25+: give the client the `basic` client scope)"
    )]
    NoSubject,
    #[error("the token lacks a required claim: {0}")]
    MissingClaim(String),
    #[error("the token has been revoked")]
    Revoked,
    /// Valid, but its audience names other resources than this endpoint (RFC 8707).
    #[error(
        "the token is for {0}, not for this endpoint: sign in for this endpoint's URL, or for the aggregated /mcp"
    )]
    OtherResource(String),
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
    /// IdP groups, without Keycloak's leading `/` for full paths.
    pub groups: Vec<String>,
    /// OAuth scopes (`scope` as a space-separated string or `scp` as a list).
    pub scopes: Vec<String>,
    /// The OAuth client the token was issued to (`client_id`, `azp` or `cid`).
    pub client_id: Option<String>,
    /// `preferred_username`, `username` or `email`, for people to read.
    pub username: Option<String>,
    /// `jti`, for revocation.
    pub token_id: Option<String>,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
    /// Every claim, for callers that need more.
    pub claims: Value,
}

struct CachedKey {
    key: DecodingKey,
    /// The `alg` the JWK declares, if any: the header must then agree.
    alg: Option<Algorithm>,
}

#[derive(Default)]
struct KeyState {
    keys: HashMap<String, Arc<CachedKey>>,
    jwks_uri: Option<String>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
    fetches: u64,
}

/// Revoked token ids of one issuer, with their expiry (they leave the list when expired).
#[derive(Default)]
struct Revoked {
    ids: HashMap<String, i64>,
    /// What the issuer said its list was current as of; sent back as `since`.
    as_of: Option<String>,
    fetched_at: Option<Instant>,
}

struct Issuer {
    config: IssuerConfig,
    state: RwLock<KeyState>,
    refreshing: Mutex<()>,
    revoked: RwLock<Revoked>,
    fetching_revocations: Mutex<()>,
}

/// Validates tokens of the configured issuers. Cheap to share behind an `Arc`.
pub struct TokenValidator {
    issuers: HashMap<String, Issuer>,
    http: reqwest::Client,
    settings: ValidatorSettings,
}

/// A configuration error in the issuer list.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IssuerConfigError(pub String);

impl TokenValidator {
    pub fn new(
        issuers: Vec<IssuerConfig>,
        settings: ValidatorSettings,
    ) -> Result<Self, IssuerConfigError> {
        let mut map = HashMap::new();
        for config in issuers {
            if config.issuer.is_empty() {
                return Err(IssuerConfigError(
                    "an issuer has an empty `issuer`".to_owned(),
                ));
            }
            if config.audiences.is_empty() {
                return Err(IssuerConfigError(format!(
                    "issuer {} has no audiences: tokens for any audience would pass",
                    config.issuer
                )));
            }
            if let Some(bad) = config.algorithms.iter().find(|a| is_symmetric(**a)) {
                return Err(IssuerConfigError(format!(
                    "issuer {}: {bad:?} is symmetric; only asymmetric algorithms are allowed",
                    config.issuer
                )));
            }
            if !config.revocations_url.is_empty()
                && !config.revocations_url.starts_with("http://")
                && !config.revocations_url.starts_with("https://")
            {
                return Err(IssuerConfigError(format!(
                    "issuer {}: revocations_url must be an http(s) URL",
                    config.issuer
                )));
            }
            if config.algorithms.is_empty() {
                return Err(IssuerConfigError(format!(
                    "issuer {} allows no algorithm",
                    config.issuer
                )));
            }
            let issuer = Issuer {
                state: RwLock::new(KeyState {
                    jwks_uri: (!config.jwks_uri.is_empty()).then(|| config.jwks_uri.clone()),
                    ..Default::default()
                }),
                refreshing: Mutex::new(()),
                revoked: RwLock::new(Revoked::default()),
                fetching_revocations: Mutex::new(()),
                config,
            };
            if map.insert(issuer.config.issuer.clone(), issuer).is_some() {
                return Err(IssuerConfigError(
                    "an issuer is configured twice".to_owned(),
                ));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(settings.http_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| IssuerConfigError(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            issuers: map,
            http,
            settings,
        })
    }

    /// Whether `iss` is one of the trusted issuers.
    pub fn trusts(&self, iss: &str) -> bool {
        self.issuers.contains_key(iss)
    }

    /// How many times the keys of `iss` were fetched (for tests and metrics).
    pub async fn jwks_fetches(&self, iss: &str) -> u64 {
        match self.issuers.get(iss) {
            Some(i) => i.state.read().await.fetches,
            None => 0,
        }
    }

    /// Validates a compact JWT.
    pub async fn validate(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        if token.len() > 16 * 1024 {
            return Err(TokenError::Malformed("longer than 16 KiB".to_owned()));
        }
        if token.split('.').count() != 3 {
            return Err(TokenError::NotAJwt);
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
        let unverified = unverified_claims(token)?;
        let iss = unverified
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| TokenError::MissingClaim("iss".to_owned()))?;
        let issuer = self.issuers.get(iss).ok_or(TokenError::UntrustedIssuer)?;
        let config = &issuer.config;
        if is_symmetric(header.alg) || !config.algorithms.contains(&header.alg) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        if !config.token_types.is_empty() {
            let typ = header.typ.as_deref().unwrap_or("");
            if !config
                .token_types
                .iter()
                .any(|t| t.eq_ignore_ascii_case(typ))
            {
                return Err(TokenError::TokenType(format!("header typ {typ:?}")));
            }
        }
        let kid = header.kid.as_deref().ok_or(TokenError::NoKeyId)?;
        let key = self.key(issuer, kid).await?;
        if let Some(alg) = key.alg
            && alg != header.alg
        {
            return Err(TokenError::Algorithm(format!(
                "{:?} (the key is for {alg:?})",
                header.alg
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&config.issuer]);
        match &config.resource_base {
            // Checked below, against the resource URLs too.
            Some(_) => validation.validate_aud = false,
            None => validation.set_audience(&config.audiences),
        }
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Value>(token, &key.key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::NotYetValid,
                K::InvalidAudience => TokenError::Audience,
                K::InvalidIssuer => TokenError::UntrustedIssuer,
                K::InvalidSignature => TokenError::Signature,
                K::MissingRequiredClaim(c) => TokenError::MissingClaim(c.clone()),
                K::InvalidAlgorithm => TokenError::Algorithm(format!("{:?}", header.alg)),
                _ => TokenError::Malformed(e.to_string()),
            }
        })?;
        let claims = data.claims;
        if let Some(base) = &config.resource_base {
            let acceptable = strings(claims.get("aud"))
                .iter()
                .any(|a| config.audiences.contains(a) || resource_audience(base, a).is_some());
            if !acceptable {
                return Err(TokenError::Audience);
            }
        }
        refuse_non_access_tokens(&claims)?;
        if claims
            .get("sub")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(TokenError::NoSubject);
        }
        let verified = extract(&claims, config);
        if !config.revocations_url.is_empty() {
            let jti = verified
                .token_id
                .as_deref()
                .ok_or_else(|| TokenError::MissingClaim("jti".to_owned()))?;
            if self.is_revoked(issuer, jti).await {
                return Err(TokenError::Revoked);
            }
        }
        Ok(verified)
    }

    /// Re-checks a token this validator accepted earlier (for callers that cache verified
    /// tokens by hash): it must not have expired, and must not be on the revocation list now.
    pub async fn recheck(&self, verified: &VerifiedToken) -> Result<(), TokenError> {
        let now = chrono::Utc::now().timestamp();
        if verified.expires_at + (self.settings.leeway.as_secs() as i64) < now {
            return Err(TokenError::Expired);
        }
        let issuer = self
            .issuers
            .get(&verified.issuer)
            .ok_or(TokenError::UntrustedIssuer)?;
        if !issuer.config.revocations_url.is_empty() {
            let jti = verified
                .token_id
                .as_deref()
                .ok_or_else(|| TokenError::MissingClaim("jti".to_owned()))?;
            if self.is_revoked(issuer, jti).await {
                return Err(TokenError::Revoked);
            }
        }
        Ok(())
    }

    /// Whether `jti` is on the issuer's revocation list, fetching the list when it is older
    /// than `revocation_refresh` (one fetch at a time).
    async fn is_revoked(&self, issuer: &Issuer, jti: &str) -> bool {
        let stale = |r: &Revoked| {
            r.fetched_at
                .is_none_or(|t| t.elapsed() >= self.settings.revocation_refresh)
        };
        if stale(&*issuer.revoked.read().await) {
            let _one_fetch = issuer.fetching_revocations.lock().await;
            if stale(&*issuer.revoked.read().await)
                && let Err(e) = self.fetch_revocations(issuer).await
            {
                tracing::warn!(issuer = %issuer.config.issuer, error = %e, "fetching revocations failed; using the last list");
                // Try again after the interval, not on every request.
                issuer.revoked.write().await.fetched_at = Some(Instant::now());
            }
        }
        issuer.revoked.read().await.ids.contains_key(jti)
    }

    async fn fetch_revocations(&self, issuer: &Issuer) -> Result<(), TokenError> {
        #[derive(Deserialize)]
        struct Item {
            jti: String,
            expires_at: String,
        }
        #[derive(Deserialize)]
        struct List {
            as_of: String,
            items: Vec<Item>,
        }
        let since = issuer.revoked.read().await.as_of.clone();
        let mut url = url::Url::parse(&issuer.config.revocations_url)
            .map_err(|e| TokenError::KeysUnavailable(format!("revocations_url: {e}")))?;
        if let Some(since) = &since {
            url.query_pairs_mut().append_pair("since", since);
        }
        let list: List = self
            .http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| TokenError::KeysUnavailable(format!("revocations: {e}")))?
            .json()
            .await
            .map_err(|e| TokenError::KeysUnavailable(format!("revocation list: {e}")))?;
        let now = chrono::Utc::now().timestamp();
        let mut revoked = issuer.revoked.write().await;
        for item in list.items {
            let exp = chrono::DateTime::parse_from_rfc3339(&item.expires_at)
                .map(|t| t.timestamp())
                .unwrap_or(i64::MAX);
            revoked.ids.insert(item.jti, exp);
        }
        revoked
            .ids
            .retain(|_, exp| *exp > now - self.settings.leeway.as_secs() as i64);
        revoked.as_of = Some(list.as_of);
        revoked.fetched_at = Some(Instant::now());
        Ok(())
    }

    /// The key `kid` of `issuer`, refreshing the JWKS when it is unknown or stale.
    async fn key(&self, issuer: &Issuer, kid: &str) -> Result<Arc<CachedKey>, TokenError> {
        {
            let state = issuer.state.read().await;
            let fresh = state
                .fetched_at
                .is_some_and(|t| t.elapsed() < self.settings.jwks_ttl);
            if let Some(k) = state.keys.get(kid)
                && fresh
            {
                return Ok(k.clone());
            }
        }
        // One refresh at a time per issuer; others wait and then look again.
        let _guard = issuer.refreshing.lock().await;
        let may_fetch = {
            let state = issuer.state.read().await;
            let stale = state
                .fetched_at
                .is_none_or(|t| t.elapsed() >= self.settings.jwks_ttl);
            let missing = !state.keys.contains_key(kid);
            let allowed = state
                .last_attempt
                .is_none_or(|t| t.elapsed() >= self.settings.refresh_min_interval);
            (stale || missing) && allowed
        };
        let mut fetch_error = None;
        if may_fetch && let Err(e) = self.refresh(issuer).await {
            tracing::warn!(issuer = %issuer.config.issuer, error = %e, "JWKS refresh failed; keeping cached keys");
            fetch_error = Some(e);
        }
        let state = issuer.state.read().await;
        match state.keys.get(kid) {
            Some(k) => Ok(k.clone()),
            None if state.keys.is_empty() => Err(fetch_error
                .unwrap_or_else(|| TokenError::KeysUnavailable("no keys fetched yet".to_owned()))),
            None => Err(TokenError::UnknownKey(kid.to_owned())),
        }
    }

    async fn refresh(&self, issuer: &Issuer) -> Result<(), TokenError> {
        let jwks_uri = {
            let mut state = issuer.state.write().await;
            state.last_attempt = Some(Instant::now());
            state.jwks_uri.clone()
        };
        let jwks_uri = match jwks_uri {
            Some(u) => u,
            None => {
                let discovered = self.discover(&issuer.config.issuer).await?;
                issuer.state.write().await.jwks_uri = Some(discovered.clone());
                discovered
            }
        };
        let set: JwkSet = self
            .http
            .get(&jwks_uri)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| TokenError::KeysUnavailable(e.to_string()))?
            .json()
            .await
            .map_err(|e| TokenError::KeysUnavailable(format!("the JWKS does not parse: {e}")))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            if matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            ) {
                continue;
            }
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, Arc::new(CachedKey { key, alg }));
                }
                Err(e) => {
                    tracing::debug!(kid = %kid, error = %e, "skipping a JWK this validator cannot use")
                }
            }
        }
        let mut state = issuer.state.write().await;
        state.keys = keys;
        state.fetched_at = Some(Instant::now());
        state.fetches += 1;
        Ok(())
    }

    async fn discover(&self, issuer: &str) -> Result<String, TokenError> {
        #[derive(Deserialize)]
        struct Discovery {
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let d: Discovery = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| TokenError::KeysUnavailable(format!("discovery: {e}")))?
            .json()
            .await
            .map_err(|e| TokenError::KeysUnavailable(format!("discovery document: {e}")))?;
        Ok(d.jwks_uri)
    }
}

fn is_symmetric(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// Refuses ID tokens and other non-access tokens by what their verified payload says (see the
/// module rules); the header `typ` was checked against the issuer's `token_types` before.
fn refuse_non_access_tokens(claims: &Value) -> Result<(), TokenError> {
    for claim in ["nonce", "at_hash", "c_hash"] {
        if claims.get(claim).is_some() {
            return Err(TokenError::IdToken(format!("it carries `{claim}`")));
        }
    }
    if let Some(typ) = claims.get("typ").and_then(Value::as_str) {
        if typ.eq_ignore_ascii_case("ID") || typ.eq_ignore_ascii_case("id_token") {
            return Err(TokenError::IdToken(format!("claim typ {typ:?}")));
        }
        if !(typ.eq_ignore_ascii_case("Bearer") || typ.eq_ignore_ascii_case("at+jwt")) {
            return Err(TokenError::TokenType(format!("claim typ {typ:?}")));
        }
    }
    // Amazon Cognito marks its tokens `token_use: "id"` or `"access"`.
    match claims.get("token_use").and_then(Value::as_str) {
        Some(usage) if usage.eq_ignore_ascii_case("id") => {
            Err(TokenError::IdToken(format!("claim token_use {usage:?}")))
        }
        Some(usage) if !usage.eq_ignore_ascii_case("access") => {
            Err(TokenError::TokenType(format!("claim token_use {usage:?}")))
        }
        _ => Ok(()),
    }
}

/// The payload, not yet verified: only used to pick the issuer's settings.
fn unverified_claims(token: &str) -> Result<Value, TokenError> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "expected three dot-separated parts".to_owned(),
        ));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed("the payload is not base64url".to_owned()))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|_| TokenError::Malformed("the payload is not JSON".to_owned()))?;
    if !value.is_object() {
        return Err(TokenError::Malformed(
            "the payload is not a JSON object".to_owned(),
        ));
    }
    Ok(value)
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn extract(claims: &Value, config: &IssuerConfig) -> VerifiedToken {
    let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut scopes = strings(claims.get("scope"));
    scopes.extend(strings(claims.get("scp")));
    VerifiedToken {
        issuer: config.issuer.clone(),
        subject: text("sub").unwrap_or_default(),
        audiences: strings(claims.get("aud")),
        groups: strings(claims.get(&config.groups_claim))
            .into_iter()
            .map(|g| g.trim_start_matches('/').to_owned())
            .collect(),
        scopes,
        client_id: text("client_id")
            .or_else(|| text("azp"))
            .or_else(|| text("cid")),
        username: text("preferred_username")
            .or_else(|| text("username"))
            .or_else(|| text("email")),
        token_id: text("jti"),
        expires_at: claims.get("exp").and_then(Value::as_i64).unwrap_or(0),
        claims: claims.clone(),
    }
}

#[cfg(test)]
mod tests;
