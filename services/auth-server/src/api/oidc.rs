//! The browser side of OIDC login: `GET /login/oidc/{provider}` sends the browser to the
//! provider; `GET /callback` finishes the login and starts a session. See `crate::oidc` for
//! the protocol rules.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpgw_core::input::Params;

use super::extract::{ApiPath, Ctx};
use super::login::{bad_request_page, escape, page, redirect, safe_return_to};
use crate::app::AppState;
use crate::error::AuthError;
use crate::oidc::{LOGIN_TIMEOUT_SECONDS, OidcError, PendingLogin};
use crate::scope::scopes_for_groups;
use crate::session::{LoginIdentity, cookie_values, csrf_matches};

const PENDING_COOKIE_SECURE: &str = "__Host-mcpgw_oidc";
const PENDING_COOKIE_PLAIN: &str = "mcpgw_oidc";

fn pending_cookie_name(state: &AppState) -> &'static str {
    if state.config.session.cookie_secure {
        PENDING_COOKIE_SECURE
    } else {
        PENDING_COOKIE_PLAIN
    }
}

/// The cookie carrying a login in progress. `SameSite=Lax`: the provider's redirect back is a
/// top-level navigation from another site, which Lax cookies accompany.
fn pending_cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.config.session.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        pending_cookie_name(state)
    ))
    .expect("a base64url value makes a valid header")
}

fn redirect_uri(state: &AppState) -> String {
    format!("{}/callback", state.public_url)
}

fn failure_page(state: &AppState, provider: &str, e: &OidcError) -> Response {
    let status = match e {
        OidcError::UnknownProvider(_) => StatusCode::NOT_FOUND,
        OidcError::LoginState => StatusCode::BAD_REQUEST,
        OidcError::Denied(_) => StatusCode::UNAUTHORIZED,
        OidcError::Discovery(_)
        | OidcError::Configuration(_)
        | OidcError::Exchange(_)
        | OidcError::IdToken(_) => StatusCode::BAD_GATEWAY,
    };
    tracing::warn!(oidc.provider = %provider, error = %e, "OIDC sign-in failed");
    state
        .auth_metrics
        .logins
        .with_label_values(&["oidc", "failure"])
        .inc();
    page(
        status,
        "Sign-in failed",
        &format!(
            "<p class=\"status error\" data-kind=\"error\" id=\"error\" role=\"alert\">{}</p><p><a href=\"/login\">Back to sign-in</a></p>",
            escape(&e.to_string())
        ),
    )
}

/// `GET /login/oidc/{provider}`: redirects to the provider's authorization endpoint.
pub async fn start(
    State(state): State<AppState>,
    ApiPath(provider): ApiPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match Params::parse(query.as_deref(), &["return_to"]) {
        Ok(p) => p,
        Err(e) => return bad_request_page(&e.to_string()),
    };
    let return_to = match safe_return_to(&state, params.text("return_to")) {
        Ok(to) => to,
        Err(m) => return bad_request_page(&m),
    };
    match state
        .oidc
        .start(&provider, &redirect_uri(&state), return_to)
        .await
    {
        Ok((url, pending)) => {
            let mut r = redirect(&url);
            let value = pending.seal(&state.keyring);
            r.headers_mut().append(
                header::SET_COOKIE,
                pending_cookie(&state, &value, LOGIN_TIMEOUT_SECONDS),
            );
            r
        }
        Err(e) => failure_page(&state, &provider, &e),
    }
}

/// `GET /callback`: the provider sends the browser back with `code` and `state`.
pub async fn callback(
    State(state): State<AppState>,
    ctx: Ctx,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = match Params::parse(
        query.as_deref(),
        &[
            "code",
            "state",
            "iss",
            "session_state",
            "error",
            "error_description",
            "error_uri",
        ],
    ) {
        Ok(p) => p,
        Err(e) => return bad_request_page(&e.to_string()),
    };
    // The pending login is used once, whatever happens next.
    let clear = pending_cookie(&state, "", 0);
    let pending = cookie_values(&headers, pending_cookie_name(&state))
        .iter()
        .find_map(|c| PendingLogin::open(&state.keyring, c));
    let mut response = match pending {
        None => failure_page(&state, "unknown", &OidcError::LoginState),
        Some(pending) => finish(&state, &ctx, &params, &headers, pending).await,
    };
    response.headers_mut().append(header::SET_COOKIE, clear);
    response
}

async fn finish(
    state: &AppState,
    ctx: &Ctx,
    params: &Params,
    headers: &HeaderMap,
    pending: PendingLogin,
) -> Response {
    let provider = pending.provider.clone();
    if !csrf_matches(params.text("state").unwrap_or(""), &pending.state) {
        return failure_page(state, &provider, &OidcError::LoginState);
    }
    if let Some(error) = params.text("error") {
        let described = match params.text("error_description") {
            Some(d) => format!("{error}: {d}"),
            None => error.to_owned(),
        };
        let short: String = described.chars().take(200).collect();
        return failure_page(state, &provider, &OidcError::Denied(short));
    }
    let Some(code) = params.text("code") else {
        return bad_request_page("the provider sent neither a code nor an error");
    };
    let identity = match state
        .oidc
        .finish(&pending, &redirect_uri(state), code, params.text("iss"))
        .await
    {
        Ok(i) => i,
        Err(e) => return failure_page(state, &provider, &e),
    };
    let who = LoginIdentity {
        subject: identity.subject.clone(),
        username: identity.username.clone(),
        provider: provider.clone(),
        groups: identity.groups.clone(),
    };
    let scopes = scopes_for_groups(&state.config.group_scopes, &who.groups);
    let sealed = state
        .keyring
        .seal(&id_token_context(&who.subject), &identity.id_token);
    let previous = state.sessions.id_from(headers);
    match state
        .sessions
        .create(&who, scopes, Some(sealed), previous.as_deref(), ctx.id())
        .await
    {
        Ok((id, _)) => {
            state
                .auth_metrics
                .logins
                .with_label_values(&["oidc", "success"])
                .inc();
            let mut r = redirect(&pending.return_to);
            r.headers_mut()
                .append(header::SET_COOKIE, state.sessions.set_cookie(&id));
            r
        }
        Err(e) => AuthError::from(e).into_response(),
    }
}

/// The sealing context of a session's ID token: bound to the user it belongs to.
pub fn id_token_context(subject: &str) -> String {
    format!("session:id_token:{subject}")
}
