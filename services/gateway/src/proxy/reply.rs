//! The reply path: the upstream's events passed to the client (JSON when the final response
//! comes first, else SSE), the final response filtered or cut, keep-alives on quiet streams.

use super::*;

pub(super) fn sse_response(
    stream: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    extra: HeaderMap,
) -> Response {
    let mut response = Response::new(Body::from_stream(stream));
    let h = response.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.extend(extra);
    response
}

/// The JSON-RPC responses inside one of our own answers (JSON or SSE).
pub async fn collect_messages(response: Response, max: usize) -> Vec<Value> {
    let is_sse = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    let status = response.status();
    let mut out = Vec::new();
    let mut body = response.into_body().into_data_stream();
    if is_sse {
        let mut parser = sse::Parser::new(max);
        while let Some(Ok(chunk)) = body.next().await {
            let Ok(events) = parser.feed(&chunk) else {
                break;
            };
            for e in events.into_iter().filter(sse::Event::is_message) {
                if let Ok(v) = serde_json::from_str::<Value>(&e.data) {
                    out.push(v);
                }
            }
        }
    } else {
        let mut bytes = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > max {
                return out;
            }
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Array(items)) => out.extend(items),
            Ok(v) if v.get("jsonrpc").is_some() => out.push(v),
            _ if !status.is_success() => {}
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// One message

/// Keep-alive comments on quiet streams, so proxies and load balancers keep them open.
pub(super) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// An SSE response that relays `source` (encoded events) until it ends or the client goes
/// away, with keep-alive comments in quiet periods; `guard` (permits, clean-up) lives as long
/// as the stream.
pub(crate) fn relay(
    source: impl futures::Stream<Item = Bytes> + Send + 'static,
    guard: impl Send + 'static,
) -> Response {
    // The body stream itself waits on the source and the keep-alive timer: no task and no
    // channel per stream (10,000 open streams cost what their connections cost). When the
    // client goes away, hyper drops the body, and with it the source and the guard.
    let state = (Box::pin(source), guard);
    let body = futures::stream::unfold(state, |(mut source, guard)| async move {
        tokio::select! {
            item = source.next() => item.map(|bytes| (Ok::<_, std::io::Error>(bytes), (source, guard))),
            _ = tokio::time::sleep(KEEP_ALIVE) => Some((Ok(sse::keep_alive()), (source, guard))),
        }
    });
    sse_response(body, HeaderMap::new())
}

/// A body stream fed by a task; the task ends when the client goes away (sends fail).
pub(super) fn async_stream_events<F, Fut>(
    producer: F,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
where
    F: FnOnce(mpsc::Sender<Bytes>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Bytes>(32);
    tokio::spawn(producer(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok)
}

// ---------------------------------------------------------------------------------------------
// The answer

/// Passes an answer to the client: a final response that comes first is sent as JSON; anything
/// else streams as SSE, event by event. The final response of a list or tool call is filtered
/// or cut on the way; the request is audited when its final response passes.
pub(super) async fn respond(
    call: Arc<Call>,
    id: Value,
    outcome: Outcome,
    mut stream: BoxStream<'static, Result<sse::Event, String>>,
    extra: HeaderMap,
    abandon: Option<Abandon>,
    permit: Box<dyn std::any::Any + Send>,
) -> Response {
    let first =
        match tokio::time::timeout(call.gw.config.upstream.first_byte_timeout(), stream.next())
            .await
        {
            Err(_) => {
                if let Some(a) = abandon {
                    a.fire();
                }
                return fail(&call, &outcome, Some(&id), ProxyError::NoFirstMessage);
            }
            Ok(None) => return fail(&call, &outcome, Some(&id), ProxyError::NoResponse),
            Ok(Some(Err(e))) => {
                return fail(&call, &outcome, Some(&id), ProxyError::AnswerBroke(e));
            }
            Ok(Some(Ok(event))) => event,
        };
    if first.is_message()
        && let Ok(value) = serde_json::from_str::<Value>(&first.data)
        && is_final(&value, &id)
    {
        let body = match finalize(&call, &outcome, value, first.data.len()) {
            Some(changed) => serde_json::to_vec(&changed).unwrap_or_default(),
            // Unchanged answers go out as the upstream wrote them: no second serialization.
            None => first.data.into_bytes(),
        };
        drop(permit);
        let mut r = (
            StatusCode::OK,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        r.headers_mut().extend(extra);
        return r;
    }
    let body = async_stream_events(async move |tx: mpsc::Sender<Bytes>| {
        let _permit = permit;
        let mut next = Some(Ok(first));
        let mut finished = false;
        // Only a client that left cancels the upstream request. An upstream that ends its own
        // stream before the answer (SEP-1699 polling) is still working on it: the client
        // resumes with GET and Last-Event-ID.
        let mut client_gone = false;
        loop {
            let item = match next.take() {
                Some(i) => Some(i),
                None => tokio::select! {
                    i = stream.next() => i,
                    _ = tx.closed() => {
                        client_gone = true;
                        break;
                    }
                },
            };
            let Some(item) = item else { break };
            let event = match item {
                Ok(e) => e,
                Err(e) => {
                    let e = ProxyError::AnswerBroke(e);
                    let v = e.body(Some(&id));
                    finish(&call, &outcome, e.mapping().audit_status);
                    finished = true;
                    let _ = tx.send(sse::Event::message(v.to_string()).encode()).await;
                    break;
                }
            };
            let mut out = event.clone();
            let mut last = false;
            if event.is_message()
                && let Ok(value) = serde_json::from_str::<Value>(&event.data)
                && is_final(&value, &id)
            {
                if let Some(changed) = finalize(&call, &outcome, value, event.data.len()) {
                    out.data = changed.to_string();
                }
                finished = true;
                last = true;
            }
            if tx.send(out.encode()).await.is_err() {
                client_gone = true;
                break;
            }
            if last {
                break;
            }
        }
        if !finished {
            if client_gone {
                finish(&call, &outcome, "cancelled");
                if let Some(a) = abandon {
                    a.fire();
                }
            } else {
                finish(&call, &outcome, "stream_closed");
            }
        }
    });
    sse_response(body, extra)
}

pub(super) fn is_final(value: &Value, id: &Value) -> bool {
    value.get("id") == Some(id) && (value.get("result").is_some() || value.get("error").is_some())
}

/// Filters or cuts the final response and records the outcome; `Some` when the message was
/// changed (`raw_len` is its size as received, so small tool results are not measured again).
pub(super) fn finalize(
    call: &Call,
    outcome: &Outcome,
    mut value: Value,
    raw_len: usize,
) -> Option<Value> {
    let mut changed = false;
    let status = if value.get("error").is_some() {
        "jsonrpc_error"
    } else if value.pointer("/result/isError") == Some(&Value::Bool(true)) {
        "tool_error"
    } else {
        "ok"
    };
    if let Some(result) = value.get_mut("result") {
        match outcome.method.as_str() {
            "tools/call" => {
                let max = call
                    .route
                    .entry
                    .gateway
                    .max_result_bytes
                    .unwrap_or(call.gw.config.upstream.max_result_bytes)
                    as usize;
                if raw_len > max
                    && let Some(size) = transform::cap_tool_result(result, max)
                {
                    changed = true;
                    tracing::info!(server = %call.server(), tool = ?outcome.tool, size, max, "tool result cut to the server's limit");
                }
            }
            "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" => {
                changed = true;
                if outcome.method == "tools/list" {
                    call.route.integrity.apply_to_list(result);
                }
                let caller = call.routes.policy.caller(&call.caller.identity);
                let filter = caller.tool_filter(call.server());
                let read_only_server = call.route.entry.gateway.read_only;
                let visible = |name: &str, read_only: bool| {
                    filter.allows(name)
                        && (!read_only_server || read_only || filter.allows_write(name))
                };
                let server = call.server();
                let hints = transform::filter_list(
                    &outcome.method,
                    result,
                    &transform::ListFilter {
                        tool_visible: &visible,
                        prompts_visible: caller.decide(server, "prompts/get", None).allowed,
                        resources_visible: caller.decide(server, "resources/read", None).allowed,
                    },
                );
                if !hints.is_empty() {
                    call.route.learn_read_only(hints);
                }
            }
            _ => {}
        }
        if outcome.modern {
            changed |= stateless_result_fields(&outcome.method, result);
        }
    }
    finish(call, outcome, status);
    changed.then_some(value)
}

/// 2026-07-28 results carry `resultType`, and list and read results caching hints. An upstream
/// of the session era leaves them out, so the gateway adds them. Lists it filtered per caller
/// are always `private`: a shared cache must never hand one caller's view to another.
pub(super) fn stateless_result_fields(method: &str, result: &mut Value) -> bool {
    let Some(obj) = result.as_object_mut() else {
        return false;
    };
    let before = obj.len();
    obj.entry("resultType").or_insert(json!("complete"));
    let cacheable = matches!(
        method,
        "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
    );
    if cacheable {
        obj.entry("ttlMs").or_insert(json!(0));
        let filtered = method != "resources/read";
        if filtered || !obj.contains_key("cacheScope") {
            obj.insert("cacheScope".into(), json!("private"));
            return true;
        }
    }
    obj.len() != before
}

// ---------------------------------------------------------------------------------------------
// GET and DELETE on the MCP endpoint
