//! Tool discovery of the stdio servers this process runs, reported to the registry
//! (`POST /api/v1/gateway/tools`), which cannot reach them itself.
//!
//! The registry records what is reported exactly as it records its own discovery of an HTTP
//! server (hashes, audit, the comparison with the approved tools), and its next snapshot
//! carries the result back: until a tool is approved there, the gateway withholds it (the
//! snapshot enforces tool integrity on every stdio route, recorded tools or not).
//!
//! Rules:
//! - Every stdio route is watched through its shared upstream (one watcher per upstream, which
//!   ends when the upstream is dropped with its route).
//! - Tools are listed (every page) on each start of the child and on the child's
//!   `notifications/tools/list_changed`. A child whose server has no tools recorded yet is
//!   started for it at once: a new registration is reviewable without waiting for a client.
//! - A listing that fails because the child does not start is not retried here: the next start
//!   lists again. A report the registry did not take (unreachable, 5xx) is sent again with a
//!   doubling delay; one it refused (4xx) is logged and dropped until the tools change.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use mcpgw_core::gateway_sync::StdioToolsReport;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::routes::Upstream;
use crate::shared::SharedUpstream;
use crate::sync::RouteTable;

/// The owner of listing requests on a shared session: no caller digest looks like it, so no
/// client can cancel a listing.
const LIST_OWNER: &str = "mcpgw-stdio-tools";
/// How long one `tools/list` page may take to be answered.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most pages read from one listing (as the registry's own discovery).
const MAX_PAGES: usize = 50;
/// The first and the longest delay before a report the registry did not take is sent again.
const RETRY_MIN: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// The reporter: watches every stdio route of the table.
pub struct StdioTools {
    pub table: Arc<RouteTable>,
    pub http: reqwest::Client,
    pub registry_url: String,
    pub api_key: Option<SecretString>,
    pub gateway: String,
}

/// Why one listing and report did not happen.
#[derive(Debug, thiserror::Error)]
enum ReportError {
    /// The child did not start or did not answer: its next start lists again.
    #[error("listing the tools failed: {0}")]
    Listing(String),
    /// The registry did not take the report: sent again later.
    #[error("the registry did not take the tools: {0}")]
    Unreachable(String),
    /// The registry refused it (an unknown server, a list it does not accept).
    #[error("the registry refused the tools ({status}): {body}")]
    Refused { status: u16, body: String },
}

impl StdioTools {
    /// Watches the table until `stop`.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut changes = self.table.subscribe();
        let mut watched: HashMap<String, Weak<SharedUpstream>> = HashMap::new();
        loop {
            let routes = self.table.current();
            for route in routes.servers.values() {
                let Upstream::Shared(shared) = &route.upstream else {
                    continue;
                };
                if !shared.is_stdio() || route.broken.is_some() {
                    continue;
                }
                let known = watched
                    .get(route.path())
                    .and_then(Weak::upgrade)
                    .is_some_and(|w| Arc::ptr_eq(&w, shared));
                if known {
                    continue;
                }
                watched.insert(route.path().to_owned(), Arc::downgrade(shared));
                tokio::spawn(Arc::clone(&self).watch(
                    route.path().to_owned(),
                    Arc::downgrade(shared),
                    route.entry.tools.is_empty(),
                    stop.clone(),
                ));
            }
            watched.retain(|_, w| w.strong_count() > 0);
            drop(routes);
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                changed = changes.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Lists and reports one upstream's tools whenever they may have changed, until the
    /// upstream is dropped or `stop`.
    async fn watch(
        self: Arc<Self>,
        server: String,
        shared: Weak<SharedUpstream>,
        start_now: bool,
        mut stop: watch::Receiver<bool>,
    ) {
        let Some((mut starts, mut notes)) = shared.upgrade().map(|s| (s.starts(), s.subscribe()))
        else {
            return;
        };
        // A child already running counts as a start this watcher has not seen.
        let mut due = start_now || *starts.borrow_and_update() > 0;
        let mut retry = RETRY_MIN;
        loop {
            if due {
                due = false;
                let Some(upstream) = shared.upgrade() else {
                    return;
                };
                let outcome = self.list_and_report(&server, &upstream).await;
                drop(upstream);
                // The listing itself may have started the child: that start is this listing.
                starts.borrow_and_update();
                match outcome {
                    Ok(recorded) => {
                        retry = RETRY_MIN;
                        tracing::info!(server = %server, tools = recorded, "stdio tools reported");
                    }
                    Err(e @ ReportError::Unreachable(_)) => {
                        tracing::warn!(server = %server, error = %e, retry_in_ms = retry.as_millis() as u64, "reporting stdio tools failed");
                        tokio::select! {
                            _ = stop.wait_for(|s| *s) => return,
                            _ = tokio::time::sleep(retry) => {}
                        }
                        retry = (retry * 2).min(RETRY_MAX);
                        due = true;
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(server = %server, error = %e, "stdio tools not reported")
                    }
                }
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                changed = starts.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    due = true;
                }
                note = notes.recv() => match note {
                    Ok(m) if m.get("method").and_then(Value::as_str)
                        == Some("notifications/tools/list_changed") => due = true,
                    Ok(_) => {}
                    // Notifications were missed: one of them may have been a list change.
                    Err(broadcast::error::RecvError::Lagged(_)) => due = true,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    /// Lists the tools and reports them; the number the registry now records.
    async fn list_and_report(
        &self,
        server: &str,
        upstream: &SharedUpstream,
    ) -> Result<usize, ReportError> {
        let tools = list_tools(upstream).await?;
        let url = format!(
            "{}/api/v1/gateway/tools",
            self.registry_url.trim_end_matches('/')
        );
        let mut request =
            self.http
                .post(&url)
                .timeout(Duration::from_secs(30))
                .json(&StdioToolsReport {
                    gateway: self.gateway.clone(),
                    server: server.to_owned(),
                    tools,
                });
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = request
            .send()
            .await
            .map_err(|e| ReportError::Unreachable(e.to_string()))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.is_success() {
            let recorded: Value = serde_json::from_str(&body).unwrap_or_default();
            if let Some(left_out) = recorded.get("left_out") {
                tracing::warn!(server = %server, left_out = %left_out, "the registry left tools out of the list (they are not served)");
            }
            return Ok(recorded["tools"].as_array().map_or(0, Vec::len));
        }
        let body = body.chars().take(300).collect::<String>();
        if status.is_server_error() {
            return Err(ReportError::Unreachable(format!("{status}: {body}")));
        }
        Err(ReportError::Refused {
            status: status.as_u16(),
            body,
        })
    }
}

/// Every page of the upstream's `tools/list` (none when it declares no tools capability).
async fn list_tools(upstream: &SharedUpstream) -> Result<Vec<Value>, ReportError> {
    let listing = |e: &dyn std::fmt::Display| ReportError::Listing(e.to_string());
    let initialize = upstream
        .initialize_result()
        .await
        .map_err(|e| listing(&e))?;
    if initialize.pointer("/capabilities/tools").is_none() {
        return Ok(Vec::new());
    }
    let mut tools = Vec::new();
    let mut cursor: Option<Value> = None;
    for _ in 0..MAX_PAGES {
        let mut params = json!({});
        if let Some(c) = cursor.take() {
            params["cursor"] = c;
        }
        let mut reply = upstream
            .request(
                LIST_OWNER,
                json!({"jsonrpc": "2.0", "id": 0, "method": "tools/list", "params": params}),
            )
            .await
            .map_err(|e| listing(&e))?;
        let answer = tokio::time::timeout(PAGE_TIMEOUT, async {
            loop {
                match reply.next().await {
                    Some(m) if m.get("result").is_some() || m.get("error").is_some() => {
                        return Some(m);
                    }
                    Some(_) => continue,
                    None => return None,
                }
            }
        })
        .await
        .map_err(|_| {
            ReportError::Listing(format!(
                "no answer to tools/list within {} s",
                PAGE_TIMEOUT.as_secs()
            ))
        })?
        .ok_or_else(|| ReportError::Listing("the child went away".to_owned()))?;
        let Some(result) = answer.get("result") else {
            return Err(ReportError::Listing(format!(
                "tools/list answered an error: {}",
                answer["error"]
            )));
        };
        if let Some(page) = result.get("tools").and_then(Value::as_array) {
            tools.extend(page.iter().cloned());
        }
        match result.get("nextCursor") {
            Some(c) if !c.is_null() => cursor = Some(c.clone()),
            _ => return Ok(tools),
        }
    }
    Err(ReportError::Listing(format!(
        "tools/list has more than {MAX_PAGES} pages"
    )))
}
