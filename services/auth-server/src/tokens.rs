//! Token vending: a logged-in user mints a short-lived access token for an agent.
//!
//! Rules of this module:
//! - A token is an RFC 9068 JWT access token (`typ: at+jwt`), ES256, signed with the current
//!   key, with `iss` = the auth-server's public URL and `aud` = `tokens.audience` (the gateway).
//! - Its scopes are a subset of the minting user's session scopes; its lifetime is
//!   `tokens.default_ttl_seconds` unless asked, never more than `tokens.max_ttl_seconds`.
//! - Every mint is recorded in the ledger with an audit record in one transaction, and counts
//!   against `tokens.mints_per_hour` for the user, all replicas together. The token itself is
//!   returned once and never stored or logged.
//! - Our own tokens are verified here (signature with a published key, `iss`, `aud`, `exp`,
//!   `typ`) and must be in the ledger and not revoked.
//! - Sign-in tokens of OAuth clients (`crate::oauth`) are signed and recorded by the same
//!   [`sign_and_record`]; they carry the user's groups and do not count against the limit.

use chrono::Duration;
use jsonwebtoken::{Algorithm, Validation};
use mcpgw_core::time::Timestamp;
use mcpgw_core::token::{TokenError, VerifiedToken};
use mcpgw_core::validate::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::AppState;
use crate::error::{AuthError, Result};
use crate::scope::{ScopeRefusal, requested_subset};
use crate::store::{AuditRecord, MintLimit, MintOutcome, SessionRecord, VendedToken};

/// The JWT `typ` of vended tokens (RFC 9068).
pub const TOKEN_TYPE: &str = "at+jwt";
/// The `client_id` claim of vended tokens (RFC 9068 requires one).
pub const CLIENT_ID: &str = "mcpgw-token-vending";
/// Longest description accepted.
pub const MAX_DESCRIPTION: usize = 200;

/// `POST /api/v1/tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintRequest {
    /// Scopes for the token; each must be one you hold.
    pub scopes: Vec<String>,
    /// Lifetime in seconds (60 to `tokens.max_ttl_seconds`; default `tokens.default_ttl_seconds`).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// What the token is for (shown in your token list), up to 200 characters.
    #[serde(default)]
    pub description: Option<String>,
}

/// `aud`: one audience (vended tokens: the gateway) or several (sign-in tokens: the client's
/// resource and the auth-server itself).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims of a token we sign.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    /// The token's scopes. For a vended token, its whole authority: a subset of the user's
    /// scopes.
    pub scope: String,
    pub preferred_username: String,
    /// Only sign-in tokens of OAuth clients (they are the user). Vended tokens carry no
    /// `groups`: a policy that adds up groups and scopes would otherwise hand the agent
    /// everything the user holds, and the narrowing would narrow nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// Only sign-in tokens: their browser session, sealed (`crate::oauth::SID_CONTEXT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Who acts: a session's user, or the user a sign-in token of an OAuth client stands for.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    pub username: String,
    pub groups: Vec<String>,
    /// The scopes the user holds (a vended token may carry a subset).
    pub scopes: Vec<String>,
}

impl From<&SessionRecord> for Principal {
    fn from(s: &SessionRecord) -> Self {
        Self {
            subject: s.subject.clone(),
            username: s.username.clone(),
            groups: s.groups.clone(),
            scopes: s.scopes.clone(),
        }
    }
}

/// A minted token: the JWT (shown once) and its ledger entry.
pub struct Minted {
    pub token: String,
    pub record: VendedToken,
}

/// Checks a mint request, records it and signs the token.
pub async fn mint(
    state: &AppState,
    who: &Principal,
    request: MintRequest,
    request_id: Option<&str>,
) -> Result<Minted> {
    let config = &state.config.tokens;
    let scopes = match requested_subset("scopes", &request.scopes, &who.scopes) {
        Ok(s) => s,
        Err(ScopeRefusal::Invalid(e)) => return Err(e.into()),
        Err(ScopeRefusal::NotHeld { field, scope }) => {
            return Err(AuthError::ScopeNotGranted { field, scope });
        }
    };
    let ttl = request.ttl_seconds.unwrap_or(config.default_ttl_seconds);
    if ttl < 60 || ttl > config.max_ttl_seconds {
        return Err(FieldError::new(
            "ttl_seconds",
            // Minutes too: the console's form asks in minutes, and a limit in seconds alone
            // read as a different number from the one the form said.
            format!(
                "must be between 60 and {} seconds, 1 to {} minutes (got {ttl} seconds)",
                config.max_ttl_seconds,
                config.max_ttl_seconds / 60
            ),
        )
        .into());
    }
    let description = mcpgw_core::validate::optional_text(
        "description",
        request.description.as_deref(),
        MAX_DESCRIPTION,
    )?;
    let now = Timestamp::now();
    let expires_at = Timestamp::from_datetime(now.as_datetime() + Duration::seconds(ttl as i64));
    let record = VendedToken {
        jti: uuid::Uuid::new_v4().to_string(),
        subject: who.subject.clone(),
        username: who.username.clone(),
        scopes,
        audience: config.audience.clone(),
        description,
        issued_at: now,
        expires_at,
        revoked_at: None,
        client_id: None,
        refresh_family: None,
    };
    let audit = AuditRecord::new(
        &who.subject,
        request_id,
        "token.mint",
        "vended_token",
        &record.jti,
        serde_json::json!({
            "scopes": record.scopes,
            "audience": record.audience,
            "ttl_seconds": ttl,
            "expires_at": record.expires_at,
            "description": record.description,
        }),
    );
    let window_start = Timestamp::from_datetime(now.as_datetime() - Duration::seconds(3600));
    let limit = MintLimit {
        max: config.mints_per_hour,
        since: window_start,
    };
    let signed = sign_and_record(
        state,
        &record,
        Audience::One(record.audience.clone()),
        None,
        CLIENT_ID,
        Some(limit),
        audit,
    )
    .await?;
    match signed {
        Recorded::Yes(token) => {
            state.auth_metrics.tokens_minted.inc();
            Ok(Minted { token, record })
        }
        Recorded::Limited { oldest } => {
            state.auth_metrics.mints_limited.inc();
            let free_at = oldest.as_datetime() + Duration::seconds(3600);
            let wait = (free_at - now.as_datetime()).num_seconds().max(1) as u64;
            Err(AuthError::RateLimited {
                retry_after_seconds: wait,
            })
        }
    }
}

/// What [`sign_and_record`] did.
pub enum Recorded {
    /// In the ledger; the signed JWT.
    Yes(String),
    /// Over the mint limit: nothing written.
    Limited { oldest: Timestamp },
}

/// What a sign-in token of an OAuth client carries that a vended token does not (see
/// [`Claims`]): the user's groups, and its browser session, sealed.
pub struct SignInClaims {
    pub groups: Vec<String>,
    pub sid: Option<String>,
}

/// Signs the JWT for a ledger entry with the current key (read from the store, so a rotation
/// on any replica applies at once) and records the entry with `audit` (the signing `kid` is
/// added to its details) in one transaction. A duplicate `jti` is `StoreError::Conflict`.
pub async fn sign_and_record(
    state: &AppState,
    record: &VendedToken,
    aud: Audience,
    sign_in: Option<SignInClaims>,
    client_id: &str,
    limit: Option<MintLimit>,
    mut audit: AuditRecord,
) -> Result<Recorded> {
    let key = state.keys.current().await?;
    let (groups, sid) = match sign_in {
        Some(s) => (Some(s.groups), s.sid),
        None => (None, None),
    };
    let claims = Claims {
        iss: state.public_url.to_string(),
        sub: record.subject.clone(),
        aud,
        exp: record.expires_at.as_datetime().timestamp(),
        iat: record.issued_at.as_datetime().timestamp(),
        nbf: record.issued_at.as_datetime().timestamp(),
        jti: record.jti.clone(),
        client_id: client_id.to_owned(),
        scope: record.scopes.join(" "),
        preferred_username: record.username.clone(),
        groups,
        sid,
    };
    let token = key.sign(&claims, TOKEN_TYPE)?;
    if let Some(details) = audit.details.as_object_mut() {
        details.insert("kid".to_owned(), key.kid().into());
    }
    match state
        .store
        .insert_vended_token(record, limit, &audit)
        .await?
    {
        MintOutcome::Recorded => Ok(Recorded::Yes(token)),
        MintOutcome::Limited { oldest } => Ok(Recorded::Limited { oldest }),
    }
}

/// Verifies a token the auth-server signed: signature, issuer, an `aud` among `audiences`,
/// lifetime, type, and the ledger (present, not revoked). The outer error is ours (the store is
/// down); the inner one says why the token is refused, in words safe to return.
pub async fn verify_own(
    state: &AppState,
    token: &str,
    audiences: &[&str],
) -> Result<Result<VerifiedToken, String>> {
    let header = match jsonwebtoken::decode_header(token) {
        Ok(h) => h,
        Err(e) => {
            return Ok(Err(
                TokenError::Malformed(format!("header: {e}")).to_string()
            ));
        }
    };
    if header.alg != Algorithm::ES256 {
        return Ok(Err(
            TokenError::Algorithm(format!("{:?}", header.alg)).to_string()
        ));
    }
    let typ = header.typ.as_deref().unwrap_or("");
    if !typ.eq_ignore_ascii_case(TOKEN_TYPE) {
        return Ok(Err(
            TokenError::TokenType(format!("header typ {typ:?}")).to_string()
        ));
    }
    let Some(kid) = header.kid.as_deref() else {
        return Ok(Err(TokenError::NoKeyId.to_string()));
    };
    let Some(key) = state.keys.verifying_key(kid).await? else {
        return Ok(Err(TokenError::UnknownKey(kid.to_owned()).to_string()));
    };
    let mut validation = Validation::new(Algorithm::ES256);
    validation.leeway = 30;
    validation.validate_nbf = true;
    validation.set_issuer(&[state.public_url.as_ref()]);
    validation.set_audience(audiences);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = match jsonwebtoken::decode::<Value>(token, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind as K;
            let refused = match e.kind() {
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::NotYetValid,
                K::InvalidAudience => TokenError::Audience,
                K::InvalidIssuer => TokenError::UntrustedIssuer,
                K::InvalidSignature => TokenError::Signature,
                K::MissingRequiredClaim(c) => TokenError::MissingClaim(c.clone()),
                _ => TokenError::Malformed(e.to_string()),
            };
            return Ok(Err(refused.to_string()));
        }
    };
    let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
    let Some(jti) = text("jti") else {
        return Ok(Err(TokenError::MissingClaim("jti".to_owned()).to_string()));
    };
    match state.store.get_vended_token(&jti).await? {
        None => {
            return Ok(Err(
                "the token is not in the auth-server's ledger".to_owned()
            ));
        }
        Some(t) if t.revoked_at.is_some() => {
            return Ok(Err("the token has been revoked".to_owned()));
        }
        Some(_) => {}
    }
    let list = |k: &str| -> Vec<String> {
        match claims.get(k) {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    };
    Ok(Ok(VerifiedToken {
        issuer: state.public_url.to_string(),
        subject: text("sub").unwrap_or_default(),
        audiences: list("aud"),
        groups: list("groups"),
        scopes: list("scope"),
        client_id: text("client_id"),
        username: text("preferred_username"),
        token_id: Some(jti),
        expires_at: claims.get("exp").and_then(Value::as_i64).unwrap_or(0),
        claims: claims.clone(),
    }))
}

/// RFC 7009 for an access token: revokes it (and ends the sign-in it came from) if it is one
/// this server signed for `client_id` and is still valid. Anything else is left alone without
/// a word (§2.2: the answer does not say whether a token exists).
pub async fn revoke_own(
    state: &AppState,
    token: &str,
    client_id: &str,
    request_id: Option<&str>,
) -> Result<()> {
    // Revoking needs proof that the token is ours and the client's, not that it is meant for
    // a particular audience: check it against the audiences it names.
    let audiences: Vec<String> = unverified_audiences(token);
    let audiences: Vec<&str> = audiences.iter().map(String::as_str).collect();
    if audiences.is_empty() {
        return Ok(());
    }
    let Ok(verified) = verify_own(state, token, &audiences).await? else {
        return Ok(());
    };
    let (Some(jti), Some(client)) = (verified.token_id, verified.client_id) else {
        return Ok(());
    };
    if client != client_id {
        return Ok(());
    }
    let audit = AuditRecord::new(
        &verified.subject,
        request_id,
        "token.revoke",
        "vended_token",
        &jti,
        serde_json::json!({"owner": verified.subject, "via_client": client_id, "via": "/oauth/revoke"}),
    );
    match state
        .store
        .revoke_vended_token(&jti, Timestamp::now(), &audit)
        .await
    {
        Ok(()) | Err(crate::store::StoreError::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The `aud` a JWT names, read without verifying it (the caller verifies against them).
fn unverified_audiences(token: &str) -> Vec<String> {
    use base64::Engine as _;
    let Some(payload) = token.split('.').nth(1) else {
        return Vec::new();
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else {
        return Vec::new();
    };
    match serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|c| c.get("aud").cloned())
    {
        Some(Value::String(a)) => vec![a],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}
