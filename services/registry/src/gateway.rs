//! What the registry serves its gateways (the contract is `mcpgw_core::gateway_sync`): the
//! routing snapshot, fetched with a long poll, and the audit events gateways report back.
//!
//! Snapshot rules:
//! - One snapshot is built for every poll that asks for the same state: it is cached with the
//!   change counter it was read at, and rebuilt by one task at a time (the others wait for it).
//! - Every server or policy write through this process bumps the counter, which wakes the
//!   waiting polls at once and makes the next poll rebuild.
//! - Writes made through another replica (a shared MongoDB) are not signalled: the cached
//!   snapshot also expires after `store.catalog_cache_ms`, and a waiting poll re-checks at
//!   that interval, so such a change reaches a poll within about twice that time.
//! - The counter is read before the records, so a snapshot that raced a write is cached under
//!   the counter it read and rebuilt on the next ask, never kept as current.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use mcpgw_core::auth::{Principal, PrincipalKind};
use mcpgw_core::domain::{DeploymentStage, IntegrityMode, ServerRecord};
use mcpgw_core::gateway_sync::{AuditDecision, GatewaySnapshot, MAX_AUDIT_BATCH, McpAuditEvent};
use mcpgw_core::time::Timestamp;
use mcpgw_core::validate::FieldError;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::catalog::{CatalogCache, LOAD_PAGE};
use crate::store::{AuditRow, RegistryStore, ServerFilter, StoreError};

/// Largest audit batch body accepted, in bytes (or `max_body_bytes`, if larger).
pub const AUDIT_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// Longest long poll, in seconds.
pub const MAX_WAIT_SECONDS: u64 = 60;
/// Longest text field of an audit event, in bytes.
const EVENT_TEXT_LIMIT: usize = 1024;

/// A snapshot and its JSON, shared by every poll that gets it.
pub struct BuiltSnapshot {
    pub snapshot: GatewaySnapshot,
    pub json: Bytes,
}

struct Cached {
    at: Instant,
    /// The change counter read before the records were.
    seq: u64,
    built: Arc<BuiltSnapshot>,
}

/// The outcome of a poll.
pub enum Poll {
    /// The current snapshot differs from every version the caller named.
    Changed(Arc<BuiltSnapshot>),
    /// The wait ended and the snapshot is still at this version.
    NotModified(String),
}

pub struct SnapshotFeed {
    stage: DeploymentStage,
    /// `None`: valid until the next write through this process (SQLite: no other writer).
    ttl: Option<Duration>,
    check_every: Duration,
    changes: watch::Sender<u64>,
    closing: watch::Sender<bool>,
    cached: RwLock<Option<Cached>>,
    rebuild: tokio::sync::Mutex<()>,
    /// `tools.integrity_mode`: for servers that do not set their own.
    tool_integrity: IntegrityMode,
}

impl SnapshotFeed {
    /// `check_every`: how often a waiting poll re-reads (changes made by other replicas).
    pub fn new(stage: DeploymentStage, ttl: Option<Duration>, check_every: Duration) -> Self {
        Self {
            stage,
            ttl,
            check_every,
            changes: watch::channel(0).0,
            closing: watch::channel(false).0,
            cached: RwLock::new(None),
            rebuild: tokio::sync::Mutex::new(()),
            tool_integrity: IntegrityMode::default(),
        }
    }

    /// Sets the registry-wide tool-integrity mode the snapshot carries.
    pub fn with_tool_integrity(mut self, mode: IntegrityMode) -> Self {
        self.tool_integrity = mode;
        self
    }

    /// Call after every attempt to write a server or the policy (even a failed one may have
    /// committed).
    pub fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Ends every waiting poll (at shutdown), so that draining connections does not wait for
    /// them; later polls answer at once.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    fn fresh(&self) -> Option<Arc<BuiltSnapshot>> {
        let seq = *self.changes.borrow();
        let cached = self.cached.read().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|c| c.seq == seq)
            .filter(|c| self.ttl.is_none_or(|ttl| c.at.elapsed() < ttl))
            .map(|c| c.built.clone())
    }

    /// The snapshot of the current state, built at most once per change (and per `ttl`).
    pub async fn current(
        &self,
        store: &dyn RegistryStore,
        catalog: Option<&CatalogCache>,
    ) -> Result<Arc<BuiltSnapshot>, StoreError> {
        if let Some(built) = self.fresh() {
            return Ok(built);
        }
        let _one_build_at_a_time = self.rebuild.lock().await;
        if let Some(built) = self.fresh() {
            return Ok(built);
        }
        let seq = *self.changes.borrow();
        let at = Instant::now();
        let records = all_servers(store, catalog).await?;
        let policy = store.policy().await?;
        let snapshot = GatewaySnapshot::build_with(
            self.stage,
            records.iter().map(Arc::as_ref),
            policy,
            self.tool_integrity,
        );
        let previous = self
            .cached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|c| c.built.clone());
        // The same content keeps the same body (and `generated_at`).
        let built = match previous {
            Some(p) if p.snapshot.version == snapshot.version => p,
            _ => {
                let json = serde_json::to_vec(&snapshot)
                    .map_err(|e| StoreError::Internal(format!("serializing a snapshot: {e}")))?;
                Arc::new(BuiltSnapshot {
                    snapshot,
                    json: Bytes::from(json),
                })
            }
        };
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Some(Cached {
            at,
            seq,
            built: built.clone(),
        });
        Ok(built)
    }

    /// The current snapshot if its version is none of `known`; otherwise waits up to `wait`
    /// for it to change (woken by writes through this process, re-checking every
    /// `check_every`).
    pub async fn poll(
        &self,
        store: &dyn RegistryStore,
        catalog: Option<&CatalogCache>,
        known: &[String],
        wait: Duration,
    ) -> Result<Poll, StoreError> {
        let deadline = Instant::now() + wait;
        let mut changes = self.changes.subscribe();
        let mut closing = self.closing.subscribe();
        loop {
            // Marked seen before reading, so a write during the read wakes the wait below.
            changes.borrow_and_update();
            let built = self.current(store, catalog).await?;
            let version = &built.snapshot.version;
            if !known.iter().any(|k| k == version) {
                return Ok(Poll::Changed(built));
            }
            let now = Instant::now();
            if now >= deadline || *closing.borrow_and_update() {
                return Ok(Poll::NotModified(version.clone()));
            }
            let nap = self.check_every.min(deadline - now);
            tokio::select! {
                _ = changes.changed() => {}
                _ = closing.changed() => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }
}

async fn all_servers(
    store: &dyn RegistryStore,
    catalog: Option<&CatalogCache>,
) -> Result<Vec<Arc<ServerRecord>>, StoreError> {
    if let Some(catalog) = catalog {
        return catalog.all(store).await;
    }
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_servers(&ServerFilter::default(), after.as_deref(), LOAD_PAGE)
            .await?;
        let full = page.len() == LOAD_PAGE as usize;
        after = page.last().map(|r| r.path.to_string());
        all.extend(page.into_iter().map(Arc::new));
        if !full {
            return Ok(all);
        }
    }
}

/// Refuses a batch of more than [`MAX_AUDIT_BATCH`] events (`events`: how many it holds).
pub fn check_batch_size(events: usize) -> Result<(), FieldError> {
    if events > MAX_AUDIT_BATCH {
        return Err(FieldError::new(
            "events",
            format!("has {events} events; send at most {MAX_AUDIT_BATCH} per batch"),
        ));
    }
    Ok(())
}

/// The action an event is recorded under.
pub fn action_of(event: &McpAuditEvent) -> &'static str {
    match event.decision {
        AuditDecision::Denied => "mcp.denied",
        AuditDecision::Allowed if event.method == "tools/call" => "mcp.tool_call",
        AuditDecision::Allowed => "mcp.request",
    }
}

fn check_event(i: usize, e: &McpAuditEvent) -> Result<(), FieldError> {
    let field = |name: &str| format!("events[{i}].{name}");
    if e.id.get_version_num() != 7 {
        return Err(FieldError::new(
            field("id"),
            "must be a UUIDv7 (time-ordered), made by the gateway",
        ));
    }
    let texts = [
        ("request_id", Some(&e.request_id)),
        ("gateway", Some(&e.gateway)),
        ("server", Some(&e.server)),
        ("method", Some(&e.method)),
        ("tool", e.tool.as_ref()),
        ("subject", Some(&e.subject)),
        ("user", e.user.as_ref()),
        ("client_id", e.client_id.as_ref()),
        ("issuer", Some(&e.issuer)),
        ("reason", Some(&e.reason)),
        ("matched_rule", e.matched_rule.as_ref()),
        ("status", Some(&e.status)),
    ];
    for (name, value) in texts {
        if value.is_some_and(|v| v.len() > EVENT_TEXT_LIMIT) {
            return Err(FieldError::new(
                field(name),
                format!("must be at most {EVENT_TEXT_LIMIT} bytes"),
            ));
        }
    }
    if !(e.latency_ms.is_finite() && e.latency_ms >= 0.0) {
        return Err(FieldError::new(
            field("latency_ms"),
            "must be a number of milliseconds, 0 or more",
        ));
    }
    if e.count == 0 {
        return Err(FieldError::new(
            field("count"),
            "must be at least 1 (the requests the event stands for)",
        ));
    }
    Ok(())
}

/// The audit rows of reported events: the event id becomes the record id (so a batch sent
/// again is recognised), the caller is the actor, the server path the resource. Every event is
/// checked before any is taken apart; their strings move into the rows.
pub fn audit_rows(
    events: Vec<McpAuditEvent>,
    reporter: &Principal,
) -> crate::error::Result<Vec<AuditRow>> {
    for (i, e) in events.iter().enumerate() {
        check_event(i, e)?;
    }
    let rows = events
        .into_iter()
        .map(|e| audit_row(e, &reporter.subject))
        .collect::<Result<_, _>>();
    Ok(rows.map_err(|e| StoreError::Internal(format!("serializing an audit record: {e}")))?)
}

/// One value in a record's `details`.
enum Detail {
    Text(String),
    Number(f64),
    Count(u64),
    Json(Value),
    /// The place of a field the record holds in its own fields.
    Moved,
}

impl Serialize for Detail {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Detail::Text(text) => s.serialize_str(text),
            Detail::Number(n) => s.serialize_f64(*n),
            Detail::Count(n) => s.serialize_u64(*n),
            Detail::Json(value) => value.serialize(s),
            Detail::Moved => s.serialize_unit(),
        }
    }
}

/// `details` as a JSON object of its keys in order.
struct Details(Vec<(&'static str, Detail)>);

impl Serialize for Details {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// An [`AuditRecord`]'s JSON with its `details` borrowed, field for field as the record
/// serializes (a test compares the two).
#[derive(Serialize)]
struct RecordDoc<'a> {
    id: &'a str,
    at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    actor: &'a str,
    actor_kind: PrincipalKind,
    action: &'a str,
    resource_type: &'a str,
    resource_id: &'a str,
    details: &'a Details,
}

fn audit_row(e: McpAuditEvent, reported_by: &str) -> Result<AuditRow, serde_json::Error> {
    let action = action_of(&e);
    // As the registry classifies token callers: a user when the token names one.
    let actor_kind = if e.user.is_some() {
        PrincipalKind::User
    } else {
        PrincipalKind::Service
    };
    let McpAuditEvent {
        id,
        at,
        request_id,
        gateway,
        server,
        method,
        tool,
        subject,
        user,
        client_id,
        issuer,
        decision,
        reason,
        matched_rule,
        status,
        latency_ms,
        arguments,
        count,
    } = e;
    let decision = decision_text(decision);
    let tool_column = tool.clone();
    // `details` is the event less what the record holds in its own fields, with its keys in
    // the order stored records have always had: the event's fields as it serializes them
    // (optional ones only when present), each moved field's place then taken by the last key
    // (how `serde_json::Map::remove` dropped them when details were a JSON value), and
    // `reported_by` last.
    let text = |v: Option<String>| v.map(Detail::Text);
    let fields = [
        ("id", Some(Detail::Moved)),
        ("at", Some(Detail::Moved)),
        ("request_id", Some(Detail::Moved)),
        ("gateway", text(Some(gateway))),
        ("server", Some(Detail::Moved)),
        ("method", text(Some(method))),
        ("tool", text(tool)),
        ("subject", Some(Detail::Moved)),
        ("user", text(user)),
        ("client_id", text(client_id)),
        ("issuer", text(Some(issuer))),
        ("decision", text(Some(decision.to_owned()))),
        ("reason", text(Some(reason))),
        ("matched_rule", text(matched_rule)),
        ("status", text(Some(status))),
        ("latency_ms", Some(Detail::Number(latency_ms))),
        ("arguments", arguments.map(Detail::Json)),
        ("count", (count != 1).then_some(Detail::Count(count))),
    ];
    let mut kept: Vec<(&str, Detail)> = fields
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    for moved in ["id", "at", "request_id", "subject", "server"] {
        if let Some(i) = kept.iter().position(|(k, _)| *k == moved) {
            kept.swap_remove(i);
        }
    }
    kept.push(("reported_by", Detail::Text(reported_by.to_owned())));
    let id = id.to_string();
    let doc = serde_json::to_string(&RecordDoc {
        id: &id,
        at,
        request_id: (!request_id.is_empty()).then_some(request_id.as_str()),
        actor: &subject,
        actor_kind,
        action,
        resource_type: "server",
        resource_id: &server,
        details: &Details(kept),
    })?;
    Ok(AuditRow {
        id,
        at: at.to_canonical(),
        actor: subject,
        action: action.to_owned(),
        resource_type: "server".to_owned(),
        resource_id: server,
        doc,
        tool: tool_column,
        decision: Some(decision.to_owned()),
    })
}

/// How an event's decision serializes (`allowed`, `denied`).
fn decision_text(decision: AuditDecision) -> &'static str {
    match decision {
        AuditDecision::Allowed => "allowed",
        AuditDecision::Denied => "denied",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuditRecord;
    use serde_json::json;

    fn event(method: &str, decision: &str) -> McpAuditEvent {
        serde_json::from_value(json!({
            "id": uuid::Uuid::now_v7(), "at": "2026-01-01T00:00:00Z", "request_id": "r1",
            "gateway": "gw-1", "server": "weather", "method": method, "tool": "forecast",
            "subject": "alice", "issuer": "https://idp", "decision": decision,
            "reason": "matched", "status": "ok", "latency_ms": 3.5
        }))
        .unwrap()
    }

    #[test]
    fn actions_follow_the_decision_and_method() {
        assert_eq!(action_of(&event("tools/call", "allowed")), "mcp.tool_call");
        assert_eq!(action_of(&event("tools/list", "allowed")), "mcp.request");
        assert_eq!(action_of(&event("tools/call", "denied")), "mcp.denied");
    }

    #[test]
    fn records_keep_the_event_id_and_move_the_rest_to_details() {
        let e = event("tools/call", "allowed");
        let reporter = Principal::system("gw");
        let row = &audit_rows(vec![e.clone()], &reporter).unwrap()[0];
        let r: AuditRecord = serde_json::from_str(&row.doc).unwrap();
        assert_eq!(
            (r.id.as_str(), row.id.as_str()),
            (&*e.id.to_string(), &*r.id)
        );
        assert_eq!(
            (r.actor.as_str(), r.actor_kind, r.resource_id.as_str()),
            ("alice", PrincipalKind::Service, "weather")
        );
        assert_eq!(r.details["tool"], "forecast");
        assert_eq!(r.details["reported_by"], "system:gw");
        assert!(r.details.get("id").is_none() && r.details.get("subject").is_none());
        let mut v4 = e.clone();
        v4.id = uuid::Uuid::new_v4();
        match audit_rows(vec![e, v4], &reporter) {
            Err(crate::error::RegistryError::Invalid(err)) => assert_eq!(err.field, "events[1].id"),
            other => panic!("expected events[1].id refused, got {other:?}"),
        }
    }

    /// The record as the intake first made it: the event serialized to a JSON value, the
    /// fields the record holds removed with `Map::remove`, `reported_by` added, every string
    /// cloned.
    fn record_by_value_round_trip(e: &McpAuditEvent, reporter: &Principal) -> AuditRecord {
        let mut details = serde_json::to_value(e).unwrap();
        let map = details.as_object_mut().unwrap();
        for moved in ["id", "at", "request_id", "subject", "server"] {
            map.remove(moved);
        }
        map.insert("reported_by".to_owned(), json!(reporter.subject));
        AuditRecord {
            id: e.id.to_string(),
            at: e.at,
            request_id: (!e.request_id.is_empty()).then(|| e.request_id.clone()),
            actor: e.subject.clone(),
            actor_kind: if e.user.is_some() {
                PrincipalKind::User
            } else {
                PrincipalKind::Service
            },
            action: action_of(e).to_owned(),
            resource_type: "server".to_owned(),
            resource_id: e.server.clone(),
            revision_before: None,
            revision_after: None,
            details,
        }
    }

    #[test]
    fn rows_are_byte_for_byte_those_of_a_value_round_trip() {
        let reporter = Principal::system("gw");
        let mut bare = event("tools/list", "denied");
        bare.tool = None;
        bare.request_id = String::new();
        let mut full = event("tools/call", "allowed");
        full.user = Some("alice".into());
        full.client_id = Some("agent-7".into());
        full.matched_rule = Some("scope \"ops\" server_access[0]".into());
        full.arguments = Some(json!({"city": "Oslo", "days": [1, 2], "note": "a \"b\"\n"}));
        full.count = 7;
        full.latency_ms = 4.0;
        let mut untooled = full.clone();
        untooled.tool = None;
        untooled.arguments = None;
        for e in [event("ping", "allowed"), bare, full, untooled] {
            // What the stores wrote for such a record: its columns, its JSON, tool and decision.
            let expected = AuditRow::of(&record_by_value_round_trip(&e, &reporter)).unwrap();
            assert_eq!(audit_row(e, &reporter.subject).unwrap(), expected);
        }
    }
}
