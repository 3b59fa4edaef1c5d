//! The browser pages: `/login` (form and POST), `/logout`, and `/` (who am I).
//!
//! Rules of these pages:
//! - Plain HTML, no script, styled by the console's stylesheet (served here, `'self'` styles
//!   only); every value is HTML-escaped; answers carry `Cache-Control: no-store`, a restrictive
//!   `Content-Security-Policy` and `X-Frame-Options: DENY`.
//! - The login form is protected against login CSRF with a double-submit token: `GET /login`
//!   sets a short-lived `SameSite=Strict` cookie and puts the same random value in the form.
//! - Every failed password login answers the same words and status whatever went wrong (no
//!   such user, disabled, wrong password, malformed input), and costs the same argon2 work. The
//!   form keeps the username the user typed (their own input, so it tells nothing new).
//! - Failures are counted in the store (so every replica sees them) per (username, client
//!   address) pair, per username and per client address, in `login.failure_window_seconds`.
//!   The limits are checked before any password, and answer 429 with `Retry-After`:
//!   - a pair past `login.max_failures_per_pair` backs off exponentially from its last failure
//!     (`backoff_base_seconds` doubling per failure, at most `backoff_max_seconds`);
//!   - an address past `login.max_failures_per_client` (across usernames) waits for the window;
//!   - an account past `login.max_failures_per_user` (from all addresses) is never locked:
//!     its pairs back off after their first failure instead. So failures from elsewhere never
//!     keep the right password from a new address out (the administrator cannot be locked
//!     out from another address), while guessing from many addresses is slowed.
//! - The client address is the TCP peer unless `login.trusted_proxy_hops` says how many of our
//!   own proxies append to `X-Forwarded-For` (client-sent entries are never trusted).
//! - A successful login always creates a new session id and deletes the browser's old session.
//! - `return_to` may only name a path on this site or an origin in `allowed_return_origins`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use mcpgw_core::input::Params;
use mcpgw_core::time::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;

use super::extract::{Ctx, Peer, client_address, session_of};
use crate::app::AppState;
use crate::config::{LoginConfig, parse_origin};
use crate::error::AuthError;
use crate::local::{MAX_PASSWORD_BYTES, Username};
use crate::scope::scopes_for_groups;
use crate::session::{LoginIdentity, cookie_values, csrf_matches};
use crate::store::AuditRecord;

const LOGIN_FORM_COOKIE_SECURE: &str = "__Host-mcpgw_login";
const LOGIN_FORM_COOKIE_PLAIN: &str = "mcpgw_login";
/// Largest form accepted (login, logout, OAuth token requests).
pub(super) const MAX_FORM_BYTES: usize = 8 * 1024;
/// Longest `return_to`. It also travels sealed in the OIDC login cookie, which must stay
/// under browsers' 4 KiB cookie limit.
pub(super) const MAX_RETURN_TO: usize = 2048;
const GENERIC_FAILURE: &str = "Invalid username or password.";
/// Longest username put back into the form after a refusal (usernames are shorter).
const MAX_KEPT_USERNAME: usize = 256;

pub use mcpgw_core::html::escape;

/// Where the pages' stylesheet is: the console's own (`mcpgw_core::html::CONSOLE_CSS`), served
/// by this service, so signing in and out looks like the console it leads to.
pub const CONSOLE_CSS_PATH: &str = "/assets/console.css";

/// `GET /assets/console.css`.
pub async fn console_css() -> Response {
    let mut response = mcpgw_core::html::CONSOLE_CSS.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    // Not versioned in its URL: a day, then revalidated, so a new build shows within one.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    response
}

/// An HTML page with the security headers every page carries.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\">\
         <link rel=\"stylesheet\" href=\"{CONSOLE_CSS_PATH}\"></head>\
         <body class=\"plain\"><main id=\"main\"><h1>{}</h1>{body}</main></body></html>",
        escape(title),
        escape(title)
    );
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The policy of pages whose form ends in a redirect to another site. Browsers apply
/// `form-action` to every redirect after a form is sent, so signing in (`POST /login` →
/// `/oauth/authorize` → the client's redirect URI, or → an allowed `return_to`) and signing out
/// (→ the IdP's end-session endpoint) must name those origins, or the browser stops the
/// redirect and the user stays on the form.
pub fn form_page_csp(config: &crate::config::AuthConfig) -> HeaderValue {
    let mut origins = std::collections::BTreeSet::new();
    let urls = config
        .allowed_return_origins
        .iter()
        .chain(
            config
                .oauth
                .clients
                .iter()
                .flat_map(|c| c.redirect_uris.iter()),
        )
        .chain(config.oidc.providers.iter().map(|p| &p.issuer));
    for url in urls {
        if let Ok(u) = url::Url::parse(url) {
            origins.insert(u.origin().ascii_serialization());
        }
    }
    let sources: String = origins.iter().map(|o| format!(" {o}")).collect();
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'self'; img-src data:; form-action 'self'{sources}; frame-ancestors 'none'; base-uri 'none'"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(PAGE_CSP))
}

/// The policy of every other page.
const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `page`, for a page with a sign-in or sign-out form.
fn form_page(state: &AppState, status: StatusCode, title: &str, body: &str) -> Response {
    let mut response = page(status, title, body);
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, state.form_page_csp.clone());
    response
}

pub(super) fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Checks `return_to`: a path on this site (`/x`, not `//x`) or a URL on an allowed origin.
/// Returns where to send the browser.
pub fn safe_return_to(state: &AppState, text: Option<&str>) -> Result<String, String> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok("/".to_owned());
    };
    if text.len() > MAX_RETURN_TO || text.chars().any(|c| c.is_control() || c == '\\') {
        return Err(
            "return_to must be at most 2048 characters without control characters or backslashes"
                .to_owned(),
        );
    }
    if text.starts_with('/') && !text.starts_with("//") {
        return Ok(text.to_owned());
    }
    let allowed = url::Url::parse(text).ok().and_then(|u| {
        let origin = parse_origin(&u.origin().ascii_serialization())?;
        let ours = parse_origin(&state.public_url)?;
        // Also the origin of a registered OAuth client's redirect URI: the browser is sent
        // there after `/oauth/authorize` anyway (the console's signed-out page, after `/logout`).
        let listed = state
            .config
            .allowed_return_origins
            .iter()
            .chain(
                state
                    .config
                    .oauth
                    .clients
                    .iter()
                    .flat_map(|c| c.redirect_uris.iter()),
            )
            .filter_map(|o| {
                url::Url::parse(o)
                    .ok()
                    .and_then(|u| parse_origin(&u.origin().ascii_serialization()))
            })
            .any(|o| o == origin);
        (origin == ours || listed).then(|| u.to_string())
    });
    allowed.ok_or_else(|| {
        "return_to must be a path on this site or a URL on an origin in allowed_return_origins"
            .to_owned()
    })
}

fn form_cookie_name(state: &AppState) -> &'static str {
    if state.config.session.cookie_secure {
        LOGIN_FORM_COOKIE_SECURE
    } else {
        LOGIN_FORM_COOKIE_PLAIN
    }
}

fn form_cookie(state: &AppState, value: &str, max_age: u32) -> HeaderValue {
    let secure = if state.config.session.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        form_cookie_name(state)
    ))
    .expect("a base64url value makes a valid header")
}

/// The login form, with a fresh form token in a cookie and a hidden field.
///
/// `username` is what the user typed, kept in the field after a refusal (so a wrong password
/// costs retyping the password only; focus then goes to the password). It is the user's own
/// input, escaped, and only up to [`MAX_KEPT_USERNAME`] characters.
fn login_form(
    state: &AppState,
    status: StatusCode,
    return_to: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    let token = mcpgw_core::web::random_token();
    let error = error
        .map(|e| {
            format!(
                "<p class=\"status error\" data-kind=\"error\" id=\"error\" role=\"alert\">{}</p>",
                escape(e)
            )
        })
        .unwrap_or_default();
    let kept: String = username.trim().chars().take(MAX_KEPT_USERNAME).collect();
    let (user_focus, password_focus) = if kept.is_empty() {
        (" autofocus", "")
    } else {
        ("", " autofocus")
    };
    let local = if state.passwords.is_some() {
        format!(
            "<form method=\"post\" action=\"/login\" class=\"stack\">\
             <input type=\"hidden\" name=\"form_token\" value=\"{}\">\
             <input type=\"hidden\" name=\"return_to\" value=\"{}\">\
             <div class=\"field\"><label for=\"username\">Username</label>\
             <input id=\"username\" name=\"username\" autocomplete=\"username\" value=\"{}\" required{user_focus}></div>\
             <div class=\"field\"><label for=\"password\">Password</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required{password_focus}></div>\
             <div class=\"actions\"><button type=\"submit\" class=\"primary\">Sign in</button></div></form>",
            escape(&token),
            escape(return_to),
            escape(&kept)
        )
    } else {
        String::new()
    };
    let providers: String = state
        .oidc
        .list()
        .iter()
        .map(|(id, name)| {
            let href = format!(
                "/login/oidc/{}?return_to={}",
                id,
                url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
            );
            format!(
                "<p><a class=\"provider button\" href=\"{}\">Sign in with {}</a></p>",
                escape(&href),
                escape(name)
            )
        })
        .collect();
    let mut response = form_page(
        state,
        status,
        "Sign in to mcpgw",
        &format!("{error}{providers}{local}"),
    );
    let h = response.headers_mut();
    if let Some(origin) = super::oauth::sign_in_destination(return_to) {
        let csp = super::oauth::with_form_action(&state.form_page_csp, &origin);
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.append(header::SET_COOKIE, form_cookie(state, &token, 600));
    response
}

pub(super) fn bad_request_page(message: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Bad request",
        &format!(
            "<p class=\"status error\" data-kind=\"error\" role=\"alert\">{}</p>",
            escape(message)
        ),
    )
}

/// `GET /login`: the sign-in form.
pub async fn login_page(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let params = match Params::parse(query.as_deref(), &["return_to"]) {
        Ok(p) => p,
        Err(e) => return bad_request_page(&e.to_string()),
    };
    match safe_return_to(&state, params.text("return_to")) {
        Ok(to) => login_form(&state, StatusCode::OK, &to, "", None),
        Err(message) => bad_request_page(&message),
    }
}

/// Reads an urlencoded form: each of `allowed` at most once, nothing else.
pub(super) fn parse_form(
    headers: &HeaderMap,
    body: &[u8],
    allowed: &[&str],
) -> Result<HashMap<String, String>, String> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err("send the form as application/x-www-form-urlencoded".to_owned());
    }
    if body.len() > MAX_FORM_BYTES {
        return Err(format!("the form is larger than {MAX_FORM_BYTES} bytes"));
    }
    let mut map = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if !allowed.contains(&k.as_ref()) {
            return Err(format!("unknown form field {k:?}"));
        }
        if map.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("the form field {k:?} is given more than once"));
        }
    }
    Ok(map)
}

fn retry_page(state: &AppState, return_to: &str, username: &str, wait: u64) -> Response {
    let mut response = login_form(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        return_to,
        username,
        Some("Too many failed sign-in attempts. Wait a while, then try again."),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    response
}

/// How long a pair with `failures` waits after its last failure, when past its `allowance`:
/// `backoff_base_seconds` for the first failure beyond it, doubling with each further one, at
/// most `backoff_max_seconds`. `None`: it may try now.
fn backoff_seconds(failures: u64, allowance: u32, login: &LoginConfig) -> Option<u64> {
    let beyond = failures.checked_sub(u64::from(allowance))?;
    let doubling = 1u64.checked_shl(beyond.min(63) as u32).unwrap_or(u64::MAX);
    Some(
        login
            .backoff_base_seconds
            .saturating_mul(doubling)
            .min(login.backoff_max_seconds),
    )
}

/// `POST /login`: checks the password and starts a session.
pub async fn login_submit(
    State(state): State<AppState>,
    ctx: Ctx,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match login_submit_inner(&state, &ctx, peer, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn login_submit_inner(
    state: &AppState,
    ctx: &Ctx,
    peer: Option<std::net::SocketAddr>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, AuthError> {
    let Some(passwords) = state.passwords.clone() else {
        return Ok(bad_request_page("password sign-in is disabled here"));
    };
    let form = match parse_form(
        headers,
        body,
        &["username", "password", "form_token", "return_to"],
    ) {
        Ok(f) => f,
        Err(m) => return Ok(bad_request_page(&m)),
    };
    let return_to = match safe_return_to(state, form.get("return_to").map(String::as_str)) {
        Ok(to) => to,
        Err(m) => return Ok(bad_request_page(&m)),
    };
    let sent_token = form.get("form_token").map(String::as_str).unwrap_or("");
    let cookie_ok = cookie_values(headers, form_cookie_name(state))
        .iter()
        .any(|c| csrf_matches(sent_token, c));
    if !cookie_ok {
        return Ok(login_form(
            state,
            StatusCode::BAD_REQUEST,
            &return_to,
            form.get("username").map(String::as_str).unwrap_or(""),
            Some("The sign-in form expired. Please try again."),
        ));
    }
    let username_text = form.get("username").map(String::as_str).unwrap_or("");
    let password = SecretString::from(form.get("password").cloned().unwrap_or_default());
    let username = Username::parse(username_text.trim()).ok();
    let client = client_address(headers, peer, state.config.login.trusted_proxy_hops);
    let name = username.as_ref().map_or("(invalid)", |u| u.as_str());
    let user_key = format!("user:{name}");
    let client_key = format!("client:{client}");
    // An address has no `|`, so the pair key cannot be forged from another pair's parts.
    let pair_key = format!("pair:{client}|{name}");

    // The attempt limits, before any password is checked.
    let login = &state.config.login;
    let window = Duration::seconds(login.failure_window_seconds as i64);
    let now = Timestamp::now();
    let since = Timestamp::from_datetime(now.as_datetime() - window);
    let by_client = state.store.login_failures(&client_key, since).await?;
    let mut free_at = None;
    if by_client.count >= u64::from(login.max_failures_per_client) {
        free_at = Some(by_client.oldest.unwrap_or(now).as_datetime() + window);
    }
    let by_account = state.store.login_failures(&user_key, since).await?;
    let allowance = if by_account.count >= u64::from(login.max_failures_per_user) {
        1
    } else {
        login.max_failures_per_pair
    };
    let by_pair = state.store.login_failures(&pair_key, since).await?;
    if let (Some(wait), Some(last)) = (
        backoff_seconds(by_pair.count, allowance, login),
        by_pair.newest,
    ) {
        let until = last.as_datetime() + Duration::seconds(wait as i64);
        free_at = free_at.max(Some(until));
    }
    if let Some(free_at) = free_at
        && free_at > now.as_datetime()
    {
        // Whole seconds, rounded up: a client that waits as told is let in.
        let ms = (free_at - now.as_datetime()).num_milliseconds();
        let wait = ((ms + 999) / 1000).max(1) as u64;
        state
            .auth_metrics
            .logins
            .with_label_values(&["local", "limited"])
            .inc();
        return Ok(retry_page(state, &return_to, username_text, wait));
    }

    let user = match &username {
        Some(u) => state.store.get_user(u.as_str()).await?,
        None => None,
    };
    let usable = user.filter(|u| !u.disabled);
    let too_long = password.expose_secret().len() > MAX_PASSWORD_BYTES;
    let candidate = if too_long {
        SecretString::from(String::new())
    } else {
        password
    };
    let verified = passwords
        .verify(candidate, usable.as_ref().map(|u| u.password_hash.clone()))
        .await
        && !too_long;
    let Some(user) = usable.filter(|_| verified) else {
        state
            .store
            .record_login_failure(&[pair_key, user_key, client_key], now)
            .await?;
        let audit = AuditRecord::new(
            "anonymous",
            ctx.id(),
            "login.failure",
            "user",
            name,
            serde_json::json!({"provider": "local", "client": client}),
        );
        state.store.insert_audit(&audit).await?;
        state
            .auth_metrics
            .logins
            .with_label_values(&["local", "failure"])
            .inc();
        return Ok(login_form(
            state,
            StatusCode::UNAUTHORIZED,
            &return_to,
            username_text,
            Some(GENERIC_FAILURE),
        ));
    };

    // Only this pair is forgiven: the account's count keeps what other addresses tried, so
    // signing in does not end the slowdown of a guessing attack in progress.
    state.store.clear_login_failures(&pair_key).await?;
    let who = LoginIdentity {
        subject: format!("local:{}", user.username),
        username: user.username.clone(),
        provider: "local".to_owned(),
        groups: user.groups.clone(),
    };
    let scopes = scopes_for_groups(&state.config.group_scopes, &who.groups);
    let previous = state.sessions.id_from(headers);
    let (id, _) = state
        .sessions
        .create(&who, scopes, None, previous.as_deref(), ctx.id())
        .await?;
    state
        .auth_metrics
        .logins
        .with_label_values(&["local", "success"])
        .inc();
    let mut response = redirect(&return_to);
    let h = response.headers_mut();
    h.append(header::SET_COOKIE, state.sessions.set_cookie(&id));
    h.append(header::SET_COOKIE, form_cookie(state, "", 0));
    Ok(response)
}

/// `GET /`: who is signed in, with a sign-out button.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session_of(&state, &headers).await {
        Ok(Some(s)) => {
            let r = &s.record;
            let list = |items: &[String]| {
                if items.is_empty() {
                    "none".to_owned()
                } else {
                    items
                        .iter()
                        .map(|i| escape(i))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            page(
                StatusCode::OK,
                "mcpgw",
                &format!(
                    "<p>Signed in as <strong id=\"username\">{}</strong> ({}).</p>\
                     <p>Groups: {}</p><p>Scopes: {}</p>\
                     <p>Mint tokens for agents with <code>POST /api/v1/tokens</code>.</p>\
                     <form method=\"post\" action=\"/logout\">\
                     <input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\
                     <button type=\"submit\" class=\"primary\">Sign out</button></form>",
                    escape(&r.username),
                    escape(&r.provider),
                    list(&r.groups),
                    list(&r.scopes),
                    escape(&r.csrf_token)
                ),
            )
        }
        Ok(None) => redirect("/login"),
        Err(e) => e.into_response(),
    }
}

/// `GET /logout[?return_to=]`: a confirmation form (a link cannot sign anyone out by itself),
/// which then goes on to `return_to`. Without a session (a client that signed out by revoking
/// its sign-in token has already ended it) it goes to `return_to` at once, so the user lands
/// back where they came from (the console's signed-out page) instead of on a bare sign-in form.
pub async fn logout_page(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = match Params::parse(query.as_deref(), &["return_to"]) {
        Ok(p) => p,
        Err(e) => return bad_request_page(&e.to_string()),
    };
    let return_to = match params.text("return_to") {
        None => None,
        Some(text) => match safe_return_to(&state, Some(text)) {
            Ok(to) => Some(to),
            Err(m) => return bad_request_page(&m),
        },
    };
    match session_of(&state, &headers).await {
        Ok(Some(s)) => form_page(
            &state,
            StatusCode::OK,
            "Sign out",
            &format!(
                "<p>Sign out {}?</p><form method=\"post\" action=\"/logout\" class=\"stack\">\
                 <input type=\"hidden\" name=\"csrf_token\" value=\"{}\">{}\
                 <div class=\"actions\"><button type=\"submit\" class=\"primary\">Sign out</button></div></form>",
                escape(&s.record.username),
                escape(&s.record.csrf_token),
                return_to
                    .as_deref()
                    .map(|to| format!(
                        "<input type=\"hidden\" name=\"return_to\" value=\"{}\">",
                        escape(to)
                    ))
                    .unwrap_or_default()
            ),
        ),
        Ok(None) => redirect(return_to.as_deref().unwrap_or("/login")),
        Err(e) => e.into_response(),
    }
}

/// `POST /logout`: ends the session. Needs the session's CSRF token, as the form field
/// `csrf_token` or the `X-CSRF-Token` header. Without a session it just goes to `/login`.
pub async fn logout_submit(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let session = match session_of(&state, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            let mut r = redirect("/login");
            r.headers_mut()
                .append(header::SET_COOKIE, state.sessions.clear_cookie());
            return r;
        }
        Err(e) => return e.into_response(),
    };
    let header_token = headers
        .get(super::extract::CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (sent, return_to) = if body.is_empty() {
        (header_token, None)
    } else {
        match parse_form(&headers, &body, &["csrf_token", "return_to"]) {
            Ok(mut f) => (
                f.remove("csrf_token").or(header_token),
                f.remove("return_to"),
            ),
            Err(m) => return bad_request_page(&m),
        }
    };
    if !csrf_matches(sent.as_deref().unwrap_or(""), &session.record.csrf_token) {
        return AuthError::CsrfFailed.into_response();
    }
    let to = match safe_return_to(&state, return_to.as_deref()) {
        Ok(to) if return_to.is_some() => to,
        Ok(_) => "/login".to_owned(),
        Err(m) => return bad_request_page(&m),
    };
    if let Err(e) = state
        .sessions
        .end(&session.id, &session.record, ctx.id())
        .await
    {
        return AuthError::from(e).into_response();
    }
    // A session from an OIDC provider ends there too (RP-initiated logout, id_token_hint).
    let mut to = to;
    if let Some(sealed) = &session.record.id_token
        && let Ok(id_token) = state.keyring.open(
            &super::oidc::id_token_context(&session.record.subject),
            sealed,
        )
        && let Some(url) = state
            .oidc
            .end_session_url(&session.record.provider, id_token.expose_secret())
            .await
    {
        to = url;
    }
    let mut r = redirect(&to);
    r.headers_mut()
        .append(header::SET_COOKIE, state.sessions.clear_cookie());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(base: u64, max: u64) -> LoginConfig {
        LoginConfig {
            max_failures_per_pair: 5,
            backoff_base_seconds: base,
            backoff_max_seconds: max,
            max_failures_per_user: 20,
            max_failures_per_client: 20,
            failure_window_seconds: 900,
            trusted_proxy_hops: 0,
        }
    }

    #[test]
    fn a_pair_backs_off_exponentially_past_its_allowance_up_to_the_cap() {
        let l = login(1, 900);
        assert_eq!(backoff_seconds(0, 5, &l), None);
        assert_eq!(backoff_seconds(4, 5, &l), None);
        let waits: Vec<_> = (5..=16).map(|n| backoff_seconds(n, 5, &l)).collect();
        assert_eq!(
            waits,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900].map(Some)
        );
        assert_eq!(backoff_seconds(u64::MAX, 1, &l), Some(900));
        assert_eq!(backoff_seconds(3, 1, &login(30, 60)), Some(60));
    }
}
