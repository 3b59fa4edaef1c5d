//! Shared upstreams (stdio children, legacy SSE servers): the gateway answers the session
//! methods itself and passes the rest onto the one session it holds.

use super::*;

pub(super) enum SharedAnswer {
    /// The gateway answered itself (initialize, ping, server/discover).
    Direct(Value, HeaderMap),
    Pending(PendingReply),
    /// `subscriptions/listen`: streamed from the shared session's notifications.
    Listen(serde_json::Map<String, Value>),
    Failed(ProxyError),
}

pub(super) async fn shared_request(
    call: &Arc<Call>,
    era: &Era,
    shared: &Arc<SharedUpstream>,
    message: Message,
    id: &Value,
) -> SharedAnswer {
    let method = message.method().unwrap_or_default().to_owned();
    let unavailable = |e: crate::shared::SharedError| {
        SharedAnswer::Failed(count_upstream(call, ProxyError::Shared(e)))
    };
    match method.as_str() {
        "initialize" => {
            let init = match shared.initialize_result().await {
                Ok(i) => i,
                Err(e) => return unavailable(e),
            };
            let requested = message
                .params()
                .and_then(|p| p.get("protocolVersion"))
                .and_then(Value::as_str);
            let version = jsonrpc::negotiate_legacy(requested);
            let mut result = init;
            result["protocolVersion"] = json!(version);
            let state = SessionState {
                server: call.server().to_owned(),
                upstream: None,
                version: version.to_owned(),
                caller: call.caller.digest.to_string(),
                issued: chrono::Utc::now().timestamp(),
            };
            let mut extra = HeaderMap::new();
            if let Ok(sid) = call.gw.sessions.seal(&state)
                && let Ok(v) = HeaderValue::from_str(&sid)
            {
                call.gw.metrics.sessions_started.inc();
                extra.insert(SESSION_HEADER, v);
            }
            SharedAnswer::Direct(jsonrpc::result_response(id.clone(), result), extra)
        }
        "ping" => SharedAnswer::Direct(
            jsonrpc::result_response(id.clone(), json!({})),
            HeaderMap::new(),
        ),
        "server/discover" => match shared.initialize_result().await {
            Ok(init) => SharedAnswer::Direct(
                jsonrpc::result_response(id.clone(), discover_result(&init)),
                HeaderMap::new(),
            ),
            Err(e) => unavailable(e),
        },
        "subscriptions/listen" => {
            let params = message.params().cloned().unwrap_or_default();
            SharedAnswer::Listen(params)
        }
        _ => {
            let mut value = message.into_value();
            if let Era::Modern { .. } = era {
                // The upstream session is in the session era: strip per-request metadata it
                // does not know.
                if let Some(meta) = value
                    .pointer_mut("/params/_meta")
                    .and_then(Value::as_object_mut)
                {
                    meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
                }
            }
            match shared.request(&call.caller.digest, value).await {
                Ok(p) => SharedAnswer::Pending(p),
                Err(e) => unavailable(e),
            }
        }
    }
}

/// `server/discover` for an upstream that spoke `initialize`.
pub(super) fn discover_result(init: &Value) -> Value {
    json!({
        "supportedVersions": jsonrpc::supported_versions(),
        "capabilities": init.get("capabilities").cloned().unwrap_or(json!({})),
        "serverInfo": init.get("serverInfo").cloned().unwrap_or(json!({"name": "mcp-server", "version": "0"})),
        "instructions": init.get("instructions").cloned().unwrap_or(Value::Null),
        "resultType": "complete",
        "ttlMs": 0,
        "cacheScope": "private",
    })
}

pub(super) fn pending_events(
    pending: PendingReply,
) -> BoxStream<'static, Result<sse::Event, String>> {
    futures::stream::unfold(pending, |mut p| async move {
        p.next()
            .await
            .map(|v| (Ok(sse::Event::message(v.to_string())), p))
    })
    .boxed()
}

/// `subscriptions/listen` (2026-07-28): an acknowledgement, then the upstream's notifications
/// until the client closes the stream (encoded events, for [`relay`]).
pub(super) fn listen(
    shared: &Arc<SharedUpstream>,
    id: Value,
    params: serde_json::Map<String, Value>,
) -> BoxStream<'static, Bytes> {
    let rx = shared.subscribe();
    let honored = listen_filter(&params);
    let stamp = move |mut message: Value| {
        if let Some(obj) = message.as_object_mut() {
            let params = obj.entry("params").or_insert(json!({}));
            params["_meta"]["io.modelcontextprotocol/subscriptionId"] = id.clone();
        }
        message
    };
    let ack = stamp(json!({
        "jsonrpc": "2.0",
        "method": "notifications/subscriptions/acknowledged",
        "params": {"notifications": honored.clone()},
    }));
    let wanted: Vec<&'static str> = [
        ("toolsListChanged", "notifications/tools/list_changed"),
        ("promptsListChanged", "notifications/prompts/list_changed"),
        (
            "resourcesListChanged",
            "notifications/resources/list_changed",
        ),
    ]
    .into_iter()
    .filter(|(key, _)| honored.get(*key) == Some(&Value::Bool(true)))
    .map(|(_, method)| method)
    .collect();
    let notifications = BroadcastStream::new(rx).filter_map(move |n| {
        let keep = n.ok().filter(|n| {
            let method = n.get("method").and_then(Value::as_str).unwrap_or("");
            wanted.contains(&method)
        });
        futures::future::ready(keep.map(|n| sse::Event::message(stamp(n).to_string()).encode()))
    });
    let first = futures::stream::once(futures::future::ready(
        sse::Event::message(ack.to_string()).encode(),
    ));
    first.chain(notifications).boxed()
}

/// The part of a listen request's `notifications` filter a shared upstream can honor: list
/// changes. Resource subscriptions are per client, which a shared session cannot keep apart.
pub(super) fn listen_filter(
    params: &serde_json::Map<String, Value>,
) -> serde_json::Map<String, Value> {
    let requested = params.get("notifications").and_then(Value::as_object);
    let mut honored = serde_json::Map::new();
    for key in [
        "toolsListChanged",
        "promptsListChanged",
        "resourcesListChanged",
    ] {
        if requested.and_then(|r| r.get(key)) == Some(&Value::Bool(true)) {
            honored.insert(key.to_owned(), Value::Bool(true));
        }
    }
    honored
}
