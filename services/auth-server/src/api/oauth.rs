//! `GET /oauth/authorize` and `POST /oauth/token`: the authorization code flow with PKCE for
//! configured clients (`oauth.clients`) and dynamically registered ones (`/oauth/register`).
//! The protocol rules are in `crate::oauth`.
//!
//! Rules of the authorization endpoint:
//! - Until `client_id` and `redirect_uri` are known good (a registered client, a URI registered
//!   for it, compared exactly), every error is a 400 page and never a redirect: an open
//!   redirector would otherwise send the browser anywhere. Unknown or repeated parameters are
//!   refused the same way (they are read before the client is known).
//! - `state` is required of configured clients. A registered client may leave it out and rely
//!   on PKCE against CSRF (RFC 9700 §2.1; PKCE S256 is required of every client here): the
//!   TypeScript MCP SDK sends none. Without it, the response carries none.
//! - After that, errors go back to the client: `redirect_uri?error=…&error_description=…
//!   &state=…&iss=<public url>` (RFC 6749 §4.1.2.1, RFC 9207).
//! - Every parameter is checked before the session, so a bad request fails before a login.
//! - Without a session the browser goes to `/login?return_to=<this request>` and comes back
//!   after signing in (local or OIDC). With one, a configured client gets a code at once (it
//!   is first party). A registered client (anyone may register one) gets a page naming it,
//!   the host the browser will be sent to and the user: `POST /oauth/authorize` with the
//!   session's CSRF token and the same query checks everything again and issues the code, or
//!   sends `access_denied`. Allowing is remembered per (user, client): the page is skipped
//!   while the user's scopes and the `resource` are the ones allowed (`/api/v1/oauth/consents`
//!   lists and revokes them). The page's `form-action` names that one redirect origin (browsers
//!   apply it to the redirect after the form).
//! - `resource` (RFC 8707) is optional; when given it must be one of the gateway's MCP
//!   endpoints (`<resource.url>/mcp`, `<resource.url>/<server>/mcp`), else `invalid_target`.
//! - `scope` is optional and checked only for syntax: the token is the user (groups and
//!   scopes), so a narrower scope would narrow nothing; the token response says which scopes
//!   the token carries (RFC 6749 §3.3).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpgw_core::input::Params;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Ctx, session_of};
use super::login::{
    MAX_FORM_BYTES, MAX_RETURN_TO, bad_request_page, escape, page, parse_form, redirect,
};
use crate::app::AppState;
use crate::oauth::{
    AuthorizationCode, Client, ExchangeError, MAX_STATE_BYTES, OAuthError, PKCE_METHOD,
    TokenRequest, exchange, find_client, is_pkce_value,
};
use crate::scope::Scope;
use crate::session::csrf_matches;
use crate::tokens::Principal;

const AUTHORIZE_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "code_challenge",
    "code_challenge_method",
    "state",
    "scope",
    "resource",
];

const TOKEN_FIELDS: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "code_verifier",
    "resource",
    "refresh_token",
    "scope",
];

const REVOKE_FIELDS: &[&str] = &["token", "token_type_hint", "client_id"];

/// The client's redirect URI with the authorization response parameters added.
fn back_to_client(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    // The URI is one the config validated as absolute, so it parses.
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return bad_request_page("the registered redirect_uri does not parse");
    };
    url.query_pairs_mut().extend_pairs(pairs);
    redirect(url.as_str())
}

/// The checked parameters of an authorization request.
struct Authorization<'a> {
    client: &'a Client,
    redirect_uri: &'a str,
    code_challenge: &'a str,
    /// Required of configured clients; a registered one may rely on PKCE alone.
    state: Option<&'a str>,
    /// The gateway resource the token is for (RFC 8707), checked.
    resource: Option<&'a str>,
}

/// Checks the parameters after the client and redirect URI are known: an RFC 6749 error to
/// send back to the client otherwise (with `state` when it is usable).
fn check_request<'a>(
    client: &'a Client,
    redirect_uri: &'a str,
    params: &'a Params,
    query: &str,
    resource_base: &str,
) -> Result<Authorization<'a>, (OAuthError, Option<&'a str>)> {
    let usable_state = params.text("state").filter(|s| s.len() <= MAX_STATE_BYTES);
    let fail = |error, description: &str| Err((OAuthError::new(error, description), usable_state));
    let state = params.text("state");
    if state.is_none() && client.registered.is_none() {
        return fail(
            "invalid_request",
            "state is required: send an unguessable value and compare it when the browser comes back",
        );
    }
    if state.is_some_and(|s| s.len() > MAX_STATE_BYTES) {
        return fail("invalid_request", "state must be at most 512 bytes");
    }
    match params.text("response_type") {
        None => return fail("invalid_request", "response_type is required (code)"),
        Some("code") => {}
        Some(_) => {
            return fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            );
        }
    }
    let Some(code_challenge) = params.text("code_challenge") else {
        return fail(
            "invalid_request",
            "code_challenge is required (PKCE, RFC 7636): BASE64URL(SHA256(code_verifier))",
        );
    };
    if !is_pkce_value(code_challenge) {
        return fail(
            "invalid_request",
            "code_challenge must be 43-128 characters of A-Z a-z 0-9 - . _ ~",
        );
    }
    if params.text("code_challenge_method") != Some(PKCE_METHOD) {
        return fail(
            "invalid_request",
            "code_challenge_method must be S256 (plain is not accepted)",
        );
    }
    if let Some(scope) = params.text("scope")
        && let Some(bad) = scope.split(' ').find(|s| Scope::parse(s).is_err())
    {
        return fail(
            "invalid_scope",
            &format!("{bad:?} is not a scope: scopes are separated by single spaces"),
        );
    }
    let resource = params.text("resource");
    if let Some(r) = resource
        && !crate::oauth::is_gateway_resource(resource_base, r)
    {
        return fail(
            "invalid_target",
            &format!(
                "resource must be one of the gateway's MCP endpoints: {resource_base}/mcp or {resource_base}/<server>/mcp"
            ),
        );
    }
    // The request comes back here through the login page's return_to.
    if query.len() + "/oauth/authorize?".len() > MAX_RETURN_TO {
        return fail(
            "invalid_request",
            "the request is too long to survive the sign-in: use a shorter state",
        );
    }
    Ok(Authorization {
        client,
        redirect_uri,
        code_challenge,
        state,
        resource,
    })
}

/// Start of the authorization code flow (browser). Redirects to the login page without a
/// session, then back to the client's `redirect_uri` with `code`, `state` and `iss`.
#[utoipa::path(get, path = "/oauth/authorize", tag = "oauth",
    params(
        ("response_type" = String, Query, description = "code"),
        ("client_id" = String, Query, description = "A client of oauth.clients"),
        ("redirect_uri" = String, Query, description = "One of the client's redirect_uris, exactly"),
        ("code_challenge" = String, Query, description = "BASE64URL(SHA256(code_verifier)), 43-128 characters"),
        ("code_challenge_method" = String, Query, description = "S256"),
        ("state" = Option<String>, Query, description = "Up to 512 bytes, returned unchanged; required of configured clients (oauth.clients), optional for registered ones (PKCE protects them)"),
        ("scope" = Option<String>, Query, description = "Checked for syntax only; the token carries the user's scopes"),
        ("resource" = Option<String>, Query, description = "RFC 8707: the gateway endpoint the token is for, <gateway>/mcp or <gateway>/<server>/mcp; becomes the token's only aud")),
    responses(
        (status = 303, description = "To /login?return_to=… without a session; else to redirect_uri with code, state, iss (or error, error_description, state, iss)"),
        (status = 400, description = "HTML page: a malformed query, an unknown client_id or an unregistered redirect_uri (never a redirect)")))]
pub async fn authorize(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    authorize_with(&state, query.unwrap_or_default(), &headers, None).await
}

/// The user's answer on the page of a registered client.
struct Decision {
    csrf_token: String,
    allow: bool,
}

/// The form of the page a registered client's authorization shows.
#[derive(Deserialize, ToSchema)]
#[expect(
    dead_code,
    reason = "only describes the form in the OpenAPI document; the handler parses the form itself"
)]
pub struct DecisionForm {
    /// The query of the `GET /oauth/authorize` request the page answered, unchanged.
    request: String,
    /// The session's CSRF token.
    csrf_token: String,
    /// `allow` or `deny`.
    decision: String,
}

/// The user's answer to the page a dynamically registered client's authorization shows:
/// every check of the GET runs again on `request`, then the code (`allow`) or `access_denied`
/// (`deny`) goes to the client.
#[utoipa::path(post, path = "/oauth/authorize", tag = "oauth",
    request_body(content = DecisionForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To redirect_uri with code, state, iss (or error=access_denied), or to /login without a session"),
        (status = 400, description = "HTML page: a malformed form or request"),
        (status = 403, description = "csrf_failed: the form's csrf_token is not the session's")))]
pub async fn authorize_decision(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut form = match parse_form(&headers, &body, &["request", "csrf_token", "decision"]) {
        Ok(f) => f,
        Err(m) => return bad_request_page(&m),
    };
    let decision = Decision {
        csrf_token: form.remove("csrf_token").unwrap_or_default(),
        allow: form.remove("decision").as_deref() == Some("allow"),
    };
    let query = form.remove("request").unwrap_or_default();
    authorize_with(&state, query, &headers, Some(decision)).await
}

/// Both methods of the authorization endpoint: every check, then the login redirect, the
/// page of a registered client, or the code.
async fn authorize_with(
    state: &AppState,
    query: String,
    headers: &HeaderMap,
    decision: Option<Decision>,
) -> Response {
    let params = match Params::parse(Some(&query), AUTHORIZE_PARAMS) {
        Ok(p) => p,
        Err(e) => return bad_request_page(&e.to_string()),
    };
    let Some(client_id) = params.text("client_id") else {
        return bad_request_page("client_id is required");
    };
    let client = match find_client(state, client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return bad_request_page(&format!(
                "client_id {client_id:?} is not a registered client of this server (configure it in oauth.clients, or register it at /oauth/register)"
            ));
        }
        Err(e) => return e.into_response(),
    };
    let Some(redirect_uri) = params.text("redirect_uri") else {
        return bad_request_page("redirect_uri is required");
    };
    if !client.allows_redirect(redirect_uri) {
        return bad_request_page(&format!(
            "redirect_uri {redirect_uri:?} is not registered for client {client_id:?}; it must equal one of its redirect_uris exactly (a loopback http URI may differ in its port only)"
        ));
    }
    let iss = state.public_url.to_string();
    let base = state.config.resource_base();
    let request = match check_request(&client, redirect_uri, &params, &query, base) {
        Ok(r) => r,
        Err((e, usable_state)) => return authorization_error(redirect_uri, &e, usable_state, &iss),
    };
    let session = match session_of(state, headers).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            let here = format!("/oauth/authorize?{query}");
            let to: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
            return redirect(&format!("/login?return_to={to}"));
        }
        Err(e) => return e.into_response(),
    };
    if client.registered.is_some() {
        let consent = crate::oauth::consent_for(&client.id, &session.record, request.resource);
        let remembered = match decision {
            Some(_) => false,
            None => match state.store.get_consent(&consent.subject, &client.id).await {
                Ok(stored) => stored
                    .is_some_and(|c| c.scopes == consent.scopes && c.resource == consent.resource),
                Err(e) => return crate::error::AuthError::from(e).into_response(),
            },
        };
        match decision {
            None if remembered => {}
            None => {
                return confirmation_page(
                    &client,
                    redirect_uri,
                    request.resource,
                    &session.record,
                    &query,
                );
            }
            Some(d) if !csrf_matches(&d.csrf_token, &session.record.csrf_token) => {
                return crate::error::AuthError::CsrfFailed.into_response();
            }
            Some(d) if !d.allow => {
                let denied = OAuthError::new("access_denied", "the user did not allow the sign-in");
                return authorization_error(redirect_uri, &denied, request.state, &iss);
            }
            Some(_) => {
                let audit = crate::store::AuditRecord::new(
                    &consent.subject,
                    None,
                    "oauth_consent.grant",
                    "oauth_client",
                    &client.id,
                    serde_json::json!({"scopes": consent.scopes, "resource": consent.resource}),
                );
                if let Err(e) = state.store.put_consent(&consent, &audit).await {
                    return crate::error::AuthError::from(e).into_response();
                }
            }
        }
    }
    let mut code = AuthorizationCode::new(
        &request.client.id,
        request.redirect_uri,
        request.code_challenge,
        &Principal::from(&session.record),
        Some(crate::session::hash_id(&session.id)),
    );
    code.resource = request.resource.map(str::to_owned);
    state
        .auth_metrics
        .oauth_codes
        .with_label_values(&["issued"])
        .inc();
    let sealed = code.seal(&state.keyring);
    let mut pairs = vec![("code", sealed.as_str())];
    pairs.extend(request.state.map(|s| ("state", s)));
    pairs.push(("iss", iss.as_str()));
    back_to_client(request.redirect_uri, &pairs)
}

/// The origin a sign-in that returns to `return_to` may end at, when `return_to` is the
/// authorization request of a dynamically registered client: its `redirect_uri`'s origin
/// (`scheme:` for a custom scheme). The login form's `form-action` must name it, because a
/// client the user already allowed is sent straight on after the login form (`POST /login` →
/// `/oauth/authorize` → the client), and browsers apply `form-action` to that whole chain.
/// The request is not checked here: naming an origin in `form-action` lets our own form go
/// nowhere new (its action is `/login`), and `/oauth/authorize` refuses a redirect URI the
/// client did not register, before any redirect.
pub(super) fn sign_in_destination(return_to: &str) -> Option<String> {
    let query = return_to.strip_prefix("/oauth/authorize?")?;
    let mut client_id = None;
    let mut redirect_uri = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "client_id" => client_id = Some(v),
            "redirect_uri" => redirect_uri = Some(v),
            _ => {}
        }
    }
    if !client_id?.starts_with(crate::registration::CLIENT_ID_PREFIX) {
        return None;
    }
    let url = url::Url::parse(&redirect_uri?).ok()?;
    Some(match url.origin() {
        url::Origin::Tuple(..) => url.origin().ascii_serialization(),
        url::Origin::Opaque(_) => format!("{}:", url.scheme()),
    })
}

/// `csp` (a page policy) with `origin` added to its `form-action`.
pub(super) fn with_form_action(csp: &HeaderValue, origin: &str) -> HeaderValue {
    let text = csp.to_str().unwrap_or_default();
    HeaderValue::from_str(&text.replacen(
        "form-action 'self'",
        &format!("form-action 'self' {origin}"),
        1,
    ))
    .unwrap_or_else(|_| csp.clone())
}

/// An RFC 6749 §4.1.2.1 error, sent back to the client's redirect URI.
fn authorization_error(
    redirect_uri: &str,
    e: &OAuthError,
    state: Option<&str>,
    iss: &str,
) -> Response {
    let mut pairs = vec![
        ("error", e.error),
        ("error_description", e.description.as_str()),
    ];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", iss));
    back_to_client(redirect_uri, &pairs)
}

/// The page a registered client's authorization shows: who asks, where the browser goes, as
/// whom. Its `form-action` allows the one redirect origin, or the browser would stop there.
fn confirmation_page(
    client: &Client,
    redirect_uri: &str,
    resource: Option<&str>,
    session: &crate::store::SessionRecord,
    query: &str,
) -> Response {
    let target = url::Url::parse(redirect_uri).ok();
    let host = target
        .as_ref()
        .map(|u| {
            u.host_str()
                .map_or_else(|| u.scheme().to_owned(), str::to_owned)
        })
        .unwrap_or_default();
    let mut response = page(
        StatusCode::OK,
        "Allow sign-in",
        &format!(
            "<p><strong>{}</strong> (an application registered at this server, client id <code>{}</code>) \
             asks to act as <strong>{}</strong> with your scopes ({}) at <strong>{}</strong>.</p>\
             <p>After you allow it, the browser goes to <strong>{}</strong>. Allow it only if you \
             started this sign-in.</p>\
             <form method=\"post\" action=\"/oauth/authorize\" class=\"stack\">\
             <input type=\"hidden\" name=\"request\" value=\"{}\">\
             <input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\
             <div class=\"actions\"><button type=\"submit\" name=\"decision\" value=\"allow\" class=\"primary\">Allow</button>\
             <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></div></form>",
            escape(client.display_name()),
            escape(&client.id),
            escape(&session.username),
            escape(&if session.scopes.is_empty() {
                "none".to_owned()
            } else {
                session.scopes.join(", ")
            }),
            escape(resource.unwrap_or("every MCP server of the gateway")),
            escape(&host),
            escape(query),
            escape(&session.csrf_token),
        ),
    );
    let origin = target
        .map(|u| match u.origin() {
            url::Origin::Tuple(..) => u.origin().ascii_serialization(),
            // A custom scheme has no origin: name the scheme.
            url::Origin::Opaque(_) => format!("{}:", u.scheme()),
        })
        .unwrap_or_default();
    let h = response.headers_mut();
    if let Some(csp) = h.get(header::CONTENT_SECURITY_POLICY).cloned() {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            with_form_action(&csp, &origin),
        );
    }
    response
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// An ES256 JWT (`typ: at+jwt`) with `aud` = [the client's audience, this issuer].
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    pub expires_in: u64,
    /// The scopes the token carries (the user's), space-separated.
    pub scope: String,
    /// Registered clients only: use once with `grant_type=refresh_token`; each refresh returns
    /// a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// An error of the token endpoint (RFC 6749 §5.2).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant` or `unsupported_grant_type`.
    pub error: String,
    pub error_description: String,
}

/// The form of a token request (`application/x-www-form-urlencoded`, at most 8 KiB).
#[derive(Deserialize, ToSchema)]
#[expect(
    dead_code,
    reason = "only describes the form in the OpenAPI document; the handler parses the form itself"
)]
pub struct TokenForm {
    /// `authorization_code`, or `refresh_token`.
    grant_type: String,
    /// `authorization_code` only.
    code: Option<String>,
    /// `authorization_code` only.
    redirect_uri: Option<String>,
    client_id: String,
    /// `authorization_code` only: 43-128 characters; BASE64URL(SHA256(it)) must equal the
    /// request's code_challenge.
    code_verifier: Option<String>,
    /// Optional (RFC 8707); if given, the authorization request's `resource`.
    resource: Option<String>,
    /// `refresh_token` only: the refresh token of the last response.
    refresh_token: Option<String>,
    /// Accepted and ignored: the token is the user, with the scopes of the sign-in.
    scope: Option<String>,
}

fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn oauth_error(e: OAuthError) -> Response {
    let status = if e.error == "invalid_client" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    no_store(
        (
            status,
            Json(OAuthErrorBody {
                error: e.error.to_owned(),
                error_description: e.description,
            }),
        )
            .into_response(),
    )
}

/// The fields of a token request: a form of at most [`MAX_FORM_BYTES`], each known field at
/// most once, nothing else.
fn read_token_request(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<TokenRequest, OAuthError> {
    let body = body.map_err(|_| {
        OAuthError::new(
            "invalid_request",
            format!("the body could not be read; send a form of at most {MAX_FORM_BYTES} bytes"),
        )
    })?;
    let mut form = parse_form(headers, &body, TOKEN_FIELDS)
        .map_err(|m| OAuthError::new("invalid_request", m))?;
    Ok(TokenRequest {
        grant_type: form.remove("grant_type"),
        code: form.remove("code"),
        redirect_uri: form.remove("redirect_uri"),
        client_id: form.remove("client_id"),
        code_verifier: form.remove("code_verifier"),
        resource: form.remove("resource"),
        refresh_token: form.remove("refresh_token"),
    })
}

/// Exchange an authorization code and its PKCE verifier, or a refresh token, for an access
/// token (and, for registered clients, a new refresh token).
#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = TokenResponse, description = "Cache-Control: no-store"),
        (status = 400, body = OAuthErrorBody, description = "invalid_request, invalid_grant (bad, expired or used code, redirect_uri or verifier mismatch; unknown, reused, expired or another client's refresh token, or another resource), invalid_target, unsupported_grant_type"),
        (status = 401, body = OAuthErrorBody, description = "invalid_client: client_id is not registered")))]
pub async fn token(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = match read_token_request(&headers, body) {
        Ok(request) => exchange(&state, &request, ctx.id())
            .await
            .map_err(|e| (e, request.client_id)),
        Err(e) => Err((ExchangeError::OAuth(e), None)),
    };
    match result {
        Ok(issued) => no_store(
            Json(TokenResponse {
                access_token: issued.access_token,
                token_type: "Bearer".to_owned(),
                expires_in: issued.expires_in,
                scope: issued.scope,
                refresh_token: issued.refresh_token,
            })
            .into_response(),
        ),
        Err((ExchangeError::OAuth(e), client_id)) => {
            state
                .auth_metrics
                .oauth_codes
                .with_label_values(&["refused"])
                .inc();
            tracing::info!(oauth.error = e.error, oauth.client_id = ?client_id, "token request refused: {}", e.description);
            oauth_error(e)
        }
        Err((ExchangeError::Server(e), _)) => no_store(e.into_response()),
    }
}

/// The form of a revocation request (RFC 7009, `application/x-www-form-urlencoded`).
#[derive(Deserialize, ToSchema)]
#[expect(
    dead_code,
    reason = "only describes the form in the OpenAPI document; the handler parses the form itself"
)]
pub struct RevokeForm {
    /// A refresh token (ends its sign-in) or an access token this server issued to the client.
    token: String,
    /// Accepted and ignored: the token's shape says what it is.
    token_type_hint: Option<String>,
    /// The public client revoking its own token.
    client_id: String,
}

/// Revoke a refresh token (ending the whole sign-in: every access token it issued is revoked
/// too) or an access token (RFC 7009). Unknown tokens and other clients' tokens are answered
/// the same `200`, so the endpoint tells nobody which tokens exist.
#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth",
    request_body(content = RevokeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "revoked, or nothing to revoke"),
        (status = 400, body = OAuthErrorBody, description = "invalid_request"),
        (status = 401, body = OAuthErrorBody, description = "invalid_client: client_id is not registered")))]
pub async fn revoke(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = match body {
        Ok(body) => parse_form(&headers, &body, REVOKE_FIELDS)
            .map_err(|m| OAuthError::new("invalid_request", m)),
        Err(_) => Err(OAuthError::new(
            "invalid_request",
            format!("the body could not be read; send a form of at most {MAX_FORM_BYTES} bytes"),
        )),
    };
    let mut form = match form {
        Ok(f) => f,
        Err(e) => return oauth_error(e),
    };
    let request = TokenRequest {
        client_id: form.remove("client_id"),
        ..TokenRequest::default()
    };
    let client = match crate::oauth::request_client(&state, &request).await {
        Ok(c) => c,
        Err(ExchangeError::OAuth(e)) => return oauth_error(e),
        Err(ExchangeError::Server(e)) => return no_store(e.into_response()),
    };
    let Some(token) = form.remove("token").filter(|t| !t.is_empty()) else {
        return oauth_error(OAuthError::new("invalid_request", "token is required"));
    };
    let done = if token.starts_with(crate::refresh::PREFIX) {
        crate::refresh::revoke(&state, &token, &client.id, ctx.id()).await
    } else {
        crate::tokens::revoke_own(&state, &token, &client.id, ctx.id()).await
    };
    match done {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => no_store(e.into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_form_names_the_redirect_origin_of_a_registered_clients_request_only() {
        let request = |client: &str, redirect: &str| {
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([("client_id", client), ("redirect_uri", redirect)])
                .finish();
            format!("/oauth/authorize?{q}")
        };
        assert_eq!(
            sign_in_destination(&request("dcr.1", "http://127.0.0.1:4567/cb")).as_deref(),
            Some("http://127.0.0.1:4567")
        );
        assert_eq!(
            sign_in_destination(&request("dcr.1", "com.example.app:/cb")).as_deref(),
            Some("com.example.app:")
        );
        // Configured clients' origins are in the policy already; other pages are not sign-ins.
        assert_eq!(
            sign_in_destination(&request("console", "https://c.example.com/cb")),
            None
        );
        assert_eq!(sign_in_destination("/api/v1/me"), None);
        let csp =
            HeaderValue::from_static("default-src 'none'; form-action 'self'; base-uri 'none'");
        assert_eq!(
            with_form_action(&csp, "http://127.0.0.1:1"),
            "default-src 'none'; form-action 'self' http://127.0.0.1:1; base-uri 'none'"
        );
    }
}
