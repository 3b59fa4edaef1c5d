//! The gateway's state: everything a request handler reaches. This module imports no handler
//! (handlers import it), so the request path has no import loop back through `app`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::audit::AuditSink;
use crate::caller::Authenticator;
use crate::config::GatewayConfig;
use crate::limits::{RateLimiter, StreamCounter};
use crate::metrics::Metrics;
use crate::session::SessionSealer;
use crate::sync::RouteTable;

/// Everything a request handler reaches.
pub struct Gateway {
    pub config: GatewayConfig,
    pub public_base: String,
    pub instance: String,
    pub table: Arc<RouteTable>,
    pub auth: Authenticator,
    pub sessions: SessionSealer,
    /// Client for streamable HTTP upstreams: no redirects, egress checked on every connection.
    pub upstream_http: crate::upstream_client::UpstreamClient,
    pub metrics: Metrics,
    pub audit: Arc<AuditSink>,
    pub rate: RateLimiter,
    pub streams: StreamCounter,
    pub legacy: Arc<LegacyConnections>,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    /// The aggregated endpoint `/mcp`: its tool catalog and upstream sessions.
    pub aggregate: crate::aggregate::Aggregator,
}

/// Open HTTP+SSE (2024-11-05) client streams of this process, by their `sessionId`.
#[derive(Default)]
pub struct LegacyConnections {
    open: Mutex<HashMap<String, LegacyConnection>>,
}

pub struct LegacyConnection {
    pub server: String,
    pub caller: String,
    pub tx: mpsc::Sender<Value>,
    /// The gateway session id once the client has initialized.
    pub session: Mutex<Option<String>>,
}

impl LegacyConnections {
    pub fn insert(&self, id: String, conn: LegacyConnection) {
        self.open.lock().expect("legacy").insert(id, conn);
    }

    pub fn remove(&self, id: &str) {
        self.open.lock().expect("legacy").remove(id);
    }

    /// The stream and session of `id`, if it belongs to `server` and `caller`.
    pub fn lookup(
        &self,
        id: &str,
        server: &str,
        caller: &str,
    ) -> Option<(mpsc::Sender<Value>, Option<String>)> {
        let open = self.open.lock().expect("legacy");
        let conn = open.get(id)?;
        if conn.server != server || conn.caller != caller {
            return None;
        }
        let session = conn.session.lock().expect("legacy session").clone();
        Some((conn.tx.clone(), session))
    }

    pub fn set_session(&self, id: &str, session: String) {
        if let Some(conn) = self.open.lock().expect("legacy").get(id) {
            *conn.session.lock().expect("legacy session") = Some(session);
        }
    }
}
