//! `GET /api/v1/events`: server-sent events for UIs: `health` (a damped status change),
//! `changed` and `deleted`, each only for servers the caller may read; a comment line every
//! `events.keep_alive_seconds`; at most `events.max_streams` open streams per process (more
//! get 503). Events are those of this process: behind several replicas, health changes come
//! from the replica holding the check lease, so a UI should stay on one replica or reload on
//! `lagged`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use mcpgw_core::auth::Permission;
use mcpgw_core::error::ErrorBody;
use tokio::sync::broadcast::error::RecvError;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::Result;

/// One SSE frame.
fn frame(event: &str, data: &str) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// Server events as `text/event-stream`.
#[utoipa::path(get, path = "/api/v1/events", tag = "servers",
    responses(
        (status = 200, description = "`text/event-stream`: events `health`, `changed`, `deleted` (data: JSON `ServerEvent`) and `lagged`", content_type = "text/event-stream", body = crate::health::ServerEvent),
        (status = 403, body = ErrorBody),
        (status = 503, description = "Too many open event streams", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn stream(State(state): State<AppState>, Caller(caller): Caller) -> Result<Response> {
    let readable = caller.limited_to(Permission::ServersRead);
    if readable.as_ref().is_some_and(|p| p.is_empty()) {
        caller.require(Permission::ServersRead)?;
    }
    let Ok(permit) = state.event_streams.clone().try_acquire_owned() else {
        return Ok(mcpgw_core::error::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            "too many open event streams; retry later",
        )
        .into_response());
    };
    let bus = state.registry.events.clone();
    let mut events = bus.subscribe();
    let keep_alive = Duration::from_secs(state.config.events.keep_alive_seconds);
    let body = async_stream(move |tx| async move {
        let _permit = permit;
        if tx.send(": connected\n\n".to_owned()).await.is_err() {
            return;
        }
        let closed = bus.closed();
        tokio::pin!(closed);
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(keep_alive, events.recv()) => next,
                _ = &mut closed => return,
            };
            let frame_text = match next {
                Err(_) => ": keep-alive\n\n".to_owned(),
                Ok(Ok(event)) => {
                    if readable.as_ref().is_some_and(|p| !p.contains(event.path())) {
                        continue;
                    }
                    frame(
                        event.name(),
                        &serde_json::to_string(&*event).unwrap_or_default(),
                    )
                }
                Ok(Err(RecvError::Lagged(n))) => frame("lagged", &format!("{{\"missed\":{n}}}")),
                Ok(Err(RecvError::Closed)) => return,
            };
            if tx.send(frame_text).await.is_err() {
                return;
            }
        }
    });
    let mut response = axum::body::Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A stream fed by a task; the task ends when the client goes away (the receiver drops).
fn async_stream<F, Fut>(
    f: F,
) -> impl futures::Stream<Item = std::result::Result<String, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<String>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(16);
    tokio::spawn(f(tx));
    tokio_stream_from(rx).map(Ok)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<String>,
) -> impl futures::Stream<Item = String> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
