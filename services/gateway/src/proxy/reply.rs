//! The reply path: the upstream's events as an answer (the final response when it comes
//! first, else a [`Streamed`] answer read event by event), the final response filtered or cut,
//! the SSE bodies made of them, keep-alives on quiet streams.

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

/// The answer to a request whose upstream answers with events: the final response when it
/// comes first (sent as JSON), else the stream of events (sent as SSE).
pub(super) async fn first_answer(
    call: &Arc<Call>,
    id: &Value,
    outcome: &Outcome,
    mut events: BoxStream<'static, Result<sse::Event, String>>,
    headers: HeaderMap,
    abandon: Option<Abandon>,
    permit: Permit,
) -> Result<Answer, ProxyError> {
    let first =
        match tokio::time::timeout(call.gw.config.upstream.first_byte_timeout(), events.next())
            .await
        {
            Err(_) => {
                if let Some(a) = abandon {
                    a.fire();
                }
                return Err(ProxyError::NoFirstMessage);
            }
            Ok(None) => return Err(ProxyError::NoResponse),
            Ok(Some(Err(e))) => return Err(ProxyError::AnswerBroke(e)),
            Ok(Some(Ok(event))) => event,
        };
    if first.is_message()
        && let Some(status) = plain_tool_result(call, outcome, &first.data, id)
    {
        return Ok(Answer::Final(Final {
            value: None,
            raw: Some(Bytes::from(first.data.into_bytes())),
            headers,
            status,
        }));
    }
    if first.is_message()
        && let Ok(value) = serde_json::from_str::<Value>(&first.data)
        && is_final(&value, id)
    {
        let (changed, status) = finalize(call, outcome, value, first.data.len());
        let (value, raw) = match changed {
            Ok(changed) => (Some(changed), None),
            // Unchanged answers go out as the upstream wrote them: no second serialization.
            Err(value) => (Some(value), Some(Bytes::from(first.data.into_bytes()))),
        };
        return Ok(Answer::Final(Final {
            value,
            raw,
            headers,
            status,
        }));
    }
    Ok(Answer::Stream(Box::new(Streamed {
        call: Arc::clone(call),
        id: id.clone(),
        first: Some(first),
        events,
        headers,
        abandon,
        exit: None,
        _permit: permit,
    })))
}

/// An answer that streams: the upstream's events, read with [`Streamed::next`], which filters
/// or cuts the final response and closes the request's exit. Dropped before the final
/// response (the client went away), it records `cancelled` and cancels upstream.
pub struct Streamed {
    call: Arc<Call>,
    id: Value,
    first: Option<sse::Event>,
    events: BoxStream<'static, Result<sse::Event, String>>,
    pub(super) headers: HeaderMap,
    abandon: Option<Abandon>,
    /// Set by `pipeline::run`; `None` once closed.
    pub(super) exit: Option<Exit>,
    _permit: Permit,
}

/// One event of a [`Streamed`] answer.
pub enum Event {
    /// Passed on as it is (progress, server requests, notifications).
    Passed(sse::Event),
    /// The last event: the final response (filtered or cut), or the error the answer broke
    /// with.
    Final { event: sse::Event, value: Value },
}

impl Streamed {
    /// The next event; `None` after the final one, or when the upstream ended its stream
    /// before the answer (an upstream that ends its own stream, SEP-1699 polling, is still
    /// working on it: the client resumes with GET and Last-Event-ID).
    pub async fn next(&mut self) -> Option<Event> {
        self.exit.as_ref()?;
        let item = match self.first.take() {
            Some(first) => Some(Ok(first)),
            None => self.events.next().await,
        };
        let mut event = match item {
            None => {
                self.close(Status::StreamClosed);
                return None;
            }
            Some(Err(e)) => {
                let e = ProxyError::AnswerBroke(e);
                let value = e.body(Some(&self.id));
                self.close(Status::Failed(&e));
                let event = sse::Event::message(value.to_string());
                return Some(Event::Final { event, value });
            }
            Some(Ok(event)) => event,
        };
        if event.is_message()
            && let Ok(value) = serde_json::from_str::<Value>(&event.data)
            && is_final(&value, &self.id)
        {
            let outcome = self
                .exit
                .as_ref()
                .map(Exit::outcome)
                .expect("checked above");
            let (changed, status) = finalize(&self.call, outcome, value, event.data.len());
            let value = match changed {
                Ok(changed) => {
                    event.data = changed.to_string();
                    changed
                }
                Err(value) => value,
            };
            self.close(status);
            return Some(Event::Final { event, value });
        }
        Some(Event::Passed(event))
    }

    fn close(&mut self, status: Status<'_>) {
        if let Some(exit) = self.exit.take() {
            exit.close(status);
        }
    }

    /// The final response, read past the events before it (the aggregated endpoint's call).
    pub async fn final_message(mut self) -> Result<Value, ProxyError> {
        while let Some(event) = self.next().await {
            if let Event::Final { value, .. } = event {
                return Ok(value);
            }
        }
        Err(ProxyError::NoResponse)
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        // Only a client that left cancels the upstream request; the exit, dropped open with
        // this, records `cancelled`.
        if self.exit.as_ref().is_some_and(Exit::is_open)
            && let Some(a) = self.abandon.take()
        {
            a.fire();
        }
    }
}

/// The SSE body of a streamed answer: events until the final one, or until the client goes
/// away (then the answer is dropped: `cancelled`, and the upstream request cancelled).
pub(super) fn stream_response(mut streamed: Box<Streamed>) -> Response {
    let headers = std::mem::take(&mut streamed.headers);
    let body = async_stream_events(async move |tx: mpsc::Sender<Bytes>| {
        loop {
            let event = tokio::select! {
                e = streamed.next() => e,
                _ = tx.closed() => break,
            };
            let Some(event) = event else { break };
            let (event, last) = match event {
                Event::Passed(e) => (e, false),
                Event::Final { event, .. } => (event, true),
            };
            if tx.send(event.encode()).await.is_err() || last {
                break;
            }
        }
    });
    sse_response(body, headers)
}

/// What [`finalize`] decides on a `tools/call` result, read without building the message (its
/// content is skipped, not copied into a tree): `id`, whether `error` is there (even as
/// `null`, as `Value::get` sees it), and in an object `result` only `isError` and
/// `resultType`. Whatever else (duplicate keys, a `result` that is not an object, an
/// `isError` that is not a boolean) fails here and takes the full path.
#[derive(serde::Deserialize)]
struct ToolReply {
    id: Option<Value>,
    result: Option<ToolResultProbe>,
    #[serde(default, deserialize_with = "present")]
    error: bool,
}

#[derive(Default)]
struct ToolResultProbe {
    is_error: Option<bool>,
    has_result_type: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    <serde::de::IgnoredAny as serde::Deserialize>::deserialize(d)?;
    Ok(true)
}

impl<'de> serde::Deserialize<'de> for ToolResultProbe {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Probe;
        impl<'de> serde::de::Visitor<'de> for Probe {
            type Value = ToolResultProbe;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a result object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ToolResultProbe, A::Error> {
                use serde::de::{Error, IgnoredAny};
                let mut probe = ToolResultProbe::default();
                let mut seen_is_error = false;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match &*key {
                        "isError" if seen_is_error => {
                            return Err(A::Error::custom("duplicate isError"));
                        }
                        "isError" => {
                            seen_is_error = true;
                            probe.is_error = map.next_value()?;
                        }
                        "resultType" if probe.has_result_type => {
                            return Err(A::Error::custom("duplicate resultType"));
                        }
                        "resultType" => {
                            probe.has_result_type =
                                map.next_value::<Option<IgnoredAny>>()?.is_some();
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(probe)
            }
        }
        d.deserialize_map(Probe)
    }
}

/// The status of a final `tools/call` response that [`finalize`] would pass on unchanged
/// (within the size limit, `resultType` present when the 2026-07-28 era needs it); `None`
/// for anything else, which takes the full path. Most tool calls end here.
fn plain_tool_result(
    call: &Call,
    outcome: &Outcome,
    data: &str,
    id: &Value,
) -> Option<Status<'static>> {
    if outcome.method != "tools/call" {
        return None;
    }
    let max = call
        .route
        .entry
        .gateway
        .max_result_bytes
        .unwrap_or(call.gw.config.upstream.max_result_bytes) as usize;
    probe_tool_reply(data, id, max, outcome.modern)
}

fn probe_tool_reply(data: &str, id: &Value, max: usize, modern: bool) -> Option<Status<'static>> {
    if data.len() > max {
        return None;
    }
    let reply: ToolReply = serde_json::from_str(data).ok()?;
    if reply.id.as_ref() != Some(id) {
        return None;
    }
    // The 2026-07-28 era's `resultType` is added to any object `result` that lacks it.
    if modern && reply.result.as_ref().is_some_and(|r| !r.has_result_type) {
        return None;
    }
    match (reply.error, reply.result) {
        (true, _) => Some(Status::JsonRpcError),
        (false, Some(result)) if result.is_error == Some(true) => Some(Status::ToolError),
        (false, Some(_)) => Some(Status::Ok),
        (false, None) => None,
    }
}

pub(super) fn is_final(value: &Value, id: &Value) -> bool {
    value.get("id") == Some(id) && (value.get("result").is_some() || value.get("error").is_some())
}

/// Filters or cuts the final response, and says how the request ended; `Ok` when the message
/// was changed, `Err` with it unchanged (`raw_len` is its size as received, so small tool
/// results are not measured again).
pub(super) fn finalize(
    call: &Call,
    outcome: &Outcome,
    mut value: Value,
    raw_len: usize,
) -> (Result<Value, Value>, Status<'static>) {
    let mut changed = false;
    let status = status_of(&value);
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
    (if changed { Ok(value) } else { Err(value) }, status)
}

/// How a request ended, by its final response.
fn status_of(value: &Value) -> Status<'static> {
    if value.get("error").is_some() {
        Status::JsonRpcError
    } else if value.pointer("/result/isError") == Some(&Value::Bool(true)) {
        Status::ToolError
    } else {
        Status::Ok
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Wherever the probe decides, the full path (parse, `is_final`, `status_of`, the
    /// 2026-07-28 fields) decides the same and leaves the message unchanged.
    #[test]
    fn the_tool_result_probe_agrees_with_the_full_path() {
        let id = json!(7);
        let replies = [
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}],"isError":false}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":true,"resultType":"complete"}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"resultType":"complete"}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"resultType":null}}"#,
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"bad"}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{"isError":true},"error":null}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":[true]}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":null}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{"isError":"true"}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{"isError":false,"isError":true}}"#,
            r#"{"jsonrpc":"2.0","id":7,"id":8,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":"7","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":7}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#,
            r#"not json"#,
        ];
        let mut decided = 0;
        for data in replies {
            for modern in [false, true] {
                let Some(status) = probe_tool_reply(data, &id, 1 << 20, modern) else {
                    continue;
                };
                decided += 1;
                let mut value: Value = serde_json::from_str(data).unwrap();
                assert!(is_final(&value, &id), "{data}");
                assert_eq!(status_of(&value).as_str(), status.as_str(), "{data}");
                if modern && let Some(result) = value.get_mut("result") {
                    assert!(!stateless_result_fields("tools/call", result), "{data}");
                }
            }
        }
        assert!(decided >= 6, "the probe decided only {decided} cases");
        // Over the size limit, the full path (which may cut the result) decides.
        assert!(probe_tool_reply(replies[0], &id, 10, false).is_none());
    }
}
