//! `GET` and `DELETE` on `/{server}/mcp`: the session era's server stream and session end.

use super::*;

/// `GET /{server}/mcp`: the session era's stream of server-initiated messages (resumable with
/// `Last-Event-ID` when the upstream supports it).
pub async fn get(
    State(gw): State<AppState>,
    Path(server): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let (routes, route, caller) = match begin(&gw, &server, &headers, &request_id, started).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let modern = headers
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v >= jsonrpc::LATEST_MODERN);
    if modern {
        return ProxyError::MethodNotAllowed(
            "the 2026-07-28 protocol has no GET stream; use subscriptions/listen",
        )
        .into_response(None);
    }
    let session = match required_session(&gw, &headers, &server, &caller, "the GET stream") {
        Ok(s) => s,
        Err(e) => return e.into_response(None),
    };
    let Some(permit) = gw.streams.acquire(
        caller.limit_key(),
        gw.config.limits.streams_per_caller,
        &gw.metrics.open_streams,
    ) else {
        return ProxyError::TooManyStreams.into_response(None);
    };
    let call = Arc::new(Call {
        gw,
        routes,
        route,
        caller,
        request_id,
        started,
    });
    match &call.route.upstream {
        Upstream::Http { .. } => {
            let era = Era::Legacy {
                version: Some(session.version.clone()),
            };
            let response =
                match send_http(&call, Method::GET, &headers, &era, Some(&session), None).await {
                    Ok(r) => r,
                    Err(e) => return e.into_response(None),
                };
            if !response.status().is_success() {
                let status = StatusCode::from_u16(response.status().as_u16())
                    .unwrap_or(StatusCode::BAD_GATEWAY);
                return status.into_response();
            }
            let events = http_events_no_idle(&call, response)
                .take_while(|e| futures::future::ready(e.is_ok()))
                .filter_map(|e| futures::future::ready(e.ok().map(|e| e.encode())));
            relay(events, permit)
        }
        Upstream::Shared(shared) => {
            let notifications = BroadcastStream::new(shared.subscribe()).filter_map(|n| {
                futures::future::ready(n.ok().map(|n| sse::Event::message(n.to_string()).encode()))
            });
            relay(notifications, permit)
        }
    }
}

/// `DELETE /{server}/mcp`: ends the session (and the upstream's).
pub async fn delete(
    State(gw): State<AppState>,
    Path(server): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let (routes, route, caller) = match begin(&gw, &server, &headers, &request_id, started).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let session = match required_session(&gw, &headers, &server, &caller, "DELETE") {
        Ok(s) => s,
        Err(e) => return e.into_response(None),
    };
    gw.metrics.sessions_ended.inc();
    let call = Arc::new(Call {
        gw,
        routes,
        route,
        caller,
        request_id,
        started,
    });
    match &call.route.upstream {
        Upstream::Http { .. } if session.upstream.is_some() => {
            let era = Era::Legacy {
                version: Some(session.version.clone()),
            };
            match send_http(&call, Method::DELETE, &headers, &era, Some(&session), None).await {
                // Clients expect 200 for a session that ended, whatever 2xx the upstream chose.
                Ok(r) if r.status().is_success() => StatusCode::OK.into_response(),
                Ok(r) => StatusCode::from_u16(r.status().as_u16())
                    .unwrap_or(StatusCode::BAD_GATEWAY)
                    .into_response(),
                Err(e) => e.into_response(None),
            }
        }
        _ => StatusCode::OK.into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// The deprecated HTTP+SSE transport (2024-11-05) towards clients
