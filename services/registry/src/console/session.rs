//! The console's sign-in state, kept in sealed cookies (no server-side table, so every replica
//! reads them alike):
//!
//! - the **session** cookie holds the access token the auth-server issued to the console, a
//!   CSRF token and the token's expiry. Every request re-validates the token (signature,
//!   issuer, audience, expiry, the issuer's revocation list) through the same authenticator as
//!   a bearer token, so revoking it at the auth-server ends the session on every replica;
//! - the **login** cookie holds one sign-in between the redirect to the auth-server and the
//!   callback: `state`, the PKCE verifier and where to return (10 minutes, one use).
//!
//! Rules: a request that changes something with the session cookie must carry the session's
//! CSRF token in `X-CSRF-Token` (compared in constant time) and, when the browser sends an
//! `Origin`, come from the console's own origin. With `secure_cookies` the cookies are
//! `__Host-` (Secure, no Domain, Path=/), so neither a sibling subdomain nor plain HTTP can set
//! or read them. They are `HttpOnly` and `SameSite=Lax`.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, Method, header};
use mcpgw_core::secrets::Keyring;
use mcpgw_core::web::{cookie_values, secret_matches};
use serde::{Deserialize, Serialize};

use crate::error::RegistryError;

/// The header that carries the CSRF token of a cookie-authenticated change.
pub const CSRF_HEADER: &str = "x-csrf-token";
const SESSION_CONTEXT: &str = "console:session";
const LOGIN_CONTEXT: &str = "console:login";
/// How long a sign-in may take between the redirect and the callback.
pub const LOGIN_TIMEOUT_SECONDS: i64 = 600;

/// A signed-in console user.
#[derive(Serialize, Deserialize)]
pub struct Session {
    /// The access token from the auth-server; never sent to the browser in the clear.
    pub token: String,
    pub csrf: String,
    /// The token's `jti`, to revoke it at sign-out.
    pub token_id: Option<String>,
    /// Unix seconds; the token's own `exp`.
    pub expires_at: i64,
}

/// A sign-in between the redirect to the auth-server and the callback.
#[derive(Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub verifier: String,
    /// A console path (`/console/…`) to land on afterwards.
    pub return_to: String,
    /// Unix seconds.
    pub started_at: i64,
}

/// Opens, writes and checks the console's cookies.
pub struct Sessions {
    keyring: Arc<Keyring>,
    secure: bool,
    /// `scheme://host[:port]` of `console.public_url`: the only origin changes may come from.
    origin: String,
}

impl Sessions {
    pub fn new(keyring: Arc<Keyring>, secure: bool, public_url: &str) -> Self {
        let origin = url::Url::parse(public_url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        Self {
            keyring,
            secure,
            origin,
        }
    }

    pub fn session_cookie(&self) -> &'static str {
        if self.secure {
            "__Host-mcpgw_console"
        } else {
            "mcpgw_console"
        }
    }

    pub fn login_cookie(&self) -> &'static str {
        if self.secure {
            "__Host-mcpgw_console_login"
        } else {
            "mcpgw_console_login"
        }
    }

    /// The signed-in session of this request, if its cookie opens and has not expired.
    pub fn read(&self, headers: &HeaderMap) -> Option<Session> {
        let session: Session = cookie_values(headers, self.session_cookie())
            .iter()
            .find_map(|value| self.keyring.open_text(SESSION_CONTEXT, value))?;
        (session.expires_at > now()).then_some(session)
    }

    /// The pending sign-in of this request, if its cookie opens and is recent.
    pub fn read_login(&self, headers: &HeaderMap) -> Option<PendingLogin> {
        let login: PendingLogin = cookie_values(headers, self.login_cookie())
            .iter()
            .find_map(|value| self.keyring.open_text(LOGIN_CONTEXT, value))?;
        (0..=LOGIN_TIMEOUT_SECONDS)
            .contains(&(now() - login.started_at))
            .then_some(login)
    }

    pub fn session_set_cookie(&self, session: &Session) -> HeaderValue {
        let max_age = (session.expires_at - now()).max(0);
        self.set_cookie(
            self.session_cookie(),
            &self.keyring.seal_text(SESSION_CONTEXT, session),
            max_age,
        )
    }

    pub fn login_set_cookie(&self, login: &PendingLogin) -> HeaderValue {
        self.set_cookie(
            self.login_cookie(),
            &self.keyring.seal_text(LOGIN_CONTEXT, login),
            LOGIN_TIMEOUT_SECONDS,
        )
    }

    /// A `Set-Cookie` that deletes `name`.
    pub fn clear(&self, name: &str) -> HeaderValue {
        self.set_cookie(name, "", 0)
    }

    fn set_cookie(&self, name: &str, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
        ))
        .expect("cookie names and base64url values are valid header text")
    }

    /// Refuses a change (any method but GET, HEAD, OPTIONS) made with the session cookie unless
    /// it carries the session's CSRF token and, if the browser names one, the console's origin.
    pub fn check_change(
        &self,
        method: &Method,
        headers: &HeaderMap,
        session: &Session,
    ) -> Result<(), RegistryError> {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        if let Some(origin) = headers.get(header::ORIGIN)
            && origin.as_bytes() != self.origin.as_bytes()
        {
            return Err(RegistryError::CsrfRejected(format!(
                "a change signed in with the console's cookie must come from {}; this one came from {}",
                self.origin,
                String::from_utf8_lossy(origin.as_bytes())
            )));
        }
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !secret_matches(sent, &session.csrf) {
            return Err(RegistryError::CsrfRejected(
                "a change signed in with the console's cookie needs the session's CSRF token in the X-CSRF-Token header (the console page carries it); reload the page and try again".to_owned(),
            ));
        }
        Ok(())
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        let keyring = Keyring::from_base64(&Keyring::generate_base64(), &[]).unwrap();
        Sessions::new(Arc::new(keyring), true, "https://registry.example.com")
    }

    fn session() -> Session {
        Session {
            token: "a.b.c".to_owned(),
            csrf: "the-csrf-token".to_owned(),
            token_id: None,
            expires_at: now() + 60,
        }
    }

    fn with_cookie(s: &Sessions, session: &Session) -> HeaderMap {
        let set = s.session_set_cookie(session);
        let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, format!("other=1; {pair}").parse().unwrap());
        headers
    }

    #[test]
    fn a_session_cookie_round_trips_and_is_host_only_and_http_only() {
        let s = sessions();
        let set = s.session_set_cookie(&session());
        let text = set.to_str().unwrap();
        assert!(text.starts_with("__Host-mcpgw_console="), "{text}");
        for part in ["Path=/", "HttpOnly", "Secure", "SameSite=Lax"] {
            assert!(text.contains(part), "{part} missing in {text}");
        }
        assert!(!text.contains("Domain"), "{text}");
        assert!(!text.contains("a.b.c"), "the token must be sealed: {text}");
        let read = s.read(&with_cookie(&s, &session())).unwrap();
        assert_eq!(read.token, "a.b.c");
    }

    #[test]
    fn an_expired_or_foreign_session_cookie_is_no_session() {
        let s = sessions();
        let mut old = session();
        old.expires_at = now() - 1;
        assert!(s.read(&with_cookie(&s, &old)).is_none());
        // Sealed by another registry's key.
        let other = sessions();
        assert!(s.read(&with_cookie(&other, &session())).is_none());
    }

    #[test]
    fn changes_need_the_csrf_token_and_the_console_origin() {
        let s = sessions();
        let session = session();
        let mut headers = HeaderMap::new();
        assert!(s.check_change(&Method::GET, &headers, &session).is_ok());
        let err = s
            .check_change(&Method::POST, &headers, &session)
            .unwrap_err();
        assert!(matches!(err, RegistryError::CsrfRejected(_)));
        headers.insert(CSRF_HEADER, "wrong".parse().unwrap());
        assert!(s.check_change(&Method::DELETE, &headers, &session).is_err());
        headers.insert(CSRF_HEADER, "the-csrf-token".parse().unwrap());
        assert!(s.check_change(&Method::POST, &headers, &session).is_ok());
        headers.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        let err = s
            .check_change(&Method::POST, &headers, &session)
            .unwrap_err();
        assert!(err.to_string().contains("https://evil.example"), "{err}");
        headers.insert(
            header::ORIGIN,
            "https://registry.example.com".parse().unwrap(),
        );
        assert!(s.check_change(&Method::PUT, &headers, &session).is_ok());
    }

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            mcpgw_core::web::pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
