//! A fresh access token for each request to one gateway URL: the saved one while it has more
//! than [`REFRESH_MARGIN`] left, else a refreshed one, else a new browser sign-in.
//!
//! Rules:
//! - one renewal at a time (a lock around the entry): concurrent requests that find the token
//!   stale wait for the one renewal instead of each spending the (rotating) refresh token;
//! - a refreshed or new token is saved before it is used, so a crash never loses the rotated
//!   refresh token;
//! - a refresh that fails for any reason falls back to a browser sign-in (the server may have
//!   revoked the refresh token, rotated it elsewhere, or not issue refresh tokens at all);
//! - [`Credentials::rejected`] is for a `401` on a token we thought good: it renews unless
//!   another request renewed it meanwhile;
//! - before renewing, the file is read again: another process for the same URL may have
//!   renewed it already (and spent the refresh token we hold: refresh tokens rotate, and a
//!   reused one is refused, possibly ending the whole sign-in).

use tokio::sync::Mutex;
use url::Url;

use crate::discovery::{Discovered, ServerMetadata, discover};
use crate::error::ConnectError;
use crate::oauth::{self, Browser, TokenAnswer, now};
use crate::store::{Entry, Store};

/// Seconds before expiry at which a token is refreshed.
pub const REFRESH_MARGIN: u64 = 60;

/// The token source of one gateway URL.
pub struct Credentials {
    http: reqwest::Client,
    url: Url,
    store: Store,
    browser: Browser,
    entry: Mutex<Option<Entry>>,
}

impl Credentials {
    /// The saved entry of `url`, if any, is loaded now.
    pub fn new(
        http: reqwest::Client,
        url: Url,
        store: Store,
        browser: Browser,
    ) -> Result<Self, ConnectError> {
        let entry = store.load(url.as_str())?;
        Ok(Self {
            http,
            url,
            store,
            browser,
            entry: Mutex::new(entry),
        })
    }

    /// A token good for at least [`REFRESH_MARGIN`] seconds (when the server said how long).
    pub async fn token(&self) -> Result<String, ConnectError> {
        let mut entry = self.entry.lock().await;
        if let Some(e) = entry.as_ref()
            && e.expires_at.is_none_or(|t| t > now() + REFRESH_MARGIN)
        {
            return Ok(e.access_token.clone());
        }
        self.renew(&mut entry).await
    }

    /// The gateway refused `token` with a `401`: a new one, unless it was renewed meanwhile.
    pub async fn rejected(&self, token: &str) -> Result<String, ConnectError> {
        let mut entry = self.entry.lock().await;
        if let Some(e) = entry.as_ref()
            && e.access_token != token
        {
            return Ok(e.access_token.clone());
        }
        if let Some(e) = entry.as_mut() {
            // Stale, whatever its expiry says: renew() refreshes it first.
            e.expires_at = Some(0);
        }
        self.renew(&mut entry).await
    }

    /// A full sign-in (discovery, registration if needed, the browser), saved.
    pub async fn sign_in(&self) -> Result<Entry, ConnectError> {
        let mut entry = self.entry.lock().await;
        self.sign_in_locked(&mut entry).await?;
        Ok(entry.clone().expect("just signed in"))
    }

    async fn renew(&self, entry: &mut Option<Entry>) -> Result<String, ConnectError> {
        // Another process for the same URL (a second client's bridge, a `login`) may have
        // renewed it: its token is used, and its rotated refresh token, as ours is spent.
        if let Some(saved) = self.store.load(self.url.as_str())?
            && entry.as_ref() != Some(&saved)
        {
            let stale = entry.as_ref().map(|e| e.access_token.as_str());
            let usable = saved.expires_at.is_none_or(|t| t > now() + REFRESH_MARGIN)
                && stale != Some(saved.access_token.as_str());
            let token = saved.access_token.clone();
            *entry = Some(saved);
            if usable {
                return Ok(token);
            }
        }
        if let Some(e) = entry.as_ref()
            && let Some(refresh_token) = &e.refresh_token
        {
            match oauth::refresh(
                &self.http,
                &e.token_endpoint,
                &e.client_id,
                refresh_token,
                &e.resource,
            )
            .await
            {
                Ok(answer) => {
                    let updated = updated(e, answer);
                    self.store.save(&updated)?;
                    let token = updated.access_token.clone();
                    *entry = Some(updated);
                    return Ok(token);
                }
                Err(err) => {
                    eprintln!(
                        "mcpgw-connect: the token could not be refreshed ({err}); signing in again"
                    );
                }
            }
        }
        self.sign_in_locked(entry).await?;
        Ok(entry.as_ref().expect("just signed in").access_token.clone())
    }

    async fn sign_in_locked(&self, entry: &mut Option<Entry>) -> Result<(), ConnectError> {
        let discovered = discover(&self.http, &self.url).await?;
        // The client registered at the same server before is reused: the user's consent to it
        // is remembered there.
        let client = entry
            .as_ref()
            .filter(|e| e.issuer == discovered.server.issuer)
            .map(|e| e.client_id.clone());
        let (client_id, answer) =
            match oauth::sign_in(&self.http, &discovered, client.clone(), &self.browser).await {
                // A client the server forgot (expired unused, revoked): register anew.
                Err(
                    ConnectError::Denied { error, .. } | ConnectError::Token { detail: error, .. },
                ) if client.is_some() && error.contains("invalid_client") => {
                    oauth::sign_in(&self.http, &discovered, None, &self.browser).await?
                }
                other => other?,
            };
        let new = fresh(&self.url, &discovered, client_id, answer);
        self.store.save(&new)?;
        *entry = Some(new);
        Ok(())
    }
}

/// The entry of a first sign-in.
fn fresh(url: &Url, d: &Discovered, client_id: String, answer: TokenAnswer) -> Entry {
    let ServerMetadata {
        issuer,
        authorization_endpoint,
        token_endpoint,
        ..
    } = d.server.clone();
    Entry {
        url: url.to_string(),
        resource: d.resource.clone(),
        issuer,
        authorization_endpoint,
        token_endpoint,
        client_id,
        expires_at: answer.expires_at(),
        access_token: answer.access_token,
        refresh_token: answer.refresh_token,
        scope: answer.scope,
    }
}

/// `e` after a refresh: a rotated refresh token replaces the old one; none keeps it (RFC 6749
/// §6 lets the server keep the old one valid).
fn updated(e: &Entry, answer: TokenAnswer) -> Entry {
    Entry {
        expires_at: answer.expires_at(),
        access_token: answer.access_token,
        refresh_token: answer.refresh_token.or_else(|| e.refresh_token.clone()),
        scope: answer.scope.or_else(|| e.scope.clone()),
        ..e.clone()
    }
}
