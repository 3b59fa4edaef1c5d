//! Audit events: every tool call and every denied attempt, logged as JSON at once and sent to
//! the registry's audit store in batches.
//!
//! The queue is bounded: while the registry is unreachable events wait (and are retried, with
//! the same ids, so a batch whose answer was lost is not stored twice); when the queue is full
//! the oldest are dropped and counted, never the request. The JSON log line is written before
//! the event is queued, so the log (CloudWatch) always holds every event.
//!
//! Refusals before the caller is known go through [`AuditSink::record_refusal`], which
//! coalesces them (see `refusals`): the sender closes their windows as it runs, and all of
//! them when it stops.

mod refusals;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcpgw_core::gateway_sync::{AuditDecision, McpAuditEvent};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Notify, watch};

use crate::metrics::Metrics;
use refusals::Refusals;

pub struct AuditSink {
    queue: Mutex<VecDeque<Queued>>,
    capacity: usize,
    batch_size: usize,
    wake: Notify,
    metrics: Metrics,
    refusals: Mutex<Refusals>,
}

/// An event as the registry receives it: serialized once, when recorded, so a batch is the
/// events' bytes joined (no copy of its strings, no second serialization, even when a batch
/// is sent again).
struct Queued {
    id: uuid::Uuid,
    json: bytes::Bytes,
}

impl AuditSink {
    pub fn new(capacity: usize, batch_size: usize, metrics: Metrics) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(VecDeque::new()),
            capacity,
            batch_size,
            wake: Notify::new(),
            metrics,
            refusals: Mutex::new(Refusals::new(refusals::WINDOW, refusals::MAX_KEYS)),
        })
    }

    /// Records a refusal made before the caller is known (its subject and issuer are empty),
    /// coalesced per server and reason: the first of a window at once, the rest as one event
    /// with their `count` when the window closes.
    pub fn record_refusal(&self, event: McpAuditEvent) {
        let mut now = Vec::new();
        self.refusals
            .lock()
            .expect("audit refusals")
            .admit(event, Instant::now(), &mut now);
        for event in now {
            self.record(event);
        }
    }

    /// Records the coalesced refusals of windows that have closed (all of them at shutdown).
    fn close_refusal_windows(&self, shutdown: bool) {
        let mut closed = Vec::new();
        let now = (!shutdown).then(Instant::now);
        self.refusals
            .lock()
            .expect("audit refusals")
            .close(now, &mut closed);
        for event in closed {
            self.record(event);
        }
    }

    pub fn record(&self, event: McpAuditEvent) {
        // Fields, not a JSON string inside the JSON line: cheaper, and CloudWatch Logs Insights
        // can query each one.
        // Strings, not `%` (Display goes through the formatting machinery, a third of the line's
        // cost). `decision` keeps the capitalized form the runbook's queries filter on.
        let mut id = uuid::Uuid::encode_buffer();
        tracing::info!(
            target: "mcpgw::audit",
            event_id = &*event.id.hyphenated().encode_lower(&mut id),
            server = event.server.as_str(),
            method = event.method.as_str(),
            tool = event.tool.as_deref(),
            subject = event.subject.as_str(),
            client_id = event.client_id.as_deref(),
            decision = match event.decision {
                AuditDecision::Allowed => "Allowed",
                AuditDecision::Denied => "Denied",
            },
            reason = event.reason.as_str(),
            matched_rule = event.matched_rule.as_deref(),
            status = event.status.as_str(),
            latency_ms = event.latency_ms,
            count = event.count,
            "mcp audit event"
        );
        let queued = Queued {
            id: event.id,
            json: serde_json::to_vec(&event)
                .expect("an audit event serializes")
                .into(),
        };
        let mut queue = self.queue.lock().expect("audit queue");
        if queue.len() >= self.capacity {
            queue.pop_front();
            self.metrics.audit_dropped.inc();
        }
        queue.push_back(queued);
        self.metrics.audit_queue.set(queue.len() as i64);
        // A full batch goes at once; smaller ones wait for the flush interval, so the registry
        // stores few large batches rather than many small ones.
        if queue.len() >= self.batch_size {
            self.wake.notify_one();
        }
    }

    /// Sends batches to the registry until `stop`; then one last attempt to flush.
    pub async fn run(
        self: Arc<Self>,
        http: reqwest::Client,
        registry_url: String,
        api_key: Option<SecretString>,
        batch_size: usize,
        flush: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let url = format!(
            "{}/api/v1/gateway/audit",
            registry_url.trim_end_matches('/')
        );
        let mut backoff = Duration::from_millis(500);
        loop {
            let (stopping, flush_all) = tokio::select! {
                _ = stop.wait_for(|s| *s) => (true, true),
                _ = self.wake.notified() => (false, false),
                _ = tokio::time::sleep(flush) => (false, true),
            };
            self.close_refusal_windows(stopping);
            loop {
                // Woken by a full batch, only full batches go: events that arrive while one is
                // in flight wait for the next full batch or the flush interval. (Sending
                // whatever had arrived kept the registry busy with batches of a few events.)
                // Handles under the lock (a count each), the body built outside it.
                let batch: Vec<(uuid::Uuid, bytes::Bytes)> = {
                    let queue = self.queue.lock().expect("audit queue");
                    if queue.is_empty() || (!flush_all && queue.len() < batch_size) {
                        break;
                    }
                    queue
                        .iter()
                        .take(batch_size)
                        .map(|q| (q.id, q.json.clone()))
                        .collect()
                };
                let n = batch.len();
                let ids: std::collections::HashSet<uuid::Uuid> =
                    batch.iter().map(|(id, _)| *id).collect();
                let mut request = http
                    .post(&url)
                    .timeout(Duration::from_secs(10))
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(batch_body(&batch));
                if let Some(key) = &api_key {
                    request = request.bearer_auth(key.expose_secret());
                }
                match request.send().await {
                    Ok(r) if r.status().is_success() => {
                        self.remove(&ids);
                        self.metrics.audit_sent.inc_by(n as u64);
                        backoff = Duration::from_millis(500);
                    }
                    Ok(r)
                        if r.status().is_client_error()
                            && !matches!(r.status().as_u16(), 401 | 403 | 408 | 429) =>
                    {
                        // Resending the same batch would be refused again and block the rest;
                        // its events are in the log.
                        let body = r.text().await.unwrap_or_default();
                        tracing::error!(body = %body.chars().take(300).collect::<String>(), events = n, "the registry refused an audit batch as invalid; dropped (the events are in this log)");
                        self.remove(&ids);
                        self.metrics.audit_dropped.inc_by(n as u64);
                    }
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        tracing::warn!(%status, body = %body.chars().take(300).collect::<String>(), "the registry refused an audit batch; will retry");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "sending audit events failed; will retry");
                        break;
                    }
                }
            }
            if stopping {
                return;
            }
            if !self.queue.lock().expect("audit queue").is_empty() {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => {},
                    _ = tokio::time::sleep(backoff) => {},
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }

    fn remove(&self, ids: &std::collections::HashSet<uuid::Uuid>) {
        let mut queue = self.queue.lock().expect("audit queue");
        queue.retain(|e| !ids.contains(&e.id));
        self.metrics.audit_queue.set(queue.len() as i64);
    }

    pub fn pending(&self) -> usize {
        self.queue.lock().expect("audit queue").len()
    }
}

/// `{"events":[…]}`, an [`McpAuditBatch`](mcpgw_core::gateway_sync::McpAuditBatch), from events serialized one by one.
fn batch_body(events: &[(uuid::Uuid, bytes::Bytes)]) -> Vec<u8> {
    let size = events.iter().map(|(_, json)| json.len() + 1).sum::<usize>();
    let mut body = Vec::with_capacity(size + 16);
    body.extend_from_slice(br#"{"events":["#);
    for (i, (_, json)) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(json);
    }
    body.extend_from_slice(b"]}");
    body
}

#[cfg(test)]
mod tests {
    //! The sender against a recording receiver (an axum handler standing in for the registry's
    //! audit endpoint: only batch sizes matter here; the real endpoint is exercised by the
    //! integration tests).
    use super::*;
    use mcpgw_core::gateway_sync::McpAuditBatch;
    use std::sync::Mutex as StdMutex;

    fn event(n: u32) -> McpAuditEvent {
        serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::now_v7(), "at": "2026-01-01T00:00:00Z", "request_id": format!("r{n}"),
            "gateway": "gw-test", "server": "s", "method": "tools/call", "tool": "t",
            "subject": "alice", "issuer": "https://idp", "decision": "allowed",
            "reason": "allowed", "status": "ok", "latency_ms": 1.0
        }))
        .unwrap()
    }

    /// Starts the receiver; every batch's size is recorded, and each answer waits for a permit
    /// from `gate`, so the test decides when a batch in flight completes.
    async fn receiver(
        sizes: Arc<StdMutex<Vec<usize>>>,
        gate: Arc<tokio::sync::Semaphore>,
    ) -> String {
        let app = axum::Router::new().route(
            "/api/v1/gateway/audit",
            axum::routing::post(move |axum::Json(b): axum::Json<McpAuditBatch>| {
                let (sizes, gate) = (sizes.clone(), gate.clone());
                async move {
                    sizes.lock().unwrap().push(b.events.len());
                    gate.acquire().await.unwrap().forget();
                    "{}"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..200 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[test]
    fn a_batch_body_is_the_batch_of_the_events_as_recorded() {
        let events: Vec<McpAuditEvent> = (0..3).map(event).collect();
        let queued: Vec<(uuid::Uuid, bytes::Bytes)> = events
            .iter()
            .map(|e| (e.id, serde_json::to_vec(e).unwrap().into()))
            .collect();
        let batch: McpAuditBatch = serde_json::from_slice(&batch_body(&queued)).unwrap();
        assert_eq!(batch.events, events);
        let empty: McpAuditBatch = serde_json::from_slice(&batch_body(&[])).unwrap();
        assert!(empty.events.is_empty());
    }

    #[tokio::test]
    async fn events_that_arrive_during_a_send_wait_for_a_full_batch_or_the_flush() {
        let sizes = Arc::new(StdMutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let url = receiver(sizes.clone(), gate.clone()).await;
        let sink = AuditSink::new(1000, 5, Metrics::new());
        let (stop_tx, stop_rx) = watch::channel(false);
        let flush = Duration::from_millis(600);
        let task = tokio::spawn(Arc::clone(&sink).run(
            reqwest::Client::new(),
            url,
            None,
            5,
            flush,
            stop_rx,
        ));
        for n in 0..5 {
            sink.record(event(n));
        }
        wait_until("the full batch", || sizes.lock().unwrap().len() == 1).await;
        // Two more arrive while the full batch is in flight.
        sink.record(event(5));
        sink.record(event(6));
        gate.add_permits(100);
        tokio::time::sleep(flush / 3).await;
        assert_eq!(
            *sizes.lock().unwrap(),
            vec![5],
            "a partial batch went out before the flush interval"
        );
        assert_eq!(sink.pending(), 2);
        // The flush interval sends the rest.
        wait_until("the flush", || sizes.lock().unwrap().len() == 2).await;
        assert_eq!(*sizes.lock().unwrap(), vec![5, 2]);
        wait_until("the queue to empty", || sink.pending() == 0).await;
        // Stopping sends whatever is left at once.
        sink.record(event(7));
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(*sizes.lock().unwrap(), vec![5, 2, 1]);
    }
}
