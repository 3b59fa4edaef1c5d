//! The web console at `/console/`: server-rendered page shells with embedded assets (no build
//! step, no separate web server), pages drawn by a small script from the same REST API every
//! other client uses, sign-in through the auth-server.
//!
//! Sign-in: `/console/login` sends the browser to the auth-server's authorization endpoint
//! (code + PKCE S256 + state); `/console/callback` exchanges the code at the auth-server's
//! token endpoint, validates the token like any bearer token, and keeps it sealed in the
//! session cookie (see `session.rs`). The API then accepts that cookie (with a CSRF token on
//! changes) as the signed-in user. The tokens page goes through `/console/api/tokens`, which
//! calls the auth-server's token API with the user's console token: the token's issuer, and one
//! of its audiences.

pub mod session;

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use mcpgw_core::auth::{Permission, Principal};
use mcpgw_core::html::escape as escape_html;
use mcpgw_core::token::TokenValidator;

use crate::app::AppState;
use crate::config::ConsoleConfig;
use crate::error::RegistryError;
use session::{PendingLogin, Session, Sessions};

/// What the console needs besides the registry: its settings, the cookie keeper, the token
/// validator (to check the token it is given) and a client for the auth-server.
pub struct Console {
    pub config: ConsoleConfig,
    pub sessions: Arc<Sessions>,
    validator: Option<Arc<TokenValidator>>,
    http: reqwest::Client,
    /// The `Content-Security-Policy` of every console page.
    csp: String,
}

impl Console {
    pub fn new(
        config: ConsoleConfig,
        sessions: Arc<Sessions>,
        validator: Option<Arc<TokenValidator>>,
    ) -> anyhow::Result<Self> {
        let auth_origin = url::Url::parse(&config.auth_server_url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self' {auth_origin}; frame-ancestors 'none'; base-uri 'none'"
        );
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            config,
            sessions,
            validator,
            http,
            csp,
        })
    }

    fn redirect_uri(&self) -> String {
        format!(
            "{}/console/callback",
            self.config.public_url.trim_end_matches('/')
        )
    }

    fn backend(&self, path: &str) -> String {
        format!(
            "{}{path}",
            self.config.auth_server_backend_url().trim_end_matches('/')
        )
    }
}

/// The console's routes, merged into the registry's router.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/console", get(|| async { redirect("/console/") }))
        .route("/console/", get(page))
        .route("/console/{*page}", get(page))
        .route("/console/assets/{file}", get(asset))
        .route("/console/login", get(login))
        .route("/console/callback", get(callback))
        .route("/console/logout", post(logout))
        .route("/console/signed-out", get(signed_out))
        .route("/console/api/tokens", get(list_tokens).post(mint_token))
        .route("/console/api/tokens/{jti}", delete(revoke_token))
        .route("/console/api/identity", get(identity))
}

// ---- assets ---------------------------------------------------------------------------------

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/app.js"),
    },
    Asset {
        name: "theme.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/theme.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        // Shared with the auth-server's sign-in pages, which look like the console.
        body: mcpgw_core::html::CONSOLE_CSS,
    },
];

/// A short content hash of every asset together: pages link `?v=<hash>` so a new build is
/// fetched at once while unchanged assets stay cached for a year.
fn assets_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for a in ASSETS {
            hash.update(a.body.as_bytes());
        }
        hash.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

/// An embedded asset. Only a request naming this build's version (`?v=`, as the pages link
/// them) may be cached for good: during a rolling deployment a page from one build can reach a
/// replica of another, whose answer must not be kept under the other build's URL.
async fn asset(Path(file): Path<String>, RawQuery(query): RawQuery) -> Response {
    let current = query.as_deref() == Some(&format!("v={}", assets_version()));
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CACHE_CONTROL, cache),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            a.body,
        )
            .into_response(),
        None => mcpgw_core::serve::not_found().await.into_response(),
    }
}

// ---- pages ----------------------------------------------------------------------------------

fn redirect(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, to.to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

/// Headers every console HTML answer carries.
fn html_response(console: &Console, status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(csp) = HeaderValue::from_str(&console.csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

fn head(title: &str) -> String {
    let v = assets_version();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · mcpgw</title><link rel=\"icon\" href=\"data:,\">\
         <link rel=\"stylesheet\" href=\"/console/assets/app.css?v={v}\">\
         <script src=\"/console/assets/theme.js?v={v}\"></script>",
        escape_html(title)
    )
}

/// A page without the console around it (sign-in problems).
fn message_page(console: &Console, status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "{}</head><body class=\"plain\"><main id=\"main\"><h1>{}</h1><p role=\"alert\">{}</p>\
         <p><a href=\"/console/login\">Sign in again</a></p></main></body></html>",
        head(title),
        escape_html(title),
        escape_html(message)
    );
    html_response(console, status, body)
}

/// The console's navigation: (path, label, permission that shows it).
const NAV: &[(&str, &str, Option<Permission>)] = &[
    ("/console/", "Dashboard", None),
    ("/console/search", "Search", None),
    ("/console/audit", "Audit log", Some(Permission::AuditRead)),
    ("/console/tokens", "Tokens", None),
    (
        "/console/policies",
        "Policies",
        Some(Permission::PoliciesRead),
    ),
    (
        "/console/register",
        "Register server",
        Some(Permission::ServersCreate),
    ),
];

/// Whether the principal holds `p` anywhere (on every server or on some).
fn holds(principal: &Principal, p: Permission) -> bool {
    principal.permissions.contains(&p) || principal.scoped.contains_key(&p)
}

/// Whether `path` is one of the console's pages (anything else is answered 404, with the same
/// shell, whose script says so).
fn is_page(path: &str) -> bool {
    let path = path
        .strip_suffix('/')
        .filter(|p| *p != "/console")
        .unwrap_or(path);
    match path.strip_prefix("/console/servers/") {
        Some(rest) => {
            let name = rest.strip_suffix("/edit").unwrap_or(rest);
            !name.is_empty() && !name.contains('/')
        }
        None => matches!(
            path,
            "/console/"
                | "/console/search"
                | "/console/audit"
                | "/console/tokens"
                | "/console/policies"
                | "/console/register"
        ),
    }
}

/// `GET /console/…`: the shell of every page (navigation, identity, settings for the script);
/// the script draws the page from the API. Without a session: to the sign-in.
async fn page(State(state): State<AppState>, parts: Parts) -> Response {
    let console = &state.console;
    let path = parts.uri.path();
    if !console.config.enabled {
        return mcpgw_core::serve::not_found().await.into_response();
    }
    if !console.config.sign_in_configured() {
        return message_page(
            console,
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is not configured",
            "This registry does not know its auth-server: set console.auth_server_url \
             (MCPGW_REGISTRY_CONSOLE__AUTH_SERVER_URL) and trust that auth-server in [[auth.issuers]].",
        );
    }
    let Some(session) = console.sessions.read(&parts.headers) else {
        return to_login(path, parts.uri.query());
    };
    let principal = match state
        .auth
        .identify_request(&parts.method, &parts.headers)
        .await
    {
        Ok(Some(p)) => p,
        // The token was revoked or its issuer no longer trusted: sign in afresh.
        Ok(None) | Err(RegistryError::InvalidToken(_)) => {
            return to_login(path, parts.uri.query());
        }
        Err(e) => return e.into_response(),
    };
    let nav: String = NAV
        .iter()
        .filter(|(_, _, needs)| needs.is_none_or(|p| holds(&principal, p)))
        .map(|(href, label, _)| {
            let current = if *href == path
                || (*href != "/console/" && path.starts_with(href))
                || (*href == "/console/" && path.starts_with("/console/servers/"))
            {
                " aria-current=\"page\""
            } else {
                ""
            };
            format!("<li><a href=\"{href}\"{current}>{label}</a></li>")
        })
        .collect();
    let permissions: Vec<&str> = Permission::ALL
        .iter()
        .filter(|p| holds(&principal, **p))
        .map(|p| p.as_str())
        .collect();
    let v = assets_version();
    let body = format!(
        "{head}<meta name=\"mcpgw-csrf\" content=\"{csrf}\">\
         <meta name=\"mcpgw-gateway-url\" content=\"{gateway}\">\
         <meta name=\"mcpgw-permissions\" content=\"{permissions}\">\
         <script type=\"module\" src=\"/console/assets/app.js?v={v}\"></script></head>\
         <body><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header class=\"top\"><a class=\"brand\" href=\"/console/\">mcpgw</a>\
         <nav aria-label=\"Main\"><ul>{nav}</ul></nav>\
         <div class=\"me\"><span class=\"who\" title=\"{subject}\">{user}</span>\
         <button type=\"button\" id=\"theme-toggle\" aria-pressed=\"false\">Toggle theme</button>\
         <form method=\"post\" action=\"/console/logout\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <button type=\"submit\">Sign out</button></form></div></header>\
         <main id=\"main\" tabindex=\"-1\"><h1>Loading…</h1><p class=\"muted\">This console needs JavaScript.</p></main></body></html>",
        head = head("Console"),
        csrf = escape_html(&session.csrf),
        gateway = escape_html(&state.config.gateway_public_url),
        permissions = escape_html(&permissions.join(" ")),
        subject = escape_html(&principal.subject),
        user = escape_html(&principal.display_name),
    );
    let status = if is_page(path) {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    html_response(console, status, body)
}

fn to_login(path: &str, query: Option<&str>) -> Response {
    let back = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let back: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
    redirect(&format!("/console/login?return_to={back}"))
}

/// Only a console page may be returned to (never another site).
fn safe_return_to(text: Option<&str>) -> String {
    match text {
        Some(t)
            if t.starts_with("/console/")
                && !t.starts_with("/console/login")
                && !t.starts_with("/console/callback")
                && t.len() <= 2048
                && !t.contains(['\\', '\r', '\n']) =>
        {
            t.to_owned()
        }
        _ => "/console/".to_owned(),
    }
}

/// `GET /console/login`: a new sign-in, sealed in the login cookie, then the auth-server.
async fn login(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let console = &state.console;
    if !console.config.sign_in_configured() {
        return message_page(
            console,
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is not configured",
            "Set console.auth_server_url (MCPGW_REGISTRY_CONSOLE__AUTH_SERVER_URL).",
        );
    }
    let return_to = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned());
    let login = PendingLogin {
        state: mcpgw_core::web::random_token(),
        verifier: mcpgw_core::web::random_token(),
        return_to: safe_return_to(return_to.as_deref()),
        started_at: chrono::Utc::now().timestamp(),
    };
    let mut to = match url::Url::parse(&format!(
        "{}/oauth/authorize",
        console.config.auth_server_url.trim_end_matches('/')
    )) {
        Ok(u) => u,
        Err(_) => {
            return message_page(
                console,
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is not configured",
                "console.auth_server_url is not a URL.",
            );
        }
    };
    to.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &console.config.client_id)
        .append_pair("redirect_uri", &console.redirect_uri())
        .append_pair(
            "code_challenge",
            &mcpgw_core::web::pkce_s256(&login.verifier),
        )
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", &login.state);
    let mut response = redirect(to.as_str());
    response.headers_mut().append(
        header::SET_COOKIE,
        console.sessions.login_set_cookie(&login),
    );
    response
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
}

/// `GET /console/callback`: checks `state` against the login cookie (then clears it), exchanges
/// the code with the PKCE verifier, validates the token, and starts the session.
async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let console = &state.console;
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let fail = |status: StatusCode, message: &str| {
        let mut r = message_page(console, status, "Sign-in failed", message);
        r.headers_mut().append(
            header::SET_COOKIE,
            console.sessions.clear(console.sessions.login_cookie()),
        );
        r
    };
    let Some(login) = console.sessions.read_login(&headers) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "This sign-in was not started here or took longer than 10 minutes. Start again.",
        );
    };
    let sent_state = params.get("state").map(String::as_str).unwrap_or_default();
    if !mcpgw_core::web::secret_matches(sent_state, &login.state) {
        return fail(
            StatusCode::BAD_REQUEST,
            "The sign-in answer does not belong to this browser's sign-in (state differs). Start again.",
        );
    }
    if let Some(error) = params.get("error") {
        let description = params.get("error_description").cloned().unwrap_or_default();
        return fail(
            StatusCode::BAD_REQUEST,
            &format!("The auth-server refused the sign-in: {error} {description}"),
        );
    }
    if let Some(iss) = params.get("iss")
        && iss.trim_end_matches('/') != console.config.auth_server_url.trim_end_matches('/')
    {
        return fail(
            StatusCode::BAD_REQUEST,
            "The sign-in answer names another issuer than this console's auth-server.",
        );
    }
    let Some(code) = params.get("code") else {
        return fail(StatusCode::BAD_REQUEST, "The sign-in answer has no code.");
    };
    let exchange = console
        .http
        .post(console.backend("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", &console.redirect_uri()),
            ("client_id", &console.config.client_id),
            ("code_verifier", &login.verifier),
        ])
        .send()
        .await;
    let answer = match exchange {
        Ok(r) if r.status().is_success() => r.json::<TokenAnswer>().await.ok(),
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            tracing::warn!(%status, answer = %text.chars().take(300).collect::<String>(), "console sign-in: the code exchange was refused");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in: the auth-server is unreachable");
            return fail(
                StatusCode::BAD_GATEWAY,
                "The auth-server could not be reached to finish the sign-in. Try again in a moment.",
            );
        }
    };
    let Some(answer) = answer else {
        return fail(
            StatusCode::BAD_GATEWAY,
            "The auth-server refused to exchange the sign-in code. Start again.",
        );
    };
    let Some(validator) = &console.validator else {
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "The registry trusts no token issuer ([[auth.issuers]] is empty).",
        );
    };
    let token = match validator.validate(&answer.access_token).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in: the auth-server's token was refused");
            return fail(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "The token from the auth-server was refused: {e}. Check [[auth.issuers]] (issuer and audience)."
                ),
            );
        }
    };
    if token.client_id.as_deref() != Some(console.config.client_id.as_str()) {
        return fail(
            StatusCode::BAD_GATEWAY,
            "The token from the auth-server was issued to another client.",
        );
    }
    let session = Session {
        token: answer.access_token,
        csrf: mcpgw_core::web::random_token(),
        token_id: token.token_id.clone(),
        expires_at: token.expires_at,
    };
    tracing::info!(
        subject = %token.subject,
        user = token.username.as_deref().unwrap_or(""),
        "console sign-in"
    );
    let mut response = redirect(&login.return_to);
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        console.sessions.session_set_cookie(&session),
    );
    h.append(
        header::SET_COOKIE,
        console.sessions.clear(console.sessions.login_cookie()),
    );
    response
}

/// `POST /console/logout` (form field `csrf_token`): revokes the console token at the
/// auth-server, clears the cookie, and continues to the auth-server's own sign-out.
async fn logout(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let console = &state.console;
    let Some(session) = console.sessions.read(&headers) else {
        return redirect("/console/");
    };
    let sent = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "csrf_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !mcpgw_core::web::secret_matches(&sent, &session.csrf) {
        return RegistryError::CsrfRejected(
            "signing out needs the page's CSRF token; reload the page and sign out again".into(),
        )
        .into_response();
    }
    if let Some(jti) = &session.token_id {
        let revoked = console
            .http
            .delete(console.backend(&format!("/api/v1/tokens/{jti}")))
            .bearer_auth(&session.token)
            .send()
            .await;
        if let Err(e) = revoked.as_ref().map(|r| r.error_for_status_ref()) {
            // The cookie is cleared anyway; the token expires on its own.
            tracing::warn!(error = %e, "console sign-out: the token could not be revoked");
        }
    }
    // Revoking the sign-in token ended the auth-server's session too (a local one; one of an
    // OIDC provider is confirmed there and ended at the provider); `/logout` then sends the
    // browser straight back to the console's signed-out page.
    let back = format!(
        "{}/console/signed-out",
        console.config.public_url.trim_end_matches('/')
    );
    let mut response = redirect(&format!(
        "{}/logout?return_to={}",
        console.config.auth_server_url.trim_end_matches('/'),
        url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()
    ));
    response.headers_mut().append(
        header::SET_COOKIE,
        console.sessions.clear(console.sessions.session_cookie()),
    );
    response
}

/// `GET /console/signed-out`: where signing out ends, with the way back in.
async fn signed_out(State(state): State<AppState>) -> Response {
    message_page(
        &state.console,
        StatusCode::OK,
        "Signed out",
        "You are signed out of the console and the auth-server.",
    )
}

// ---- the tokens page's API ------------------------------------------------------------------

/// The console session of a request to `/console/api/…`, CSRF-checked for changes.
struct ConsoleUser(Session);

impl FromRequestParts<AppState> for ConsoleUser {
    type Rejection = RegistryError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(session) = state.console.sessions.read(&parts.headers) else {
            return Err(RegistryError::Unauthenticated(
                "sign in to the console first (/console/login)".to_owned(),
            ));
        };
        state
            .console
            .sessions
            .check_change(&parts.method, &parts.headers, &session)?;
        Ok(ConsoleUser(session))
    }
}

/// Largest auth-server answer passed through.
const MAX_RELAYED_BYTES: usize = 1 << 20;

/// Calls the auth-server's token API as the signed-in user and relays its answer (status and
/// JSON body; the envelope is the same on both services).
async fn relay(
    state: &AppState,
    session: &Session,
    method: Method,
    path: &str,
    body: Option<Bytes>,
) -> Response {
    let console = &state.console;
    let mut request = console
        .http
        .request(method, console.backend(path))
        .bearer_auth(&session.token);
    if let Some(body) = body {
        request = request
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
    }
    let answer = match request.send().await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "console: the auth-server is unreachable");
            return RegistryError::Upstream(
                "the auth-server could not be reached; try again in a moment".to_owned(),
            )
            .into_response();
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let retry_after = answer.headers().get(header::RETRY_AFTER).cloned();
    let bytes = match answer.bytes().await {
        Ok(b) if b.len() <= MAX_RELAYED_BYTES => b,
        _ => {
            return RegistryError::Upstream("the auth-server's answer could not be read".into())
                .into_response();
        }
    };
    let mut response = (status, bytes).into_response();
    let h = response.headers_mut();
    if status != StatusCode::NO_CONTENT {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(r) = retry_after {
        h.insert(header::RETRY_AFTER, r);
    }
    response
}

async fn list_tokens(State(state): State<AppState>, ConsoleUser(s): ConsoleUser) -> Response {
    relay(&state, &s, Method::GET, "/api/v1/tokens", None).await
}

/// The auth-server's `/api/v1/me`, plus `grantable_scopes`: those of the user's scopes that a
/// scope document of this registry is named after. The Tokens page offers only these: the
/// auth-server lets a user mint any scope their groups hold, but a scope no document grants
/// opens nothing at the gateway (`make run` offered `mcp-servers-unrestricted/read` that way).
async fn identity(State(state): State<AppState>, ConsoleUser(s): ConsoleUser) -> Response {
    let answer = relay(&state, &s, Method::GET, "/api/v1/me", None).await;
    if answer.status() != StatusCode::OK {
        return answer;
    }
    let (mut parts, body) = answer.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_RELAYED_BYTES).await else {
        return RegistryError::Upstream("the auth-server's answer could not be read".into())
            .into_response();
    };
    let Ok(serde_json::Value::Object(mut me)) = serde_json::from_slice(&bytes) else {
        return RegistryError::Upstream("the auth-server's answer was not a JSON object".into())
            .into_response();
    };
    let policy = match state.registry.store.policy().await {
        Ok(p) => p,
        Err(e) => return RegistryError::from(e).into_response(),
    };
    let grantable: Vec<serde_json::Value> = me
        .get("scopes")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter(|s| {
            s.as_str()
                .is_some_and(|s| policy.documents.iter().any(|d| d.name() == s))
        })
        .cloned()
        .collect();
    me.insert("grantable_scopes".to_owned(), grantable.into());
    parts.headers.remove(header::CONTENT_LENGTH);
    (parts, axum::Json(me)).into_response()
}

async fn mint_token(
    State(state): State<AppState>,
    ConsoleUser(s): ConsoleUser,
    body: Bytes,
) -> Response {
    if body.len() > 16 * 1024 {
        return mcpgw_core::input::InputError::PayloadTooLarge(16 * 1024).into_response();
    }
    relay(&state, &s, Method::POST, "/api/v1/tokens", Some(body)).await
}

async fn revoke_token(
    State(state): State<AppState>,
    ConsoleUser(s): ConsoleUser,
    Path(jti): Path<String>,
) -> Response {
    // Token ids are UUIDs; anything else would let the path reach other auth-server routes.
    if uuid::Uuid::parse_str(&jti).is_err() {
        return RegistryError::Invalid(mcpgw_core::validate::FieldError::new(
            "jti",
            "must be a token id (a UUID) from your token list",
        ))
        .into_response();
    }
    relay(
        &state,
        &s,
        Method::DELETE,
        &format!("/api/v1/tokens/{jti}"),
        None,
    )
    .await
}
