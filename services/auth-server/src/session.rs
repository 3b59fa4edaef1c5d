//! Browser sessions: ids, cookies, lifetimes.
//!
//! Rules of this module:
//! - A session id is 32 random bytes (base64url, 43 characters). Only its SHA-256 is stored, so
//!   a copy of the database does not let anyone act as a logged-in user.
//! - Every login creates a new id and deletes the session the browser held before (session
//!   fixation cannot survive a login).
//! - The cookie is `HttpOnly`, `SameSite=Lax`, `Path=/`, and `Secure` unless configured off for
//!   loopback use; with `Secure` it is named `__Host-mcpgw_session`, which browsers only accept
//!   from a secure origin without a `Domain`, so a sibling subdomain cannot plant one.
//! - A session ends `session.ttl_seconds` after login, or after `session.idle_timeout_seconds`
//!   without a request; activity is written at most once a minute per session.
//! - Each session has a random CSRF token; cookie-authenticated mutations must echo it in
//!   `X-CSRF-Token` (checked by the `Session` extractor, compared in constant time).

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue};
use chrono::Duration;
use mcpgw_core::secrets::SealedSecret;
use mcpgw_core::time::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::config::SessionConfig;
use crate::store::{AuditRecord, AuthStore, Result, SessionRecord};

pub const SECURE_COOKIE: &str = "__Host-mcpgw_session";
pub const PLAIN_COOKIE: &str = "mcpgw_session";

use mcpgw_core::web::random_token;
/// Session ids and CSRF tokens are random tokens; comparisons are constant-time.
pub use mcpgw_core::web::{cookie_values, secret_matches as csrf_matches};

/// How often `last_seen_at` is written for an active session.
const TOUCH_INTERVAL_SECONDS: i64 = 60;

/// The stored form of a session id.
pub fn hash_id(id: &str) -> String {
    Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn well_formed_id(id: &str) -> bool {
    id.len() == 43
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Who is logging in, as the identity provider established it.
#[derive(Debug, Clone)]
pub struct LoginIdentity {
    pub subject: String,
    pub username: String,
    pub provider: String,
    pub groups: Vec<String>,
}

/// Creates, finds and ends sessions.
pub struct Sessions {
    store: Arc<dyn AuthStore>,
    config: SessionConfig,
}

impl Sessions {
    pub fn new(store: Arc<dyn AuthStore>, config: SessionConfig) -> Self {
        Self { store, config }
    }

    pub fn cookie_name(&self) -> &'static str {
        if self.config.cookie_secure {
            SECURE_COOKIE
        } else {
            PLAIN_COOKIE
        }
    }

    fn attributes(&self) -> &'static str {
        if self.config.cookie_secure {
            "Path=/; HttpOnly; SameSite=Lax; Secure"
        } else {
            "Path=/; HttpOnly; SameSite=Lax"
        }
    }

    /// The `Set-Cookie` value that hands `id` to the browser.
    pub fn set_cookie(&self, id: &SecretString) -> HeaderValue {
        let value = format!(
            "{}={}; {}; Max-Age={}",
            self.cookie_name(),
            id.expose_secret(),
            self.attributes(),
            self.config.ttl_seconds
        );
        HeaderValue::from_str(&value).expect("a base64url id makes a valid header")
    }

    /// The `Set-Cookie` value that removes the cookie.
    pub fn clear_cookie(&self) -> HeaderValue {
        let value = format!("{}=; {}; Max-Age=0", self.cookie_name(), self.attributes());
        HeaderValue::from_str(&value).expect("a constant makes a valid header")
    }

    /// The session id the request's cookies carry, if any well-formed one.
    pub fn id_from(&self, headers: &HeaderMap) -> Option<String> {
        cookie_values(headers, self.cookie_name())
            .into_iter()
            .find(|v| well_formed_id(v))
    }

    /// Starts a session for `who` with `scopes`, replacing the browser's previous one.
    /// Returns the new id (for the cookie) and the record.
    pub async fn create(
        &self,
        who: &LoginIdentity,
        scopes: Vec<String>,
        id_token: Option<SealedSecret>,
        replaces: Option<&str>,
        request_id: Option<&str>,
    ) -> Result<(SecretString, SessionRecord)> {
        let id = SecretString::from(random_token());
        let now = Timestamp::now();
        let record = SessionRecord {
            id_hash: hash_id(id.expose_secret()),
            subject: who.subject.clone(),
            username: who.username.clone(),
            provider: who.provider.clone(),
            groups: who.groups.clone(),
            scopes,
            csrf_token: random_token(),
            id_token,
            created_at: now,
            expires_at: Timestamp::from_datetime(
                now.as_datetime() + Duration::seconds(self.config.ttl_seconds as i64),
            ),
            last_seen_at: now,
        };
        let audit = AuditRecord::new(
            &who.subject,
            request_id,
            "login.success",
            "session",
            &record.id_hash[..16],
            serde_json::json!({
                "provider": who.provider,
                "username": who.username,
                "groups": who.groups,
                "scopes": record.scopes,
            }),
        );
        let replaced = replaces.map(hash_id);
        self.store
            .insert_session(&record, replaced.as_deref(), &audit)
            .await?;
        Ok((id, record))
    }

    /// The live session behind `id`, or `None` when there is none or it has ended (an ended
    /// one is deleted). Records activity.
    pub async fn find(&self, id: &str) -> Result<Option<SessionRecord>> {
        let id_hash = hash_id(id);
        let Some(session) = self.store.get_session(&id_hash).await? else {
            return Ok(None);
        };
        let now = Timestamp::now();
        let idle_limit = session.last_seen_at.as_datetime()
            + Duration::seconds(self.config.idle_timeout_seconds as i64);
        if session.expires_at <= now || idle_limit <= now.as_datetime() {
            self.store.delete_session(&id_hash, None).await?;
            return Ok(None);
        }
        if (now.as_datetime() - session.last_seen_at.as_datetime()).num_seconds()
            >= TOUCH_INTERVAL_SECONDS
        {
            self.store.touch_session(&id_hash, now).await?;
        }
        Ok(Some(session))
    }

    /// Ends the session behind `id` (logout); `false` when there was none.
    pub async fn end(
        &self,
        id: &str,
        session: &SessionRecord,
        request_id: Option<&str>,
    ) -> Result<bool> {
        let id_hash = hash_id(id);
        let audit = AuditRecord::new(
            &session.subject,
            request_id,
            "logout",
            "session",
            &id_hash[..16],
            serde_json::json!({"provider": session.provider}),
        );
        self.store.delete_session(&id_hash, Some(&audit)).await
    }

    /// Deletes sessions that have ended (run periodically).
    pub async fn prune(&self) -> Result<u64> {
        let now = Timestamp::now();
        let idle_before = Timestamp::from_datetime(
            now.as_datetime() - Duration::seconds(self.config.idle_timeout_seconds as i64),
        );
        self.store.delete_expired_sessions(now, idle_before).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn cookies_are_found_among_several_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; mcpgw_session=xyz"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie_values(&headers, PLAIN_COOKIE), vec!["xyz"]);
        assert!(cookie_values(&headers, SECURE_COOKIE).is_empty());
    }

    #[test]
    fn ids_are_random_and_stored_only_as_hashes() {
        let a = random_token();
        assert!(well_formed_id(&a));
        assert_ne!(a, random_token());
        let h = hash_id(&a);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&a));
        assert!(!well_formed_id("short"));
        assert!(!well_formed_id(&format!("{}!", &a[..42])));
    }

    #[test]
    fn csrf_tokens_compare_exactly() {
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abd", "abc"));
        assert!(!csrf_matches("", ""));
    }
}
