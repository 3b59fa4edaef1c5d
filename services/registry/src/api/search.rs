//! `POST /api/v1/search`: ranked search over the servers and tools the caller may use.

use axum::Json;
use axum::extract::State;
use mcpgw_core::error::ErrorBody;

use super::extract::ApiJson;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::Result;
use crate::search::{SearchAnswer, SearchRequest};

/// Search servers and tools by what they do, best first. Only servers the caller may read
/// appear, and of their tools only those it may call (see docs/API.md, "Search").
#[utoipa::path(post, path = "/api/v1/search", tag = "search",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "Results, best first", body = SearchAnswer),
        (status = 403, description = "The caller may read no server", body = ErrorBody),
        (status = 422, description = "Invalid field (named in `field`)", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn search(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiJson(req): ApiJson<SearchRequest>,
) -> Result<Json<SearchAnswer>> {
    Ok(Json(state.registry.search(&caller, &req).await?))
}
