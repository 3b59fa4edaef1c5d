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
) -> Result<Response, Refused> {
    let call = enter(gw, &server, &headers, request_id).await?;
    let permit = call.door().stream(&call.caller)?;
    let Call { gw, caller, .. } = call;
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
    Ok(relay(
        futures::stream::once(futures::future::ready(first.encode())).chain(messages),
        (permit, cleanup),
    ))
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
) -> Result<Response, Refused> {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let call = enter(gw, &server, &headers, request_id).await?;
    let door = call.door();
    let body = read_body(body, call.gw.config.max_body_bytes)
        .await
        .map_err(|e| door.refuse(e, None))?;
    let Some((tx, session)) =
        call.gw
            .legacy
            .lookup(&query.session_id, &server, &call.caller.digest)
    else {
        return Err(door.refuse(ProxyError::LegacyStreamNotFound, None));
    };
    let mut inner = HeaderMap::new();
    if let Some(sid) = &session
        && let Ok(v) = HeaderValue::from_str(sid)
    {
        inner.insert(SESSION_HEADER, v);
    }
    let legacy = Arc::clone(&call.gw.legacy);
    let call = Arc::new(call);
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
    Ok(StatusCode::ACCEPTED.into_response())
}
