//! The live routing table: built from a registry snapshot, swapped whole when a new one arrives.
//!
//! A route whose server did not change (same id and revision) is carried over as it is, so its
//! running stdio process, upstream connection, learned tool hints and limits survive unrelated
//! registrations. A route whose server changed only in what does not reach the upstream (its
//! tools, their approval, lifecycle, limits) is rebuilt around the same shared upstream, so
//! recording or approving a stdio server's tools does not restart it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use http::{HeaderMap, HeaderName, HeaderValue};
use mcpgw_core::domain::{Endpoint, UpstreamAuth};
use mcpgw_core::gateway_sync::{GatewaySnapshot, RouteEntry, RouteHealth};
use mcpgw_core::policy::{CompiledPolicy, ScopeDocument};
use mcpgw_core::secrets::Keyring;
use mcpgw_core::time::Timestamp;
use mcpgw_core::upstream_auth::UpstreamCredentials;
use secrecy::{ExposeSecret, SecretString};

use tokio::sync::Semaphore;

use crate::shared::SharedUpstream;

/// How the gateway reaches one server.
pub enum Upstream {
    /// Streamable HTTP: each client request is forwarded as an HTTP request; the upstream's
    /// sessions are carried inside the gateway's session ids.
    Http {
        /// Parsed once here, not per request.
        uri: http::Uri,
        /// Custom headers from the registry (opened).
        headers: HeaderMap,
        credentials: Option<Arc<UpstreamCredentials>>,
    },
    /// stdio and the legacy HTTP+SSE transport: the gateway holds one upstream session per
    /// process and multiplexes its clients onto it.
    Shared(Arc<SharedUpstream>),
}

pub struct Route {
    pub entry: RouteEntry,
    pub upstream: Upstream,
    /// Requests in flight to this server from this process.
    pub in_flight: Arc<Semaphore>,
    /// Tool name → declares `readOnlyHint: true`; from the registry, then from every
    /// `tools/list` answer that passes through.
    pub read_only_hints: RwLock<HashMap<String, bool>>,
    /// Why the route cannot be used (a credential that does not open); requests get 502.
    pub broken: Option<String>,
    /// The approved tool definitions and what the upstream lists live.
    pub integrity: crate::transform::Integrity,
}

impl Route {
    pub fn path(&self) -> &str {
        self.entry.path.as_str()
    }

    /// Whether `tool` is known to be read-only (unknown tools are not).
    pub fn is_read_only(&self, tool: &str) -> bool {
        self.read_only_hints
            .read()
            .expect("hints lock")
            .get(tool)
            .copied()
            .unwrap_or(false)
    }

    pub fn learn_read_only(&self, hints: impl IntoIterator<Item = (String, bool)>) {
        let mut map = self.read_only_hints.write().expect("hints lock");
        for (name, read_only) in hints {
            map.insert(name, read_only);
        }
    }
}

/// Everything a request needs from the snapshot.
pub struct Routes {
    pub version: String,
    pub generated_at: Timestamp,
    pub servers: HashMap<String, Arc<Route>>,
    pub policy: Arc<CompiledPolicy>,
    /// The documents the policy was compiled from (to name the scopes a 403 asks for).
    pub documents: Arc<Vec<ScopeDocument>>,
    /// The registry's health status of routed servers, by path (absent: unknown).
    pub health: BTreeMap<String, RouteHealth>,
}

impl Routes {
    pub fn empty() -> Self {
        Self {
            version: String::new(),
            generated_at: Timestamp::now(),
            servers: HashMap::new(),
            policy: Arc::new(CompiledPolicy::empty(0)),
            documents: Arc::new(Vec::new()),
            health: BTreeMap::new(),
        }
    }

    pub fn get(&self, path: &str) -> Option<&Arc<Route>> {
        self.servers.get(path)
    }
}

/// What building a route needs besides the entry.
pub struct RouteContext<'a> {
    pub keyring: Option<&'a Keyring>,
    pub default_concurrency: u32,
    pub shared: &'a crate::shared::SharedSettings,
    pub egress: &'a mcpgw_core::egress::EgressPolicy,
    pub auth: &'a mcpgw_core::upstream_auth::UpstreamAuthContext,
}

/// Builds the table for `snapshot`, reusing unchanged routes of `previous`.
pub fn build(snapshot: &GatewaySnapshot, previous: &Routes, ctx: &RouteContext<'_>) -> Routes {
    let mut servers = HashMap::with_capacity(snapshot.servers.len());
    for entry in &snapshot.servers {
        let path = entry.path.as_str().to_owned();
        if let Some(old) = previous.servers.get(&path)
            && old.entry.id == entry.id
            && old.entry.revision == entry.revision
            && old.entry == *entry
        {
            servers.insert(path, Arc::clone(old));
            continue;
        }
        let kept = previous
            .servers
            .get(&path)
            .and_then(|old| same_upstream(old, entry));
        servers.insert(path, Arc::new(build_route(entry, kept, ctx)));
    }
    let (policy, documents) =
        if previous.policy.version() == snapshot.policy.version && !previous.version.is_empty() {
            (
                Arc::clone(&previous.policy),
                Arc::clone(&previous.documents),
            )
        } else {
            (
                Arc::new(snapshot.policy.compile()),
                Arc::new(snapshot.policy.documents.clone()),
            )
        };
    Routes {
        version: snapshot.version.clone(),
        generated_at: snapshot.generated_at,
        servers,
        policy,
        documents,
        health: snapshot.health.clone(),
    }
}

/// The shared upstream of `old` when `entry` reaches the upstream exactly as it did (same
/// server, endpoint, environment, credentials and headers, all still sealed the same).
fn same_upstream(old: &Route, entry: &RouteEntry) -> Option<Upstream> {
    let Upstream::Shared(shared) = &old.upstream else {
        return None;
    };
    let same = old.broken.is_none()
        && old.entry.id == entry.id
        && old.entry.endpoint == entry.endpoint
        && old.entry.upstream_auth == entry.upstream_auth
        && old.entry.custom_headers == entry.custom_headers;
    same.then(|| Upstream::Shared(Arc::clone(shared)))
}

fn build_route(entry: &RouteEntry, kept: Option<Upstream>, ctx: &RouteContext<'_>) -> Route {
    let concurrency = entry
        .gateway
        .max_concurrency
        .unwrap_or(ctx.default_concurrency)
        .max(1) as usize;
    let hints = entry
        .tools
        .iter()
        .map(|t| (t.name.clone(), t.read_only))
        .collect();
    let opened = match kept {
        Some(upstream) => Ok(upstream),
        None => open_upstream(entry, ctx),
    };
    let (upstream, broken) = match opened {
        Ok(u) => (u, None),
        Err(why) => {
            tracing::error!(server = %entry.path, error = %why, "route unusable");
            (
                Upstream::Http {
                    uri: http::Uri::from_static("http://invalid.invalid/"),
                    headers: HeaderMap::new(),
                    credentials: None,
                },
                Some(why),
            )
        }
    };
    Route {
        entry: entry.clone(),
        upstream,
        in_flight: Arc::new(Semaphore::new(concurrency)),
        read_only_hints: RwLock::new(hints),
        broken,
        integrity: crate::transform::Integrity::new(entry),
    }
}

/// Opens a sealed value of `entry` (bound to its id and field, as the registry sealed it).
fn open(
    entry: &RouteEntry,
    keyring: Option<&Keyring>,
    field: &str,
    sealed: &mcpgw_core::secrets::SealedSecret,
) -> Result<SecretString, String> {
    let keyring = keyring.ok_or_else(|| {
        format!("{field} is sealed, but no secrets.sealing_key is configured on the gateway")
    })?;
    keyring
        .open(&entry.secret_context(field), sealed)
        .map_err(|e| format!("{field}: {e}"))
}

fn open_upstream(entry: &RouteEntry, ctx: &RouteContext<'_>) -> Result<Upstream, String> {
    let mut headers = HeaderMap::new();
    for (name, sealed) in &entry.custom_headers {
        let field = format!("custom_headers.{name}");
        // The registry refuses these; a record stored before that rule, or altered in the
        // database, must still not choose headers the platform sets (x-mcpgw-caller, …).
        if mcpgw_core::domain::is_platform_header(name) {
            tracing::warn!(server = %entry.path, header = %name, "custom header not sent: the platform sets or interprets it");
            continue;
        }
        let value = open(entry, ctx.keyring, &field, sealed)?;
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{field}: not a valid header name"))?;
        let mut value = HeaderValue::from_str(value.expose_secret())
            .map_err(|_| format!("{field}: not a valid header value"))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    let credentials = open_credentials(entry, ctx)?;
    match &entry.endpoint {
        Endpoint::StreamableHttp { url } => {
            let url = url::Url::parse(url).map_err(|e| format!("endpoint.url: {e}"))?;
            mcpgw_core::egress::check_literal_ip(ctx.egress, &url)?;
            let uri = url
                .as_str()
                .parse()
                .map_err(|e| format!("endpoint.url: not usable as an HTTP URI: {e}"))?;
            Ok(Upstream::Http {
                uri,
                headers,
                credentials,
            })
        }
        Endpoint::Sse { url } => {
            let url = url::Url::parse(url).map_err(|e| format!("endpoint.url: {e}"))?;
            mcpgw_core::egress::check_literal_ip(ctx.egress, &url)?;
            Ok(Upstream::Shared(SharedUpstream::sse(
                entry.path.as_str(),
                url,
                headers,
                credentials,
                ctx.shared,
            )))
        }
        Endpoint::Stdio { command, args, env } => {
            let mut opened = Vec::with_capacity(env.len());
            for (name, sealed) in env {
                let value = open(entry, ctx.keyring, &format!("endpoint.env.{name}"), sealed)?;
                opened.push((name.clone(), value));
            }
            Ok(Upstream::Shared(SharedUpstream::stdio(
                entry.path.as_str(),
                command.clone(),
                args.clone(),
                opened,
                ctx.shared,
            )))
        }
    }
}

fn open_credentials(
    entry: &RouteEntry,
    ctx: &RouteContext<'_>,
) -> Result<Option<Arc<UpstreamCredentials>>, String> {
    if matches!(entry.upstream_auth, UpstreamAuth::None) {
        return Ok(None);
    }
    UpstreamCredentials::from_auth(
        &entry.upstream_auth,
        |field, sealed| {
            let keyring = ctx
                .keyring
                .ok_or(mcpgw_core::secrets::SecretError::UnknownKey(
                    "(no secrets.sealing_key configured on the gateway)".to_owned(),
                ))?;
            keyring.open(&entry.secret_context(field), sealed)
        },
        ctx.auth,
    )
    .map(|c| Some(Arc::new(c)))
    .map_err(|e| e.to_string())
}
