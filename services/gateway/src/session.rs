//! Session ids that carry their own state, so any gateway replica can serve the next request.
//!
//! A session id is the sealed (AES-256-GCM) JSON of [`SessionState`]: which server it belongs
//! to, the upstream's own session id (when the upstream keeps sessions), the negotiated
//! protocol version and a digest of the caller it was issued to. Every replica holds the same
//! session key, so no shared store is needed; a session presented by another caller, for
//! another server, or sealed with an unknown key is "not found" (HTTP 404), which tells the
//! client to start a new one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mcpgw_core::secrets::{Keyring, SealedSecret};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bound into every seal, so a session id cannot be replayed as any other sealed value.
const CONTEXT: &str = "mcpgw-session-v1";
/// Session ids are at most this long (the upstream id inside is limited too).
pub const MAX_SESSION_ID: usize = 2048;
const MAX_UPSTREAM_ID: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// Server path.
    #[serde(rename = "s")]
    pub server: String,
    /// The upstream's `Mcp-Session-Id`; none when the gateway owns the upstream connection
    /// (stdio, legacy SSE) or the upstream keeps no sessions.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Negotiated protocol version.
    #[serde(rename = "v")]
    pub version: String,
    /// Digest of issuer and subject of the caller the session was issued to.
    #[serde(rename = "c")]
    pub caller: String,
    /// Seconds since the epoch when it was issued.
    #[serde(rename = "t")]
    pub issued: i64,
}

/// Why a presented session id does not name a usable session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the session id is malformed")]
    Malformed,
    #[error("the session id was not issued by this gateway (or its key was rotated away)")]
    Unknown,
    #[error("the session belongs to another server")]
    OtherServer,
    #[error("the session belongs to another caller")]
    OtherCaller,
    #[error("the session has expired")]
    Expired,
    #[error("the upstream session id is too long")]
    UpstreamTooLong,
}

/// The digest that binds a session to a caller (never the token itself).
pub fn caller_digest(issuer: &str, subject: &str) -> String {
    let hash = Sha256::digest(format!("{issuer}\n{subject}").as_bytes());
    B64.encode(&hash[..16])
}

pub struct SessionSealer {
    keyring: Keyring,
    max_age_seconds: i64,
}

impl SessionSealer {
    pub fn new(keyring: Keyring, max_age_seconds: i64) -> Self {
        Self {
            keyring,
            max_age_seconds,
        }
    }

    pub fn seal(&self, state: &SessionState) -> Result<String, SessionError> {
        if state
            .upstream
            .as_ref()
            .is_some_and(|u| u.len() > MAX_UPSTREAM_ID)
        {
            return Err(SessionError::UpstreamTooLong);
        }
        let json = serde_json::to_string(state).expect("session state serializes");
        let sealed = self.keyring.seal(CONTEXT, &json);
        // Visible ASCII only (0x21–0x7E), as the transport requires: base64url pieces and dots.
        Ok(format!(
            "{}.{}.{}",
            B64.encode(sealed.kid.as_bytes()),
            to_url_safe(&sealed.nonce),
            to_url_safe(&sealed.ciphertext)
        ))
    }

    /// Opens a session id presented for `server` by `caller`.
    pub fn open(&self, id: &str, server: &str, caller: &str) -> Result<SessionState, SessionError> {
        if id.len() > MAX_SESSION_ID {
            return Err(SessionError::Malformed);
        }
        let mut parts = id.split('.');
        let (Some(kid), Some(nonce), Some(ct), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SessionError::Malformed);
        };
        let kid = B64
            .decode(kid)
            .ok()
            .and_then(|k| String::from_utf8(k).ok())
            .ok_or(SessionError::Malformed)?;
        let sealed = SealedSecret {
            kid,
            nonce: from_url_safe(nonce).ok_or(SessionError::Malformed)?,
            ciphertext: from_url_safe(ct).ok_or(SessionError::Malformed)?,
        };
        let plain = self
            .keyring
            .open(CONTEXT, &sealed)
            .map_err(|_| SessionError::Unknown)?;
        let state: SessionState =
            serde_json::from_str(plain.expose_secret()).map_err(|_| SessionError::Malformed)?;
        if state.server != server {
            return Err(SessionError::OtherServer);
        }
        if state.caller != caller {
            return Err(SessionError::OtherCaller);
        }
        let now = chrono::Utc::now().timestamp();
        if now - state.issued > self.max_age_seconds {
            return Err(SessionError::Expired);
        }
        Ok(state)
    }
}

/// Standard base64 (what the keyring produces) to URL-safe without padding.
fn to_url_safe(standard: &str) -> String {
    standard
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn from_url_safe(url_safe: &str) -> Option<String> {
    if !url_safe
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let mut s = url_safe.replace('-', "+").replace('_', "/");
    while !s.len().is_multiple_of(4) {
        s.push('=');
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> SessionSealer {
        SessionSealer::new(
            Keyring::from_base64(&Keyring::generate_base64(), &[]).unwrap(),
            3600,
        )
    }

    fn state() -> SessionState {
        SessionState {
            server: "weather".into(),
            upstream: Some("up-123".into()),
            version: "2025-11-25".into(),
            caller: caller_digest("https://idp", "alice"),
            issued: chrono::Utc::now().timestamp(),
        }
    }

    #[test]
    fn a_session_opens_on_another_replica_with_the_same_key_only() {
        let key = Keyring::generate_base64();
        let a = SessionSealer::new(Keyring::from_base64(&key, &[]).unwrap(), 3600);
        let b = SessionSealer::new(Keyring::from_base64(&key, &[]).unwrap(), 3600);
        let s = state();
        let id = a.seal(&s).unwrap();
        assert!(id.bytes().all(|c| (0x21..=0x7e).contains(&c)), "{id}");
        assert!(
            !id.contains("up-123"),
            "the upstream id is not readable: {id}"
        );
        assert_eq!(b.open(&id, "weather", &s.caller).unwrap(), s);
        assert_eq!(
            sealer().open(&id, "weather", &s.caller),
            Err(SessionError::Unknown)
        );
    }

    #[test]
    fn a_session_is_bound_to_its_server_caller_and_age() {
        let sealer = sealer();
        let s = state();
        let id = sealer.seal(&s).unwrap();
        assert_eq!(
            sealer.open(&id, "other", &s.caller),
            Err(SessionError::OtherServer)
        );
        let mallory = caller_digest("https://idp", "mallory");
        assert_eq!(
            sealer.open(&id, "weather", &mallory),
            Err(SessionError::OtherCaller)
        );
        let old = SessionState {
            issued: s.issued - 7200,
            ..s.clone()
        };
        let id = sealer.seal(&old).unwrap();
        assert_eq!(
            sealer.open(&id, "weather", &s.caller),
            Err(SessionError::Expired)
        );
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(sealer.open(bad, "weather", &s.caller).is_err(), "{bad}");
        }
        // one flipped character breaks the seal
        let id = sealer.seal(&s).unwrap();
        let mut chars: Vec<char> = id.chars().collect();
        let last = chars.len() - 2;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert!(sealer.open(&tampered, "weather", &s.caller).is_err());
    }
}
