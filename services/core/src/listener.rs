//! How every mcpgw HTTP listener accepts and keeps connections, so that no client can starve
//! the others of descriptors (see `docs/reliability.md`).
//!
//! Rules of this module:
//! - A connection must send its first request head within `header_read_timeout_seconds` of
//!   being accepted; after a request, hyper's header timer (set to `idle_timeout_seconds`)
//!   bounds the keep-alive wait and the next head together. Slow or half-open clients are
//!   therefore closed, not kept forever.
//! - One [`Listeners`] per service holds its connection cap (all its listeners share it). At
//!   the cap the oldest connection with no request in flight is closed to make room; when every
//!   connection is busy the accept loop waits (new connections queue in the kernel's backlog).
//!   Both, and accept errors such as `EMFILE`, are counted in metrics and logged at most once
//!   per [`LOG_EVERY`].
//! - On stop, connections with no request in flight close at once; the others finish their
//!   request (hyper's graceful shutdown) and close.
//! - An answer sent before the request body was read to its end (401, 404, 413, …) carries
//!   `Connection: close` on HTTP/1: hyper closes such a connection after the answer, and a
//!   pooled client that was not told would send its next request into a closing socket.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::header::{CONNECTION, HeaderValue};
use http::{Request, Response, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus::{IntCounter, IntGauge, Registry};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// At most one log line per this long about the cap or accept errors.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The `[listener]` section every service's configuration has.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Seconds a new connection has to send its first request head (nginx
    /// `client_header_timeout`: 60).
    pub header_read_timeout_seconds: u64,
    /// Seconds a kept-alive connection may wait for (and read) its next request head (nginx
    /// `keepalive_timeout`: 75, above the 60 s idle timeout of an AWS load balancer so that the
    /// balancer, not the service, closes idle connections first).
    pub idle_timeout_seconds: u64,
    /// Most connections open at once over all of the service's listeners; 0 = half the
    /// process's descriptor limit (the other half is for upstream connections, the store and
    /// files).
    pub max_connections: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_seconds: 60,
            idle_timeout_seconds: 75,
            max_connections: 0,
        }
    }
}

impl ListenerConfig {
    /// Checks the values; the error names the key below `listener.`.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if !(1..=3600).contains(&self.header_read_timeout_seconds) {
            return Err(("header_read_timeout_seconds", "must be between 1 and 3600"));
        }
        if !(1..=3600).contains(&self.idle_timeout_seconds) {
            return Err(("idle_timeout_seconds", "must be between 1 and 3600"));
        }
        if self.max_connections > 1_000_000 {
            return Err(("max_connections", "must be at most 1000000 (0 = derived)"));
        }
        Ok(())
    }

    /// The connection cap: the configured one, or half the soft descriptor limit.
    pub fn cap(&self) -> usize {
        if self.max_connections > 0 {
            return self.max_connections;
        }
        (descriptor_limit().unwrap_or(1024) / 2).max(16)
    }
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits` (no `unsafe` needed);
/// `None` where that file does not exist or says "unlimited".
fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The listener metrics of one service.
#[derive(Clone)]
struct ListenerMetrics {
    open: IntGauge,
    evicted: IntCounter,
    waited: IntCounter,
    accept_errors: IntCounter,
    header_timeouts: IntCounter,
}

impl ListenerMetrics {
    fn new(registry: &Registry, service: &str) -> Self {
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(format!("{service}_{name}"), help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(format!("{service}_{name}"), help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        Self {
            open: gauge("listener_connections", "Client connections open now"),
            evicted: counter(
                "listener_connections_evicted_total",
                "Idle connections closed to make room at the connection cap",
            ),
            waited: counter(
                "listener_cap_waits_total",
                "Times the accept loop waited because every connection at the cap was busy",
            ),
            accept_errors: counter(
                "listener_accept_errors_total",
                "accept() failures other than a reset by the peer (e.g. out of descriptors)",
            ),
            header_timeouts: counter(
                "listener_header_timeouts_total",
                "Connections closed for not sending a request head in time",
            ),
        }
    }
}

/// One open connection, as the cap and the stop see it.
#[derive(Default)]
struct Conn {
    /// Requests whose response body has not finished.
    in_flight: AtomicUsize,
    /// A first request head arrived (the first-head deadline no longer applies).
    started: AtomicBool,
    /// Told to close when idle (the cap needs its slot).
    evict: Notify,
}

/// The connection cap of the metrics port (scrapers and health probes: a handful).
pub const OPERATIONS_CAP: usize = 64;

struct Shared {
    header_timeout: Duration,
    idle_timeout: Duration,
    cap: usize,
    permits: Arc<Semaphore>,
    /// Open connections by accept order: the first idle one is the oldest.
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    metrics: ListenerMetrics,
    /// When the last cap or accept-error line was logged, in ms since `epoch`.
    last_log_ms: AtomicU64,
    epoch: Instant,
}

/// The listeners of one service: their shared connection cap, timeouts and metrics.
#[derive(Clone)]
pub struct Listeners(Arc<Shared>);

impl Listeners {
    /// Registers the listener metrics in `registry`, prefixed with `service`.
    pub fn new(config: &ListenerConfig, registry: &Registry, service: &str) -> Self {
        Self::with_cap(
            Duration::from_secs(config.header_read_timeout_seconds),
            Duration::from_secs(config.idle_timeout_seconds),
            config.cap(),
            ListenerMetrics::new(registry, service),
        )
    }

    fn with_cap(
        header_timeout: Duration,
        idle_timeout: Duration,
        cap: usize,
        metrics: ListenerMetrics,
    ) -> Self {
        Self(Arc::new(Shared {
            header_timeout,
            idle_timeout,
            cap,
            permits: Arc::new(Semaphore::new(cap)),
            conns: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            metrics,
            last_log_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }))
    }

    /// The connection cap in force.
    pub fn cap(&self) -> usize {
        self.0.cap
    }

    /// Listeners for the metrics port: the same timeouts and metrics, but a cap of their own
    /// ([`OPERATIONS_CAP`]). Sharing the data listeners' cap would let clients that hold every
    /// slot with busy connections (10,000 open SSE streams, say) keep the scraper out, and the
    /// alarms with it, exactly when they are needed.
    pub fn for_operations(&self) -> Self {
        let s = &self.0;
        Self::with_cap(
            s.header_timeout,
            s.idle_timeout,
            OPERATIONS_CAP,
            s.metrics.clone(),
        )
    }

    /// Serves `router` on `listener` until `stop` turns true; the task ends when every
    /// connection has closed.
    pub fn serve(
        &self,
        listener: TcpListener,
        router: axum::Router,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let shared = Arc::clone(&self.0);
        tokio::spawn(async move {
            // Each connection task holds a clone; `closed()` resolves when all are gone.
            let (alive, all_closed) = tokio::sync::mpsc::channel::<()>(1);
            let mut all_closed = all_closed;
            'accept: loop {
                let permit = match Arc::clone(&shared.permits).try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        shared.metrics.waited.inc();
                        shared.log_limited(|| {
                            tracing::warn!(
                                listener.cap = shared.cap,
                                "connection cap reached: closing the oldest idle connections, \
                                 new ones wait (see docs/reliability.md)"
                            )
                        });
                        // Evict again every 100 ms: an idle connection picked may have begun
                        // a request before it saw the notice.
                        loop {
                            shared.evict_oldest_idle();
                            tokio::select! {
                                p = Arc::clone(&shared.permits).acquire_owned() => {
                                    break p.expect("the semaphore is never closed");
                                }
                                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                                _ = stop.wait_for(|s| *s) => break 'accept,
                            }
                        }
                    }
                };
                let accepted = tokio::select! {
                    r = listener.accept() => r,
                    _ = stop.wait_for(|s| *s) => break,
                };
                match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(Arc::clone(&shared).connection(
                            stream,
                            peer,
                            router.clone(),
                            stop.clone(),
                            permit,
                            alive.clone(),
                        ));
                    }
                    Err(e) if is_connection_error(&e) => {}
                    Err(e) => {
                        shared.metrics.accept_errors.inc();
                        shared.log_limited(
                            || tracing::error!(error = %e, "accept error: waiting 100 ms"),
                        );
                        // Out of descriptors: an idle connection's is the one we can free.
                        shared.evict_oldest_idle();
                        drop(permit);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            drop(listener);
            drop(alive);
            let _ = all_closed.recv().await;
        })
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

impl Shared {
    /// Tells the oldest connection with no request in flight to close; false if none is idle.
    fn evict_oldest_idle(&self) -> bool {
        let conns = self.conns.lock().expect("listener map lock");
        let idle = conns
            .values()
            .find(|c| c.in_flight.load(Ordering::Acquire) == 0);
        match idle {
            Some(c) => {
                c.evict.notify_one();
                self.metrics.evicted.inc();
                true
            }
            None => false,
        }
    }

    fn log_limited(&self, log: impl FnOnce()) {
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.last_log_ms.load(Ordering::Relaxed);
        let every = LOG_EVERY.as_millis() as u64;
        if (last == 0 || now.saturating_sub(last) >= every)
            && self
                .last_log_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log();
        }
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        router: axum::Router,
        mut stop: watch::Receiver<bool>,
        permit: OwnedSemaphorePermit,
        _alive: tokio::sync::mpsc::Sender<()>,
    ) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::default());
        self.conns
            .lock()
            .expect("listener map lock")
            .insert(id, Arc::clone(&conn));
        self.metrics.open.inc();

        let tracked = Arc::clone(&conn);
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let router = router.clone();
            let guard = InFlight::begin(&tracked);
            let version = req.version();
            let (mut req, body_read) = track_body(req);
            req.extensions_mut().insert(ConnectInfo(peer));
            async move {
                let response = router.oneshot(req).await.unwrap_or_else(|e| match e {});
                Ok::<_, Infallible>(finish(response, version, &body_read, guard))
            }
        });

        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.idle_timeout);
        builder.http2().enable_connect_protocol();
        let mut served =
            pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), service));
        let mut first_head = pin!(tokio::time::sleep(self.header_timeout));
        let mut stopping = false;
        loop {
            tokio::select! {
                result = served.as_mut() => {
                    if let Err(e) = result {
                        tracing::trace!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                _ = &mut first_head, if !conn.started.load(Ordering::Acquire) => {
                    // The guard above is read when `select!` starts, not when the timer fires:
                    // a connection that has sent its first head since is not timed out (it was:
                    // every connection closed 60 s after it opened, busy or not).
                    if conn.started.load(Ordering::Acquire) {
                        continue;
                    }
                    self.metrics.header_timeouts.inc();
                    break;
                }
                _ = conn.evict.notified() => {
                    if conn.in_flight.load(Ordering::Acquire) == 0 {
                        break;
                    }
                }
                _ = stop.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    if conn.in_flight.load(Ordering::Acquire) == 0 {
                        break;
                    }
                    served.as_mut().graceful_shutdown();
                }
            }
        }
        self.conns.lock().expect("listener map lock").remove(&id);
        self.metrics.open.dec();
        drop(permit);
    }
}

/// Counts a request in flight on its connection until its response body is dropped.
struct InFlight(Arc<Conn>);

impl InFlight {
    fn begin(conn: &Arc<Conn>) -> Self {
        conn.started.store(true, Ordering::Release);
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(conn))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The request with its body wrapped to note when it was read to its end.
fn track_body(req: Request<Incoming>) -> (Request<Body>, Arc<AtomicBool>) {
    let done = Arc::new(AtomicBool::new(req.body().is_end_stream()));
    let flag = Arc::clone(&done);
    let req = req.map(|inner| Body::new(TrackedBody { inner, done: flag }));
    (req, done)
}

/// The response as sent: `Connection: close` if the body was left unread on HTTP/1 (HTTP/2
/// forbids the header and resets just the stream), and the in-flight count held until the
/// response body is done.
fn finish(
    mut response: Response<Body>,
    version: Version,
    body_read: &AtomicBool,
    guard: InFlight,
) -> Response<Body> {
    if version <= Version::HTTP_11 && !body_read.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response.map(|inner| {
        Body::new(GuardedBody {
            inner,
            _guard: guard,
        })
    })
}

struct TrackedBody {
    inner: Incoming,
    done: Arc<AtomicBool>,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.done.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

struct GuardedBody {
    inner: Body,
    _guard: InFlight,
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn busy_connections_at_the_cap_do_not_keep_the_metrics_port_out() {
        let config = ListenerConfig {
            max_connections: 2,
            ..ListenerConfig::default()
        };
        let listeners = Listeners::new(&config, &Registry::new(), "test");
        let (_stop_tx, stop) = watch::channel(false);
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_addr = api.local_addr().unwrap();
        let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ops_addr = ops.local_addr().unwrap();
        // Requests on the data port never finish: their connections stay busy.
        let hang = axum::Router::new().route(
            "/hang",
            axum::routing::get(std::future::pending::<&'static str>),
        );
        let metrics = axum::Router::new().route("/metrics", axum::routing::get(|| async { "ok" }));
        listeners.serve(api, hang, stop.clone());
        listeners.for_operations().serve(ops, metrics, stop);
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = tokio::net::TcpStream::connect(api_addr).await.unwrap();
            s.write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            held.push(s);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Twice: each accept loop holds one permit while it waits, so a first scrape could
        // get through on that one alone.
        for _ in 0..2 {
            let answer = tokio::time::timeout(Duration::from_secs(5), async {
                let mut s = tokio::net::TcpStream::connect(ops_addr).await.unwrap();
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .await
                    .unwrap();
                let mut text = String::new();
                s.read_to_string(&mut text).await.unwrap();
                text
            })
            .await
            .expect("the metrics port answers while the data port is at its cap");
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(answer.ends_with("ok"), "{answer}");
        }
    }

    #[tokio::test]
    async fn a_connection_that_sent_its_first_head_outlives_the_first_head_deadline() {
        let config = ListenerConfig {
            header_read_timeout_seconds: 1,
            ..ListenerConfig::default()
        };
        let listeners = Listeners::new(&config, &Registry::new(), "test");
        let (_stop_tx, stop) = watch::channel(false);
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = api.local_addr().unwrap();
        let router = axum::Router::new().route("/ok", axum::routing::get(|| async { "ok" }));
        listeners.serve(api, router, stop);
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = vec![0u8; 4096];
        for round in 0..2 {
            s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("an answer")
                .unwrap();
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(text.starts_with("HTTP/1.1 200"), "round {round}: {text}");
            // Past the first-head deadline, well inside the keep-alive idle timeout.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }

    #[test]
    fn the_derived_cap_is_half_the_descriptor_limit() {
        let config = ListenerConfig::default();
        let limit = descriptor_limit().expect("linux has /proc/self/limits");
        assert_eq!(config.cap(), (limit / 2).max(16));
        let fixed = ListenerConfig {
            max_connections: 7,
            ..ListenerConfig::default()
        };
        assert_eq!(fixed.cap(), 7);
    }
}
