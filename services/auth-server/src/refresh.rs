//! Refresh tokens of registered OAuth clients (OAuth 2.1 §4.3, RFC 9700 §4.14): the
//! `refresh_token` grant of `/oauth/token`, and their end through `/oauth/revoke` (RFC 7009),
//! the Tokens page, or the client or consent being deleted.
//!
//! Rules of this module:
//! - The code exchange of a registered client (when `oauth.refresh.enabled`) starts a sign-in:
//!   a [`RefreshFamily`] whose id is the code's id, and a refresh token `mcpgw_rt.` + 32 random
//!   bytes, returned once; the store keeps only its SHA-256. Configured clients get none: they
//!   are first-party web apps with a browser session to sign in again from.
//! - Every refresh returns a new refresh token and retires the presented one (rotation). A
//!   retired token presented again means two parties hold the sign-in, so the whole sign-in
//!   ends: the family and its tokens are deleted and every access token it issued is revoked in
//!   the ledger, which gateways read. Two concurrent refreshes with one token are the same
//!   case: the store lets exactly one rotate, and the loser ends the sign-in.
//! - A refresh is checked in this order: grant, client, the token (known), that it was issued
//!   to this client, reuse, the sign-in's absolute end (`oauth.refresh.lifetime_seconds` after
//!   the user signed in) and idle end (`oauth.refresh.idle_seconds` since the last refresh),
//!   and `resource` (RFC 8707: if sent, the sign-in's, else `invalid_grant`: a refresh cannot
//!   move a token to another server). Every refusal is `invalid_grant` with words safe to show.
//! - The new access token is signed and recorded before the rotation, with the family's id,
//!   so a failure before the rotation leaves the old refresh token usable, and a rotation lost
//!   to a concurrent one revokes the token it had just recorded.
//! - A refreshed token carries what the sign-in carried (user, groups, scopes, resource,
//!   session): changes to the user apply at the next sign-in, at most the lifetime later.

use chrono::Duration;
use mcpgw_core::time::Timestamp;

use crate::app::AppState;
use crate::error::AuthError;
use crate::oauth::{
    AuthorizationCode, Client, ExchangeError, IssuedToken, OAuthError, SID_CONTEXT, TokenRequest,
    required,
};
use crate::store::{AuditRecord, Families, RefreshFamily, StoreError, VendedToken};
use crate::tokens::{Audience, Recorded, SignInClaims, sign_and_record};

/// The start of every refresh token (so `/oauth/revoke` tells them from access tokens).
pub const PREFIX: &str = "mcpgw_rt.";

/// A new refresh token: [`PREFIX`] and 32 random bytes.
fn new_token() -> String {
    format!("{PREFIX}{}", mcpgw_core::web::random_token())
}

/// What the store keys a refresh token by.
pub fn hash(token: &str) -> String {
    crate::session::hash_id(token)
}

fn later(at: Timestamp, seconds: u64) -> Timestamp {
    Timestamp::from_datetime(at.as_datetime() + Duration::seconds(seconds as i64))
}

/// Whether the sign-in is past its absolute end, or idle for longer than `idle_seconds`.
fn ended(family: &RefreshFamily, now: Timestamp, idle_seconds: u64) -> bool {
    family.expires_at < now || later(family.last_used_at, idle_seconds) < now
}

/// The grants registered clients get: in the metadata and in every registration's answer.
pub fn grant_types(config: &crate::config::AuthConfig) -> Vec<String> {
    std::iter::once("authorization_code")
        .chain(config.oauth.refresh.enabled.then_some("refresh_token"))
        .map(str::to_owned)
        .collect()
}

/// Whether the code exchange of `client` returns a refresh token.
pub fn issued_to(state: &AppState, client: &Client) -> bool {
    state.config.oauth.refresh.enabled && client.registered.is_some()
}

/// Starts the sign-in of a redeemed code (its access token already recorded with
/// `refresh_family` = the code's id): returns the first refresh token.
pub async fn start(
    state: &AppState,
    client: &Client,
    code: &AuthorizationCode,
    request_id: Option<&str>,
) -> Result<String, AuthError> {
    let now = Timestamp::now();
    let family = RefreshFamily {
        id: code.id.clone(),
        client_id: client.id.clone(),
        subject: code.subject.clone(),
        username: code.username.clone(),
        groups: code.groups.clone(),
        scopes: code.scopes.clone(),
        resource: code.resource.clone().unwrap_or_default(),
        session: code.session.clone(),
        created_at: now,
        expires_at: later(now, state.config.oauth.refresh.lifetime_seconds),
        last_used_at: now,
    };
    let token = new_token();
    let audit = AuditRecord::new(
        &code.subject,
        request_id,
        "oauth_refresh.start",
        "oauth_sign_in",
        &family.id,
        serde_json::json!({"client_id": client.id, "expires_at": family.expires_at}),
    );
    state
        .store
        .insert_refresh_family(&family, &hash(&token), &audit)
        .await?;
    Ok(token)
}

fn refused(description: &str) -> ExchangeError {
    OAuthError::new("invalid_grant", description).into()
}

/// The `refresh_token` grant (see the module rules for the checks and their order).
pub async fn exchange(
    state: &AppState,
    request: &TokenRequest,
    request_id: Option<&str>,
) -> Result<IssuedToken, ExchangeError> {
    let client = crate::oauth::request_client(state, request).await?;
    let presented = required(&request.refresh_token, "refresh_token")?;
    let count = |result: &str| {
        state
            .auth_metrics
            .oauth_refreshes
            .with_label_values(&[result])
            .inc();
    };
    let Some(found) = state
        .store
        .get_refresh_token(&hash(presented))
        .await
        .map_err(AuthError::from)?
    else {
        count("refused");
        return Err(refused(
            "the refresh token is not valid (unknown, ended or revoked); sign in again",
        ));
    };
    let family = found.family;
    if family.client_id != client.id {
        count("refused");
        return Err(refused("the refresh token was issued to another client"));
    }
    if found.rotated_at.is_some() {
        end_reused(state, &family, request_id).await?;
        count("reused");
        return Err(refused(
            "the refresh token was already used, so the sign-in has ended (its tokens are revoked); sign in again",
        ));
    }
    let now = Timestamp::now();
    if ended(&family, now, state.config.oauth.refresh.idle_seconds) {
        count("refused");
        return Err(refused("the sign-in has expired; sign in again"));
    }
    if let Some(r) = request.resource.as_deref().filter(|r| !r.is_empty())
        && r != family.resource
    {
        count("refused");
        return Err(refused(
            "resource differs from the one the sign-in was granted for",
        ));
    }
    let issued = issue(state, &client, &family, now, request_id).await?;
    let next = new_token();
    if !state
        .store
        .rotate_refresh_token(&hash(presented), &hash(&next), now)
        .await
        .map_err(AuthError::from)?
    {
        // Another request rotated it between our read and now: a reuse.
        let audit = reuse_audit(&family, request_id);
        match state
            .store
            .revoke_vended_token(&issued.jti, now, &audit)
            .await
        {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(AuthError::from(e).into()),
        }
        count("reused");
        return Err(refused(
            "the refresh token was used twice at once, so the sign-in has ended; sign in again",
        ));
    }
    if client.registered.is_some() {
        state
            .store
            .touch_oauth_client(&client.id, now)
            .await
            .map_err(AuthError::from)?;
    }
    count("rotated");
    Ok(IssuedToken {
        refresh_token: Some(next),
        ..issued
    })
}

fn reuse_audit(family: &RefreshFamily, request_id: Option<&str>) -> AuditRecord {
    AuditRecord::new(
        "system:oauth",
        request_id,
        "oauth_refresh.reuse",
        "oauth_sign_in",
        &family.id,
        serde_json::json!({"owner": family.subject, "client_id": family.client_id,
            "reason": "a rotated refresh token was presented again"}),
    )
}

async fn end_reused(
    state: &AppState,
    family: &RefreshFamily,
    request_id: Option<&str>,
) -> Result<(), AuthError> {
    tracing::warn!(oauth.client_id = %family.client_id, "a rotated refresh token was presented again; the sign-in is ended");
    state
        .store
        .end_refresh_families(
            Families::One(&family.id),
            Timestamp::now(),
            Some(&reuse_audit(family, request_id)),
        )
        .await?;
    Ok(())
}

/// Signs and records the access token of a refresh.
async fn issue(
    state: &AppState,
    client: &Client,
    family: &RefreshFamily,
    now: Timestamp,
    request_id: Option<&str>,
) -> Result<IssuedToken, ExchangeError> {
    let ttl = client.token_ttl_seconds;
    let audience = if family.resource.is_empty() {
        client.audience.clone()
    } else {
        vec![family.resource.clone()]
    };
    let record = VendedToken {
        jti: uuid::Uuid::new_v4().to_string(),
        subject: family.subject.clone(),
        username: family.username.clone(),
        scopes: family.scopes.clone(),
        audience: audience[0].clone(),
        description: Some(format!("{} sign-in", client.display_name())),
        issued_at: now,
        expires_at: later(now, ttl),
        revoked_at: None,
        client_id: Some(client.id.clone()),
        refresh_family: Some(family.id.clone()),
    };
    let audit = AuditRecord::new(
        &family.subject,
        request_id,
        "oauth.refresh",
        "vended_token",
        &record.jti,
        serde_json::json!({
            "client_id": client.id,
            "sign_in": family.id,
            "audience": audience,
            "scopes": record.scopes,
            "ttl_seconds": ttl,
            "expires_at": record.expires_at,
        }),
    );
    let sid = family
        .session
        .as_ref()
        .map(|h| state.keyring.seal_text(SID_CONTEXT, h));
    let signed = sign_and_record(
        state,
        &record,
        Audience::Many(audience),
        Some(SignInClaims {
            groups: family.groups.clone(),
            sid,
        }),
        &client.id,
        None,
        audit,
    )
    .await?;
    match signed {
        Recorded::Yes(access_token) => Ok(IssuedToken {
            access_token,
            jti: record.jti,
            expires_in: ttl,
            scope: record.scopes.join(" "),
            refresh_token: None,
        }),
        // No limit was given, so the store cannot refuse on it.
        Recorded::Limited { .. } => Err(AuthError::Internal(
            "a refreshed token was refused by a mint limit it is not subject to".to_owned(),
        )
        .into()),
    }
}

/// RFC 7009 for a refresh token: ends its sign-in if it was issued to `client_id`. Whatever
/// the token, the answer is the same (§2.2: an unknown token is not an error).
pub async fn revoke(
    state: &AppState,
    token: &str,
    client_id: &str,
    request_id: Option<&str>,
) -> Result<(), AuthError> {
    let Some(found) = state.store.get_refresh_token(&hash(token)).await? else {
        return Ok(());
    };
    if found.family.client_id != client_id {
        return Ok(());
    }
    let audit = AuditRecord::new(
        &found.family.subject,
        request_id,
        "oauth_refresh.revoke",
        "oauth_sign_in",
        &found.family.id,
        serde_json::json!({"client_id": client_id, "via": "/oauth/revoke"}),
    );
    state
        .store
        .end_refresh_families(
            Families::One(&found.family.id),
            Timestamp::now(),
            Some(&audit),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_ends_at_its_absolute_end_or_after_idling() {
        let t = |s: i64| Timestamp::from_datetime(chrono::DateTime::from_timestamp(s, 0).unwrap());
        let family = RefreshFamily {
            id: "f".into(),
            client_id: "dcr.c".into(),
            subject: "local:a".into(),
            username: "a".into(),
            groups: vec![],
            scopes: vec![],
            resource: String::new(),
            session: None,
            created_at: t(1_000),
            expires_at: t(10_000),
            last_used_at: t(5_000),
        };
        assert!(!ended(&family, t(5_100), 100));
        assert!(ended(&family, t(5_101), 100), "idle past 100 s");
        assert!(!ended(&family, t(9_000), 4_000));
        assert!(
            ended(&family, t(10_001), 1_000_000),
            "past the absolute end"
        );
    }
}
