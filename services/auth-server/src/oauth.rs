//! The OAuth 2.1 authorization server: authorization code with PKCE (RFC 7636, S256 only),
//! public clients, for pre-registered first-party clients (the registry's web console) and
//! for MCP clients registered dynamically (RFC 7591, `crate::registration`).
//!
//! Rules of this module:
//! - A [`Client`] is one of `oauth.clients` in the config, or one registered at
//!   `/oauth/register` (in the store). A configured client's `redirect_uri` must equal a
//!   registered one exactly (RFC 9700 §4.1.3: no prefix or pattern matching); a registered
//!   client's too, except the port of a loopback `http` URI (RFC 8252 §7.3).
//! - With `resource` (RFC 8707: one of the gateway's MCP endpoints, checked at authorize,
//!   sealed into the code, equal at the token endpoint if sent again) the token's only `aud`
//!   is that resource, whatever the client: the gateway then takes it on that route (or on
//!   every route for the aggregated `/mcp`), and nothing else takes it.
//! - Without, a registered client's token has `aud` = `tokens.audience` (the gateway) only, lives
//!   `oauth.registration.token_ttl_seconds`, and each exchange marks the client used (unused
//!   clients expire). Because anyone may register one, the user confirms every authorization
//!   of a registered client on a page that names it (`api::oauth`).
//! - A code is not stored: it is an [`AuthorizationCode`] sealed with the keyring (bound to the
//!   context [`CODE_CONTEXT`]), so any replica can redeem it. It lives [`CODE_LIFETIME_SECONDS`].
//!   Its random `id` becomes the `jti` of the token it is exchanged for; the ledger's unique
//!   `jti` makes a second exchange fail, which is how a code is used once without a table of
//!   codes. A second exchange also revokes the token of the first (RFC 6749 §4.1.2: a code
//!   used twice may have been stolen).
//! - The exchange checks, in this order: grant type, client, the code (seal, lifetime), that
//!   client and `redirect_uri` equal the code's, then `BASE64URL(SHA-256(code_verifier))`
//!   against the code's challenge in constant time.
//! - The token is the user: `groups` and the user's `scope` as the session held them when the
//!   code was issued, `aud` = [client audience, our public URL], `client_id` = the client. It
//!   is in the ledger (listed and revocable like any token, description `<client> sign-in`)
//!   but does not count against `tokens.mints_per_hour`. Its `sid` is the browser session the
//!   code came from, sealed: the client revoking the token (signing out) ends that session too,
//!   unless it is an OIDC provider's (that one ends at the provider, through `/logout`).
//! - A registered client's exchange also starts a sign-in with a refresh token, and
//!   `grant_type=refresh_token` is served by `crate::refresh` (its rules are there).

use chrono::Duration;
use mcpgw_core::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::config::OAuthClientConfig;
use crate::error::AuthError;
use crate::registration::{ClientMetadata, redirect_matches};
use crate::store::{AuditRecord, StoreError, VendedToken};
use crate::tokens::{Audience, Principal, Recorded, SignInClaims, sign_and_record};

/// How long a code may be redeemed after it was issued.
pub const CODE_LIFETIME_SECONDS: i64 = 60;
/// The sealing context of authorization codes.
pub const CODE_CONTEXT: &str = "oauth:authorization_code";
/// The sealing context of a sign-in token's `sid` (its session's `id_hash`, opaque to the
/// client: it never learns a session's store key).
pub const SID_CONTEXT: &str = "oauth:sid";
/// The only PKCE method accepted (`plain` would send the secret through the browser).
pub const PKCE_METHOD: &str = "S256";
/// Longest `state` accepted (it travels in URLs both ways).
pub const MAX_STATE_BYTES: usize = 512;

/// A client of the code flow, configured or registered.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub redirect_uris: Vec<String>,
    /// The `aud` of its tokens.
    pub audience: Vec<String>,
    pub token_ttl_seconds: u64,
    /// `Some` for a client registered through `/oauth/register`.
    pub registered: Option<ClientMetadata>,
}

impl Client {
    fn configured(c: &OAuthClientConfig, public_url: &str) -> Self {
        Self {
            id: c.id.clone(),
            redirect_uris: c.redirect_uris.clone(),
            audience: vec![c.audience.clone(), public_url.to_owned()],
            token_ttl_seconds: c.token_ttl_seconds,
            registered: None,
        }
    }

    /// Whether codes may be sent to `redirect_uri` (see the module rules).
    pub fn allows_redirect(&self, redirect_uri: &str) -> bool {
        match self.registered {
            None => self.redirect_uris.iter().any(|u| u == redirect_uri),
            Some(_) => self
                .redirect_uris
                .iter()
                .any(|u| redirect_matches(u, redirect_uri)),
        }
    }

    /// The name to show the user: the registered `client_name`, else the id.
    pub fn display_name(&self) -> &str {
        self.registered
            .as_ref()
            .and_then(|m| m.client_name.as_deref())
            .unwrap_or(&self.id)
    }
}

/// What allowing `client_id` now would record for the signed-in user: their scopes (sorted)
/// and the resource.
pub fn consent_for(
    client_id: &str,
    session: &crate::store::SessionRecord,
    resource: Option<&str>,
) -> crate::store::Consent {
    let mut scopes = session.scopes.clone();
    scopes.sort();
    scopes.dedup();
    crate::store::Consent {
        subject: session.subject.clone(),
        client_id: client_id.to_owned(),
        scopes,
        resource: resource.unwrap_or_default().to_owned(),
        granted_at: Timestamp::now(),
    }
}

/// Whether `resource` is one of the gateway's MCP endpoints under `base` (RFC 8707).
pub fn is_gateway_resource(base: &str, resource: &str) -> bool {
    mcpgw_core::token::resource_audience(base, resource).is_some()
}

/// The client with this `client_id`: configured, or registered (when registration is on).
pub async fn find_client(state: &AppState, client_id: &str) -> Result<Option<Client>, AuthError> {
    if let Some(c) = state.config.oauth_client(client_id) {
        return Ok(Some(Client::configured(c, &state.public_url)));
    }
    let r = &state.config.oauth.registration;
    if !r.enabled || !client_id.starts_with(crate::registration::CLIENT_ID_PREFIX) {
        return Ok(None);
    }
    Ok(state
        .store
        .get_oauth_client(client_id)
        .await?
        .map(|c| Client {
            id: c.client_id,
            redirect_uris: c.metadata.redirect_uris.clone(),
            audience: vec![state.config.tokens.audience.clone()],
            token_ttl_seconds: r.token_ttl_seconds,
            registered: Some(c.metadata),
        }))
}

/// What a code stands for, sealed into the code itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationCode {
    /// Random; becomes the issued token's `jti` (single use through the ledger).
    pub id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub subject: String,
    pub username: String,
    pub groups: Vec<String>,
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub issued_at: i64,
    /// The store key (`id_hash`) of the browser session the code was issued from, so that the
    /// client signing out (revoking its sign-in token) ends that session too: one click.
    #[serde(default)]
    pub session: Option<String>,
    /// The gateway resource of the request (RFC 8707): the token's only `aud` when set.
    #[serde(default)]
    pub resource: Option<String>,
}

impl AuthorizationCode {
    /// A new code for `who`, issued now.
    pub fn new(
        client_id: &str,
        redirect_uri: &str,
        code_challenge: &str,
        who: &Principal,
        session: Option<String>,
    ) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            code_challenge: code_challenge.to_owned(),
            subject: who.subject.clone(),
            username: who.username.clone(),
            groups: who.groups.clone(),
            scopes: who.scopes.clone(),
            issued_at: chrono::Utc::now().timestamp(),
            session,
            resource: None,
        }
    }

    /// The `code` parameter.
    pub fn seal(&self, keyring: &mcpgw_core::secrets::Keyring) -> String {
        keyring.seal_text(CODE_CONTEXT, self)
    }
}

/// Whether `text` is a PKCE code verifier or S256 challenge: 43-128 characters of
/// `A-Z a-z 0-9 - . _ ~` (RFC 7636 §4.1, §4.2).
pub fn is_pkce_value(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Whether `BASE64URL(SHA256(verifier))` equals `challenge`, compared in constant time.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    mcpgw_core::web::secret_matches(&mcpgw_core::web::pkce_s256(verifier), challenge)
}

/// An RFC 6749 error: `error` code, a description safe to show, and the HTTP status the token
/// endpoint answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            description: description.into(),
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }
}

/// Why an exchange failed: the client's mistake (answered per RFC 6749 §5.2) or ours.
#[derive(Debug)]
pub enum ExchangeError {
    OAuth(OAuthError),
    Server(AuthError),
}

impl From<OAuthError> for ExchangeError {
    fn from(e: OAuthError) -> Self {
        Self::OAuth(e)
    }
}

impl From<AuthError> for ExchangeError {
    fn from(e: AuthError) -> Self {
        Self::Server(e)
    }
}

/// The fields of a token request (`application/x-www-form-urlencoded`).
#[derive(Debug, Default)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub client_id: Option<String>,
    pub code_verifier: Option<String>,
    pub resource: Option<String>,
    /// The `refresh_token` grant's token (`crate::refresh`).
    pub refresh_token: Option<String>,
}

/// An issued token, for the token response.
pub struct IssuedToken {
    pub access_token: String,
    /// The access token's id in the ledger.
    pub jti: String,
    pub expires_in: u64,
    pub scope: String,
    /// Registered clients' sign-ins (`crate::refresh`).
    pub refresh_token: Option<String>,
}

/// The client a token request names: `invalid_client` when it names none we know.
pub(crate) async fn request_client(
    state: &AppState,
    request: &TokenRequest,
) -> Result<Client, ExchangeError> {
    let client_id = required(&request.client_id, "client_id")?;
    Ok(find_client(state, client_id).await?.ok_or_else(|| {
        OAuthError::new(
            "invalid_client",
            format!("client_id {client_id:?} is not a registered client"),
        )
    })?)
}

pub(crate) fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, OAuthError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

/// Redeems a code (see the module rules for the checks and their order).
pub async fn exchange(
    state: &AppState,
    request: &TokenRequest,
    request_id: Option<&str>,
) -> Result<IssuedToken, ExchangeError> {
    match required(&request.grant_type, "grant_type")? {
        "authorization_code" => {}
        "refresh_token" if state.config.oauth.refresh.enabled => {
            return crate::refresh::exchange(state, request, request_id).await;
        }
        other => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported; use authorization_code"),
            )
            .into());
        }
    }
    let client = request_client(state, request).await?;
    let code_text = required(&request.code, "code")?;
    let redirect_uri = required(&request.redirect_uri, "redirect_uri")?;
    let verifier = required(&request.code_verifier, "code_verifier")?;
    if !is_pkce_value(verifier) {
        return Err(OAuthError::invalid_request(
            "code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636)",
        )
        .into());
    }
    let Some(code) = state
        .keyring
        .open_text::<AuthorizationCode>(CODE_CONTEXT, code_text)
    else {
        return Err(OAuthError::invalid_grant(
            "the code is not one this server issued; start the sign-in again",
        )
        .into());
    };
    let age = chrono::Utc::now().timestamp() - code.issued_at;
    if !(0..=CODE_LIFETIME_SECONDS).contains(&age) {
        return Err(OAuthError::invalid_grant(format!(
            "the code has expired (codes are valid for {CODE_LIFETIME_SECONDS} s); start the sign-in again"
        ))
        .into());
    }
    if code.client_id != client.id {
        return Err(OAuthError::invalid_grant("the code was issued to another client").into());
    }
    if code.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the one the code was issued for",
        )
        .into());
    }
    if let Some(r) = request.resource.as_deref().filter(|r| !r.is_empty())
        && code.resource.as_deref() != Some(r)
    {
        return Err(OAuthError::new(
            "invalid_target",
            "resource differs from the one of the authorization request",
        )
        .into());
    }
    if !pkce_matches(verifier, &code.code_challenge) {
        return Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge of the authorization request",
        )
        .into());
    }
    issue(state, &client, &code, request_id).await
}

/// Signs and records the sign-in token for a redeemed code.
async fn issue(
    state: &AppState,
    client: &Client,
    code: &AuthorizationCode,
    request_id: Option<&str>,
) -> Result<IssuedToken, ExchangeError> {
    let now = Timestamp::now();
    let ttl = client.token_ttl_seconds;
    let audience = match &code.resource {
        Some(r) => vec![r.clone()],
        None => client.audience.clone(),
    };
    let record = VendedToken {
        jti: code.id.clone(),
        subject: code.subject.clone(),
        username: code.username.clone(),
        scopes: code.scopes.clone(),
        audience: audience[0].clone(),
        description: Some(format!("{} sign-in", client.display_name())),
        issued_at: now,
        expires_at: Timestamp::from_datetime(now.as_datetime() + Duration::seconds(ttl as i64)),
        revoked_at: None,
        client_id: Some(client.id.clone()),
        refresh_family: crate::refresh::issued_to(state, client).then(|| code.id.clone()),
    };
    let audit = AuditRecord::new(
        &code.subject,
        request_id,
        "oauth.token",
        "vended_token",
        &record.jti,
        serde_json::json!({
            "client_id": client.id,
            "audience": audience,
            "scopes": record.scopes,
            "groups": code.groups,
            "ttl_seconds": ttl,
            "expires_at": record.expires_at,
        }),
    );
    let signed = sign_and_record(
        state,
        &record,
        Audience::Many(audience.clone()),
        Some(SignInClaims {
            groups: code.groups.clone(),
            sid: code
                .session
                .as_ref()
                .map(|h| state.keyring.seal_text(SID_CONTEXT, h)),
        }),
        &client.id,
        None,
        audit,
    )
    .await;
    match signed {
        Ok(Recorded::Yes(access_token)) => {
            let refresh_token = match record.refresh_family {
                Some(_) => Some(crate::refresh::start(state, client, code, request_id).await?),
                None => None,
            };
            if client.registered.is_some() {
                state
                    .store
                    .touch_oauth_client(&client.id, now)
                    .await
                    .map_err(AuthError::from)?;
            }
            state
                .auth_metrics
                .oauth_codes
                .with_label_values(&["exchanged"])
                .inc();
            Ok(IssuedToken {
                access_token,
                jti: record.jti,
                expires_in: ttl,
                scope: record.scopes.join(" "),
                refresh_token,
            })
        }
        // No limit was given, so the store cannot refuse on it.
        Ok(Recorded::Limited { .. }) => Err(ExchangeError::Server(AuthError::Internal(
            "a sign-in token was refused by a mint limit it is not subject to".to_owned(),
        ))),
        Err(AuthError::Store(StoreError::Conflict(_))) => {
            revoke_replayed(state, code, request_id).await?;
            Err(OAuthError::invalid_grant(
                "the code has already been used; the token issued for it is revoked",
            )
            .into())
        }
        Err(e) => Err(ExchangeError::Server(e)),
    }
}

/// A code redeemed twice: revokes the token of the first exchange (it may have gone to
/// whoever stole the code). Already revoked is fine.
async fn revoke_replayed(
    state: &AppState,
    code: &AuthorizationCode,
    request_id: Option<&str>,
) -> Result<(), AuthError> {
    state
        .auth_metrics
        .oauth_codes
        .with_label_values(&["replayed"])
        .inc();
    let audit = AuditRecord::new(
        "system:oauth",
        request_id,
        "token.revoke",
        "vended_token",
        &code.id,
        serde_json::json!({"owner": code.subject, "reason": "authorization code used twice", "client_id": code.client_id}),
    );
    match state
        .store
        .revoke_vended_token(&code.id, Timestamp::now(), &audit)
        .await
    {
        Ok(()) | Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_the_rfc_7636_example() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(is_pkce_value(verifier) && is_pkce_value(challenge));
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(challenge, challenge));
        assert!(!pkce_matches(verifier, &challenge[..42]));
    }

    #[test]
    fn pkce_values_have_the_rfc_length_and_alphabet() {
        assert!(!is_pkce_value(&"a".repeat(42)));
        assert!(is_pkce_value(&"a".repeat(43)));
        assert!(is_pkce_value(&"a".repeat(128)));
        assert!(!is_pkce_value(&"a".repeat(129)));
        assert!(!is_pkce_value(&format!("{}+", "a".repeat(43))));
        assert!(is_pkce_value(&format!("{}-._~", "a".repeat(43))));
    }
}
