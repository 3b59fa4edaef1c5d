//! Streamable HTTP upstreams: the request the gateway builds (headers from scratch, the
//! server's credentials, never the caller's token), its failures, and its answer as events.

use super::*;
pub(super) use crate::upstream_client::read_limited;
use crate::upstream_client::{UpstreamBody, UpstreamResponse, body_chunks};

/// Headers passed from the client to an HTTP upstream. Never `Authorization` or cookies.
pub(super) const FORWARDED_HEADERS: &[&str] = &[
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "last-event-id",
    "traceparent",
    "tracestate",
    "baggage",
];

/// An upstream answered with an error status: pass it on, except that the upstream refusing
/// the gateway's own credentials must not look like the caller's token being bad.
pub(super) async fn upstream_status(
    call: &Call,
    response: UpstreamResponse,
) -> Result<UpstreamStatus, ProxyError> {
    let status = response.status();
    let reason = match status.as_u16() {
        401 | 403 => None,
        404 => Some("upstream_404"),
        s if s >= 500 => Some("upstream_5xx"),
        _ => Some("upstream_4xx"),
    };
    if let Some(reason) = reason {
        call.gw
            .metrics
            .upstream_errors
            .with_label_values(&[call.server(), reason])
            .inc();
    }
    if reason.is_none() {
        // A cached OAuth token the upstream no longer takes: the next request fetches a new one.
        if status.as_u16() == 401
            && let Upstream::Http {
                credentials: Some(c),
                ..
            } = &call.route.upstream
        {
            c.invalidate();
        }
        return Err(count_upstream(call, ProxyError::UpstreamRefusedCredentials));
    }
    let content_type = response.headers().get(http::header::CONTENT_TYPE).cloned();
    let body = read_limited(response, 64 * 1024).await.unwrap_or_default();
    Ok(UpstreamStatus {
        status: StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
        content_type,
        body,
        session_lost: false,
    })
}

// ---------------------------------------------------------------------------------------------
// HTTP upstreams

pub(super) async fn send_http(
    call: &Call,
    method: Method,
    client_headers: &HeaderMap,
    era: &Era,
    session: Option<&SessionState>,
    body: Option<Bytes>,
) -> Result<UpstreamResponse, ProxyError> {
    let Upstream::Http {
        uri,
        headers,
        credentials,
    } = &call.route.upstream
    else {
        unreachable!("send_http is for HTTP upstreams");
    };
    let fail = |fault: UpstreamFault, mut message: String| {
        message.push_str(&registry_health_note(call));
        count_upstream(call, ProxyError::Upstream { fault, message })
    };
    let mut out = HeaderMap::with_capacity(12);
    // The headers that mirror the body belong to the 2026-07-28 era, where `era_of` has
    // checked them against the body; the session era does not define them, so they never
    // travel there (an upstream or a proxy before it might route on them).
    let modern = matches!(era, Era::Modern { .. });
    for name in FORWARDED_HEADERS {
        if !modern && jsonrpc::MIRRORED_HEADERS.contains(name) {
            continue;
        }
        if let Some(v) = client_headers.get(*name) {
            out.insert(HeaderName::from_static(name), v.clone());
        }
    }
    for (name, value) in client_headers {
        if modern && name.as_str().starts_with("mcp-param-") {
            out.insert(name.clone(), value.clone());
        }
    }
    if let (Era::Legacy { .. }, Some(s)) = (era, session) {
        if let Some(up) = &s.upstream
            && let Ok(v) = HeaderValue::from_str(up)
        {
            out.insert(SESSION_HEADER, v);
        }
        if !out.contains_key("mcp-protocol-version")
            && let Ok(v) = HeaderValue::from_str(&s.version)
        {
            out.insert("mcp-protocol-version", v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&call.request_id) {
        out.insert(mcpgw_core::telemetry::REQUEST_ID_HEADER, v);
    }
    out.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    if body.is_some() {
        out.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    // A custom User-Agent from the registry wins, as it did with a client default header.
    out.insert(http::header::USER_AGENT, USER_AGENT);
    out.extend(headers.clone());
    if call.route.entry.gateway.assert_caller {
        // Set last, so neither a client nor a custom header can choose it.
        out.insert(
            mcpgw_core::auth::CALLER_ASSERTION_HEADER,
            caller::assertion(&call.caller),
        );
    }
    let body = body.unwrap_or_default();
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri.clone();
    parts.headers = out;
    if let Some(credentials) = credentials {
        // Boxed: signing (SigV4, token exchange) is a 13 KB future; inline, every proxied
        // call's future would carry and copy it, credentials or not.
        Box::pin(credentials.apply(&mut parts, &body))
            .await
            .map_err(|e| {
                fail(
                    UpstreamFault::Credentials,
                    format!("the gateway could not get credentials for this server: {e}"),
                )
            })?;
    }
    let request = http::Request::from_parts(parts, UpstreamBody::new(body));
    let timeout = call.gw.config.upstream.first_byte_timeout();
    match tokio::time::timeout(timeout, call.gw.upstream_http.send(request)).await {
        Err(_) => Err(fail(
            UpstreamFault::Timeout,
            format!(
                "the server did not answer within {} ms",
                timeout.as_millis()
            ),
        )),
        Ok(Err(e)) => {
            let reason = if e.is_connect() {
                UpstreamFault::Connect
            } else {
                UpstreamFault::Transport
            };
            Err(fail(
                reason,
                format!("the server could not be reached: {}", error_chain(&e)),
            ))
        }
        Ok(Ok(r)) => Ok(r),
    }
}

const USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("mcpgw-gateway/", env!("CARGO_PKG_VERSION")));

/// What the registry's health checks say of a server that failed, for the error message: the
/// gateway still tries every server (its own view may differ from the registry's), but a
/// caller learns whether the failure was already known.
pub(super) fn registry_health_note(call: &Call) -> String {
    use mcpgw_core::domain::HealthStatus;
    match call.routes.health.get(call.server()) {
        Some(h) if h.status != HealthStatus::Healthy => {
            let status = h.status.as_str().replace('_', " ");
            match h.since {
                Some(since) => format!(
                    " (the registry's health checks report it {status} since {})",
                    since.to_canonical()
                ),
                None => format!(" (the registry's health checks report it {status})"),
            }
        }
        _ => String::new(),
    }
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The messages of an upstream HTTP answer as events: a JSON body is one event; an SSE body
/// is parsed as it arrives, each event passed on with its id.
pub(super) fn http_events(
    call: &Call,
    response: UpstreamResponse,
) -> BoxStream<'static, Result<sse::Event, String>> {
    let max = call.gw.config.upstream.max_message_bytes;
    let idle = call.gw.config.upstream.idle_timeout();
    let is_sse = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    if !is_sse {
        return futures::stream::once(async move {
            let bytes = read_limited(response, max).await.ok_or_else(|| {
                format!("the server's answer is larger than {max} bytes or broke off")
            })?;
            if bytes.is_empty() {
                return Err("the server's answer is empty".to_owned());
            }
            Ok(sse::Event::message(
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        })
        .boxed();
    }
    let state = (
        body_chunks(response).boxed(),
        sse::Parser::new(max),
        std::collections::VecDeque::<sse::Event>::new(),
    );
    futures::stream::unfold(state, move |(mut body, mut parser, mut queue)| async move {
        loop {
            if let Some(e) = queue.pop_front() {
                return Some((Ok(e), (body, parser, queue)));
            }
            match tokio::time::timeout(idle, body.next()).await {
                Err(_) => {
                    return Some((
                        Err(format!(
                            "the server sent nothing for {} ms",
                            idle.as_millis()
                        )),
                        (body, parser, queue),
                    ));
                }
                Ok(None) => return None,
                Ok(Some(Err(e))) => {
                    return Some((
                        Err(format!("the server's stream broke: {e}")),
                        (body, parser, queue),
                    ));
                }
                Ok(Some(Ok(chunk))) => match parser.feed(&chunk) {
                    Ok(events) => queue.extend(events),
                    Err(e) => return Some((Err(e.to_string()), (body, parser, queue))),
                },
            }
        }
    })
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Shared upstreams (stdio, legacy SSE)

/// Like [`http_events`] without the idle limit: a listening stream may be quiet for hours.
pub(super) fn http_events_no_idle(
    call: &Call,
    response: UpstreamResponse,
) -> BoxStream<'static, Result<sse::Event, String>> {
    let max = call.gw.config.upstream.max_message_bytes;
    let state = (
        body_chunks(response).boxed(),
        sse::Parser::new(max),
        std::collections::VecDeque::<sse::Event>::new(),
    );
    futures::stream::unfold(state, move |(mut body, mut parser, mut queue)| async move {
        loop {
            if let Some(e) = queue.pop_front() {
                return Some((Ok(e), (body, parser, queue)));
            }
            match body.next().await {
                None | Some(Err(_)) => return None,
                Some(Ok(chunk)) => match parser.feed(&chunk) {
                    Ok(events) => queue.extend(events),
                    Err(e) => return Some((Err(e.to_string()), (body, parser, queue))),
                },
            }
        }
    })
    .boxed()
}
