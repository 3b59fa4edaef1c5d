//! The registry's HTTP surface: `/api/v1` (REST, described by `/api/v1/openapi.json`),
//! `/v0.1` (the official MCP Registry read API), and `/health`, `/ready`.
//!
//! Routes are registered through `utoipa-axum`, so the OpenAPI document is generated from the
//! same handlers that serve the requests and cannot drift from them.

pub mod agents;
pub mod audit;
pub mod catalog;
pub mod events;
pub mod extract;
pub mod gateway;
pub mod health;
pub mod keys;
pub mod policy;
pub mod search;
pub mod servers;

use std::sync::Arc;

use axum::Json;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use mcpgw_core::telemetry::{RequestId, observe};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::service::RequestContext;

/// The request context (request id) of the current request.
pub struct Ctx(pub RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Ctx(RequestContext {
            request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
        }))
    }
}

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        mcpgw_core::serve::add_bearer_scheme(
            openapi,
            "api_key",
            "mcpgw API key (mcpgw_<id>.<secret>)",
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mcpgw registry API",
        description = "The catalog of MCP servers: registration, governance lifecycle, tools, API keys and audit. Errors use one envelope: {\"code\", \"detail\", \"field\"} (see docs/API.md).",
        version = env!("CARGO_PKG_VERSION"),
    ),
    modifiers(&SecurityAddon),
    components(schemas(mcpgw_core::error::ErrorBody)),
    tags(
        (name = "servers", description = "Registered MCP servers"),
        (name = "agents", description = "Registered A2A agents"),
        (name = "api-keys", description = "API keys and the current caller"),
        (name = "audit", description = "Audit trail"),
        (name = "search", description = "Ranked search over servers and tools"),
        (name = "policy", description = "Scope documents: who may call which server, method and tool"),
        (name = "gateway", description = "What gateway processes fetch and report (permission gateway:sync)"),
        (name = "catalog", description = "Official MCP Registry API (v0.1), read-only"),
        (name = "operations", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

/// Readiness: the store answers within 2 s.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, body = mcpgw_core::serve::Status), (status = 503, body = mcpgw_core::error::ErrorBody)))]
async fn ready(State(state): State<AppState>) -> axum::response::Response {
    let store = &state.registry.store;
    mcpgw_core::serve::readiness(store.backend(), store.ping()).await
}

/// The OpenAPI document, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    build(None).1
}

fn build(state: Option<AppState>) -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let _ = state;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(servers::create, servers::list))
        .routes(routes!(
            servers::get,
            servers::replace,
            servers::patch,
            servers::delete
        ))
        .routes(routes!(servers::toggle))
        .routes(routes!(servers::transition))
        .routes(routes!(servers::tools, servers::set_tools))
        .routes(routes!(health::get, health::check))
        .routes(routes!(health::refresh_tools))
        .routes(routes!(events::stream))
        .routes(routes!(servers::approve_tools))
        .routes(routes!(servers::reject_tools))
        .routes(routes!(agents::create, agents::list))
        .routes(routes!(
            agents::get,
            agents::replace,
            agents::patch,
            agents::delete
        ))
        .routes(routes!(agents::toggle))
        .routes(routes!(agents::transition))
        .routes(routes!(agents::approve_card))
        .routes(routes!(agents::check_health))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::revoke))
        .routes(routes!(keys::me))
        .routes(routes!(audit::list))
        .routes(routes!(audit::count))
        .routes(routes!(audit::export))
        .routes(routes!(search::search))
        .routes(routes!(policy::list))
        .routes(routes!(policy::import))
        .routes(routes!(policy::get, policy::put, policy::delete))
        .routes(routes!(policy::check))
        .routes(routes!(gateway::snapshot))
        .routes(routes!(gateway::audit))
        .routes(routes!(gateway::health))
        .routes(routes!(catalog::list))
        .routes(routes!(catalog::versions))
        .routes(routes!(catalog::version))
        .routes(routes!(mcpgw_core::serve::health))
        .routes(routes!(ready))
        .split_for_parts()
}

/// The complete router with its middleware.
pub fn router(state: AppState) -> axum::Router {
    let (mut router, api) = build(Some(state.clone()));
    let api = Arc::new(api);
    if state.config.mcp.enabled {
        router = router.merge(crate::mcp::router(&state));
    }
    if state.config.console.enabled {
        router = router.merge(crate::console::router());
    }
    router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
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
