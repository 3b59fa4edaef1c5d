//! The auth-server's HTTP surface: the browser pages (`/`, `/login`, `/logout`), the JSON API
//! under `/api/v1` (described by `/api/v1/openapi.json`), the OAuth endpoints (`/oauth/*`),
//! `/validate`, the `/.well-known` documents, and `/health`, `/ready`.
//!
//! JSON routes are registered through `utoipa-axum`, so the OpenAPI document is generated from
//! the handlers that serve the requests. The HTML pages are plain routes, described in
//! `services/auth-server/README.md`.

pub mod consent;
pub mod extract;
pub mod login;
pub mod me;
pub mod oauth;
pub mod oidc;
pub mod registration;
pub mod tokens;
pub mod validate;

use axum::routing::{any, get};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

/// The head of the OpenAPI document; its paths come from the handlers.
const API: mcpgw_core::serve::ApiInfo = mcpgw_core::serve::ApiInfo {
    title: "mcpgw auth-server API",
    description: "Sessions, token vending for agents, signing keys, /validate and OAuth metadata. Errors use one envelope: {\"code\", \"detail\", \"field\"} (see docs/API.md).",
    version: env!("CARGO_PKG_VERSION"),
    bearer: ("session", "JWT access token"),
    tags: &[
        (
            "session",
            "The signed-in user and administrators' session control",
        ),
        ("tokens", "Access tokens for agents, and their revocation"),
        ("keys", "Token signing keys"),
        (
            "validate",
            "Credential checks for proxies, and OAuth protected resource metadata",
        ),
        ("audit", "Audit trail"),
        (
            "oauth",
            "Authorization code flow with PKCE for configured clients (the registry's console) and dynamically registered MCP clients (RFC 7591)",
        ),
    ],
};

mcpgw_core::ready_handler!(AppState, |state| &state.store);

/// The OpenAPI document, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    build().1
}

fn build() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut api) = OpenApiRouter::with_openapi(API.document())
        .routes(routes!(me::me))
        .routes(routes!(me::csrf))
        .routes(routes!(me::revoke_sessions))
        .routes(routes!(me::audit))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(tokens::revocations))
        .routes(routes!(tokens::rotate))
        .routes(routes!(tokens::jwks))
        .routes(routes!(tokens::oauth_metadata))
        .routes(routes!(tokens::openid_configuration))
        .routes(routes!(oauth::authorize, oauth::authorize_decision))
        .routes(routes!(oauth::token))
        .routes(routes!(oauth::revoke))
        .routes(routes!(registration::register))
        .routes(routes!(registration::list_clients))
        .routes(routes!(registration::delete_client))
        .routes(routes!(consent::list))
        .routes(routes!(consent::revoke))
        .routes(routes!(validate::resource_metadata))
        .routes(routes!(mcpgw_core::serve::health))
        .routes(routes!(ready))
        .split_for_parts();
    // `/validate` answers every method (an auth subrequest keeps the original one; it is
    // documented once, as GET), and the per-endpoint metadata has a wildcard path: both are
    // routed by hand in [`router`]; only their documentation comes from utoipa.
    let (_, docs_only) = OpenApiRouter::<AppState>::new()
        .routes(routes!(validate::validate))
        .routes(routes!(validate::resource_metadata_for_path))
        .split_for_parts();
    api.merge(docs_only);
    (router, api)
}

/// The complete router with its middleware.
pub fn router(state: AppState) -> axum::Router {
    let (router, api) = build();
    let router = router
        .route("/validate", any(validate::validate))
        .route(
            "/.well-known/oauth-protected-resource/{*path}",
            get(validate::resource_metadata_for_path),
        )
        .route("/", get(login::home))
        .route("/login", get(login::login_page).post(login::login_submit))
        .route(login::CONSOLE_CSS_PATH, get(login::console_css))
        .route("/login/oidc/{provider}", get(oidc::start))
        .route("/callback", get(oidc::callback))
        .route(
            "/logout",
            get(login::logout_page).post(login::logout_submit),
        );
    let (limit, metrics) = (state.config.max_body_bytes, state.metrics.clone());
    mcpgw_core::serve::frame(router, api, limit, metrics, state)
}
