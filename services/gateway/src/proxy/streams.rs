//! `GET` and `DELETE` on `/{server}/mcp`: the session era's server stream and session end.

use super::*;

/// `GET /{server}/mcp`: the session era's stream of server-initiated messages (resumable with
/// `Last-Event-ID` when the upstream supports it). The spec has a server answer `405` when it
/// offers no such stream, and clients (the TypeScript SDK's) open one after `initialize` and
/// take a `405` as "none": an HTTP upstream's answer is its own, passed on.
pub async fn get(
    State(gw): State<AppState>,
    Path(server): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    let call = Arc::new(enter(gw, &server, &headers, request_id).await?);
    let door = call.door();
    door.get_stream(&headers)?;
    // An HTTP upstream that keeps no sessions gave the client none to name (the gateway seals
    // only an upstream's own): the GET goes to the upstream without one, if the caller may
    // use the server at all (what the `initialize` that opens a session is decided by). The
    // gateway holds a shared upstream's session itself and always gives one.
    let session = match &call.route.upstream {
        Upstream::Http { .. } => match door.session(&headers, &call.caller)? {
            None if matches!(decide(&call, "initialize", None), Verdict::Forbidden { .. }) => {
                let e = insufficient_scope(&call, "initialize", None);
                return Err(door.refuse(e, None));
            }
            session => session,
        },
        Upstream::Shared(_) => {
            Some(door.required_session(&headers, &call.caller, "the GET stream")?)
        }
    };
    let permit = door.stream(&call.caller)?;
    Ok(match &call.route.upstream {
        Upstream::Http { .. } => {
            let era = Era::Legacy {
                version: session.as_ref().map(|s| s.version.clone()),
            };
            let response =
                match send_http(&call, Method::GET, &headers, &era, session.as_ref(), None).await {
                    Ok(r) => r,
                    // The upstream failed, the gateway refused nothing: `send_http` counted
                    // it (`upstream_errors`); a GET or DELETE leaves no audit event.
                    Err(e) => return Ok(e.into_response(None)),
                };
            if !response.status().is_success() {
                return Ok(no_stream(response.status().as_u16(), response.headers()));
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
    })
}

/// An upstream's refusal of the GET stream, passed on: its status, and on a `405` the methods
/// it allows (`POST` when it named none: a 405 must say, and the endpoint takes POST).
fn no_stream(status: u16, upstream: &HeaderMap) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut r = status.into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        let allow = upstream
            .get(http::header::ALLOW)
            .cloned()
            .unwrap_or(HeaderValue::from_static("POST"));
        r.headers_mut().insert(http::header::ALLOW, allow);
    }
    r
}

/// `DELETE /{server}/mcp`: ends the session (and the upstream's).
pub async fn delete(
    State(gw): State<AppState>,
    Path(server): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    let call = Arc::new(enter(gw, &server, &headers, request_id).await?);
    let session = call
        .door()
        .required_session(&headers, &call.caller, "DELETE")?;
    call.gw.metrics.sessions_ended.inc();
    Ok(match &call.route.upstream {
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
    })
}
