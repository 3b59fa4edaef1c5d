//! The HTTP client of streamable HTTP upstreams, on the request path of every proxied call:
//! hyper's pooled client over a connector that resolves names through the egress policy (the
//! address connected to is an address the policy allowed, checked on every new connection),
//! TLS by rustls with the platform's roots, HTTP/1.1 or HTTP/2 as ALPN settles it, no
//! redirects (a 3xx is an answer) and no proxy (it would resolve names out of the policy's
//! sight). Literal IP hosts skip the resolver; routes check them when they are built.
//!
//! Not `reqwest`, which the rest of the gateway uses for its own calls: on this path its URL
//! re-parse, redirect layer and request copies cost about as much as the whole hyper client.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyDataStream, BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use mcpgw_core::egress::EgressPolicy;

/// A request body: the client's message, or nothing (GET, DELETE).
pub type UpstreamBody = Full<Bytes>;
pub type UpstreamResponse = http::Response<hyper::body::Incoming>;
pub type UpstreamError = hyper_util::client::legacy::Error;

#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector<EgressDns>>, UpstreamBody>,
}

impl UpstreamClient {
    pub fn new(connect_timeout: Duration, egress: Arc<EgressPolicy>) -> anyhow::Result<Self> {
        let mut http = HttpConnector::new_with_resolver(EgressDns { policy: egress });
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let tls = <rustls::ClientConfig as rustls_platform_verifier::ConfigVerifierExt>::with_platform_verifier()
            .map_err(|e| anyhow::anyhow!("the TLS roots of this platform could not be loaded: {e}"))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(Self { client })
    }

    pub async fn send(
        &self,
        request: http::Request<UpstreamBody>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        self.client.request(request).await
    }
}

/// The body of an answer, whole, if it is at most `max` bytes and arrives unbroken.
pub async fn read_limited(response: UpstreamResponse, max: usize) -> Option<Bytes> {
    let body = Limited::new(response.into_body(), max);
    Some(body.collect().await.ok()?.to_bytes())
}

/// The body of an answer as it arrives.
pub fn body_chunks(
    response: UpstreamResponse,
) -> impl futures::Stream<Item = Result<Bytes, hyper::Error>> + Send + 'static {
    BodyDataStream::new(response.into_body())
}

/// Name resolution through the egress policy, for hyper's connector.
#[derive(Clone)]
struct EgressDns {
    policy: Arc<EgressPolicy>,
}

type Resolving = Pin<
    Box<
        dyn Future<
                Output = Result<
                    std::vec::IntoIter<SocketAddr>,
                    Box<dyn std::error::Error + Send + Sync>,
                >,
            > + Send,
    >,
>;

impl tower::Service<Name> for EgressDns {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move { Ok(policy.allowed_addrs(name.as_str()).await?.into_iter()) })
    }
}
