//! The auth-server's HTTP surface: the browser pages (`/`, `/login`, `/logout`), the JSON API
//! under `/api/v1` (described by `/api/v1/openapi.json`), the OAuth endpoints (`/oauth/*`),
//! `/validate`, the `/.well-known` documents, and `/health`, `/ready`.
//!
//! JSON routes are registered through `utoipa-axum`, so the OpenAPI document is generated from
//! the handlers that serve the requests. The HTML pages are plain routes, described in
//! `services/auth-server/README.md`.

pub mod extract;
pub mod login;
pub mod me;
pub mod oauth;
pub mod oidc;
pub mod tokens;
pub mod validate;

use std::sync::Arc;

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{any, get};
use mcpgw_core::telemetry::observe;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        mcpgw_core::serve::add_bearer_scheme(openapi, "session", "JWT access token");
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mcpgw auth-server API",
        description = "Sessions, token vending for agents, signing keys, /validate and OAuth metadata. Errors use one envelope: {\"code\", \"detail\", \"field\"} (see docs/API.md).",
        version = env!("CARGO_PKG_VERSION"),
    ),
    modifiers(&SecurityAddon),
    components(schemas(mcpgw_core::error::ErrorBody)),
    tags(
        (name = "session", description = "The signed-in user and administrators' session control"),
        (name = "tokens", description = "Access tokens for agents, and their revocation"),
        (name = "keys", description = "Token signing keys"),
        (name = "validate", description = "Credential checks for proxies, and OAuth protected resource metadata"),
        (name = "audit", description = "Audit trail"),
        (name = "oauth", description = "Authorization code flow with PKCE for registered clients (the registry's console)"),
        (name = "operations", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

/// Readiness: the store answers within 2 s.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, body = mcpgw_core::serve::Status), (status = 503, body = mcpgw_core::error::ErrorBody)))]
async fn ready(State(state): State<AppState>) -> axum::response::Response {
    let store = &state.store;
    mcpgw_core::serve::readiness(store.backend(), store.ping()).await
}

/// The OpenAPI document, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    build().1
}

fn build() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
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
        .routes(routes!(oauth::authorize))
        .routes(routes!(oauth::token))
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
    let api = Arc::new(api);
    router
        .route("/validate", any(validate::validate))
        .route(
            "/.well-known/oauth-protected-resource/{*path}",
            get(validate::resource_metadata_for_path),
        )
        .route("/", get(login::home))
        .route("/login", get(login::login_page).post(login::login_submit))
        .route("/login/oidc/{provider}", get(oidc::start))
        .route("/callback", get(oidc::callback))
        .route(
            "/logout",
            get(login::logout_page).post(login::logout_submit),
        )
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let api = api.clone();
                async move { Json(api.as_ref().clone()) }
            }),
        )
        .fallback(mcpgw_core::serve::not_found)
        .method_not_allowed_fallback(mcpgw_core::serve::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            observe,
        ))
        .with_state(state)
}
