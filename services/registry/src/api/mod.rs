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
pub mod gateway_tools;
pub mod health;
pub mod keys;
pub mod policy;
pub mod search;
pub mod servers;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use mcpgw_core::telemetry::RequestId;
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

/// The head of the OpenAPI document; its paths come from the handlers.
const API: mcpgw_core::serve::ApiInfo = mcpgw_core::serve::ApiInfo {
    title: "mcpgw registry API",
    description: "The catalog of MCP servers: registration, governance lifecycle, tools, API keys and audit. Errors use one envelope: {\"code\", \"detail\", \"field\"} (see docs/API.md).",
    version: env!("CARGO_PKG_VERSION"),
    bearer: ("api_key", "mcpgw API key (mcpgw_<id>.<secret>)"),
    tags: &[
        ("servers", "Registered MCP servers"),
        ("agents", "Registered A2A agents"),
        ("api-keys", "API keys and the current caller"),
        ("audit", "Audit trail"),
        ("search", "Ranked search over servers and tools"),
        (
            "policy",
            "Scope documents: who may call which server, method and tool",
        ),
        (
            "gateway",
            "What gateway processes fetch and report (permission gateway:sync)",
        ),
        ("catalog", "Official MCP Registry API (v0.1), read-only"),
    ],
};

mcpgw_core::ready_handler!(AppState, |state| &state.registry.store);

/// The OpenAPI document, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    build(None).1
}

fn build(state: Option<AppState>) -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let _ = state;
    OpenApiRouter::with_openapi(API.document())
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
        .routes(routes!(gateway_tools::tools))
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
    if state.config.mcp.enabled {
        router = router.merge(crate::mcp::router(&state));
    }
    if state.config.console.enabled {
        router = router.merge(crate::console::router());
    }
    let (limit, metrics) = (state.config.max_body_bytes, state.metrics.clone());
    mcpgw_core::serve::frame(router, api, limit, metrics, state)
}
