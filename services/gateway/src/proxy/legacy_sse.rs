//! The deprecated HTTP+SSE transport (2024-11-05) towards clients: `GET /{server}/sse` and
//! `POST /{server}/message`.

use super::*;

#[derive(serde::Deserialize)]
pub struct MessageQuery {
    #[serde(rename = "sessionId")]
    session_id: String,
}

/// `GET /{server}/sse`: opens the event stream; its first event names where to POST.
pub async fn sse_connect(
    State(gw): State<AppState>,
    Path(server): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let (_, _, caller) = match begin(&gw, &server, &headers, &request_id, started).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(permit) = gw.streams.acquire(
        caller.limit_key(),
        gw.config.limits.streams_per_caller,
        &gw.metrics.open_streams,
    ) else {
        return ProxyError::TooManyStreams.into_response(None);
    };
    let (tx, rx) = mpsc::channel::<Value>(256);
    let id = uuid::Uuid::new_v4().simple().to_string();
    gw.legacy.insert(
        id.clone(),
        crate::state::LegacyConnection {
            server: server.clone(),
            caller: caller.digest.to_string(),
            tx,
            session: std::sync::Mutex::new(None),
        },
    );
    gw.metrics.open_sessions.inc();
    let endpoint = format!("/{server}/message?sessionId={id}");
    let legacy = Arc::clone(&gw.legacy);
    let metrics = gw.metrics.clone();
    let cleanup = scopeguard(move || {
        legacy.remove(&id);
        metrics.open_sessions.dec();
    });
    let first = sse::Event {
        event: Some("endpoint".into()),
        data: endpoint,
        ..Default::default()
    };
    let messages = tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(|m| sse::Event::message(m.to_string()).encode());
    relay(
        futures::stream::once(futures::future::ready(first.encode())).chain(messages),
        (permit, cleanup),
    )
}

pub(super) struct ScopeGuard<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for ScopeGuard<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

pub(super) fn scopeguard<F: FnOnce()>(f: F) -> ScopeGuard<F> {
    ScopeGuard(Some(f))
}

/// `POST /{server}/message?sessionId=…`: a message of a legacy SSE client; its answers go
/// onto that client's event stream.
pub async fn sse_message(
    State(gw): State<AppState>,
    Path(server): Path<String>,
    Query(query): Query<MessageQuery>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    request: axum::extract::Request,
) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let (routes, route, caller) = match begin(&gw, &server, &headers, &request_id, started).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = match read_body(body, gw.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return refuse(&gw, &server, &request_id, started, e, None),
    };
    let Some((tx, session)) = gw.legacy.lookup(&query.session_id, &server, &caller.digest) else {
        return ProxyError::LegacyStreamNotFound.into_response(None);
    };
    let mut inner = HeaderMap::new();
    if let Some(sid) = &session
        && let Ok(v) = HeaderValue::from_str(sid)
    {
        inner.insert(SESSION_HEADER, v);
    }
    let call = Arc::new(Call {
        gw: Arc::clone(&gw),
        routes,
        route,
        caller,
        request_id,
        started,
    });
    let legacy = Arc::clone(&gw.legacy);
    let session_key = query.session_id.clone();
    tokio::spawn(async move {
        let messages = match run_post(&call, &inner, body).await {
            Posted::One { id, answer } => {
                let headers = match &answer {
                    Ok(Answer::Final(f)) => Some(&f.headers),
                    Ok(Answer::Stream(s)) => Some(&s.headers),
                    _ => None,
                };
                if let Some(sid) = headers
                    .and_then(|h| h.get(SESSION_HEADER))
                    .and_then(|v| v.to_str().ok())
                {
                    legacy.set_session(&session_key, sid.to_owned());
                }
                messages_of(id.as_ref(), answer).await
            }
            Posted::Batch(answers) => answers,
            Posted::Refused(e, id) => messages_of(id.as_ref(), Err(e)).await,
        };
        for message in messages {
            if tx.send(message).await.is_err() {
                break;
            }
        }
    });
    StatusCode::ACCEPTED.into_response()
}
