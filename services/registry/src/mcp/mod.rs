//! The registry's own MCP server at `/mcp`: the catalog managed from any MCP client.
//!
//! Rules of this module:
//! - Every tool calls the `Registry` method its REST handler calls, with the caller's
//!   `Principal`, so permissions, validation, audit and error messages are the REST API's.
//! - Callers authenticate exactly as on the REST API (the same `AuthChain`: API keys, IdP
//!   tokens, and a gateway's caller assertion beside a `gateway:delegate` key). No credential:
//!   HTTP 401 before any MCP message is read.
//! - A refusal or bad input is a tool result with `isError: true` carrying the REST error
//!   envelope (`code`, `detail`, `field`); JSON-RPC errors are for protocol faults only.
//! - Stateless Streamable HTTP with JSON answers: nothing is kept between requests, so any
//!   replica answers any request.

mod register;
mod tools;

pub use register::ensure_registered;
pub use tools::definitions;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mcpgw_core::auth::Principal;
use mcpgw_core::telemetry::RequestId;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::app::AppState;
use crate::error::RegistryError;

/// One MCP request's view of the registry.
#[derive(Clone)]
struct RegistryMcp {
    state: AppState,
}

impl ServerHandler for RegistryMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "mcpgw-registry",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "The mcpgw registry: find MCP servers and tools (list_servers, get_server, search, \
                 health), register and change servers (register_server, update_server, \
                 toggle_server, transition_lifecycle, refresh_tools). Each tool needs the same \
                 permission as the registry's REST API.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(definitions().to_vec()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // The HTTP layer below put the principal on the request; rmcp hands over its parts.
        let parts = context.extensions.get::<http::request::Parts>();
        let Some(caller) = parts.and_then(|p| p.extensions.get::<Principal>()) else {
            return Err(ErrorData::internal_error("the caller is not known", None));
        };
        let ctx = crate::service::RequestContext {
            request_id: parts
                .and_then(|p| p.extensions.get::<RequestId>())
                .map(|r| r.0.clone()),
        };
        if !definitions().iter().any(|t| t.name == request.name) {
            return Err(ErrorData::invalid_params(
                format!("no tool is named {:?}", request.name),
                None,
            ));
        }
        let arguments = serde_json::Value::Object(request.arguments.unwrap_or_default());
        let result = match tools::call(&self.state, caller, &ctx, &request.name, arguments).await {
            Ok(value) => rmcp::model::CallToolResult::structured(value),
            Err(e) => rmcp::model::CallToolResult::structured_error(refusal(&e)),
        };
        Ok(result.into())
    }
}

/// The REST error envelope of `e`, as an MCP tool error carries it.
fn refusal(e: &RegistryError) -> serde_json::Value {
    serde_json::to_value(&e.to_api().body).unwrap_or_default()
}

/// Authenticates every `/mcp` request with the REST API's chain and puts the principal on it.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    match state.auth.identify(request.headers()).await {
        Ok(Some(principal)) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Ok(None) => RegistryError::Unauthenticated(
            "the registry's MCP server needs credentials: send `Authorization: Bearer <API key or access token>`"
                .to_owned(),
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The `/mcp` route, authenticated.
pub fn router(state: &AppState) -> axum::Router<AppState> {
    let handler = RegistryMcp {
        state: state.clone(),
    };
    // Stateless JSON answers (any replica answers any request). Host checks guard against
    // DNS rebinding of servers that trust ambient credentials; this one takes bearer
    // credentials only, which a browser never adds by itself, and runs behind ingress hosts.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .disable_allowed_hosts()
        .with_max_request_body_bytes(state.config.max_body_bytes);
    let service: StreamableHttpService<RegistryMcp, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(handler.clone()), Default::default(), config);
    axum::Router::new()
        .route_service("/mcp", service)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
}
