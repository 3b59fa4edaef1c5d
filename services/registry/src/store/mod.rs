//! Storage of the registry, behind one trait with two implementations:
//! MongoDB/DocumentDB ([`mongo`]) for production and SQLite ([`sqlite`]) as the embedded
//! default. The backend is chosen by URL scheme (`mongodb://`, `mongodb+srv://`, `sqlite://`).
//!
//! Rules every backend keeps (the behaviour suite in `tests/it` checks them on both):
//! - A call that returns `Ok` has made its write durable: SQLite commits with
//!   `synchronous=FULL` in WAL mode; MongoDB writes with `w: majority, j: true`.
//! - A mutation and its audit record are written in one transaction: both or neither.
//! - Updates are conditional on the revision the caller read; a mismatch is
//!   [`StoreError::StaleRevision`] and changes nothing.
//! - Driver errors are mapped with intent: duplicate key → `Conflict`, unreachable →
//!   `Unavailable`; anything else is `Internal` and carries the driver's message for the log.
//! - Lists are ordered by a unique key and paginated by "after this key" cursors, so pages are
//!   stable while servers are added or removed.

pub mod mongo;
pub mod mongo_schema;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use mcpgw_core::auth::{Permission, PrincipalKind};
use mcpgw_core::domain::{
    AgentHealth, AgentRecord, Environment, Lifecycle, ServerPath, ServerRecord,
};
use mcpgw_core::policy::{PolicySnapshot, ScopeDocument};
use mcpgw_core::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("stale revision: the stored revision is {current}")]
    StaleRevision { current: u64 },
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Internal(String),
}

/// Opening the SQLite store (`mcpgw_core::sqlite`) fails as one of these two.
impl From<mcpgw_core::sqlite::OpenError> for StoreError {
    fn from(e: mcpgw_core::sqlite::OpenError) -> Self {
        e.into_store(Self::Unavailable, Self::Internal)
    }
}

/// Filters for listing servers; all given filters must match.
#[derive(Debug, Clone, Default)]
pub struct ServerFilter {
    pub enabled: Option<bool>,
    pub lifecycle: Option<Vec<Lifecycle>>,
    pub tag: Option<String>,
    pub owner_team: Option<String>,
    pub environment: Option<Environment>,
    /// Case-insensitive substring of path, name, description or tags.
    pub text: Option<String>,
    pub updated_since: Option<Timestamp>,
    /// Only these paths (a caller allowed to read some servers only).
    pub paths: Option<std::collections::BTreeSet<String>>,
}

impl ServerFilter {
    /// The same predicate the backends evaluate, for the in-memory catalog.
    pub fn matches(&self, r: &ServerRecord) -> bool {
        self.matches_with_text(r, &r.search_text())
    }

    /// [`ServerFilter::matches`] with the record's search text computed beforehand.
    pub fn matches_with_text(&self, r: &ServerRecord, search_text: &str) -> bool {
        self.enabled.is_none_or(|e| r.enabled == e)
            && self
                .lifecycle
                .as_ref()
                .is_none_or(|l| l.contains(&r.lifecycle))
            && self.tag.as_ref().is_none_or(|t| r.tags.contains(t))
            && self
                .owner_team
                .as_ref()
                .is_none_or(|o| &r.governance.owner_team == o)
            && self
                .environment
                .is_none_or(|e| r.governance.environment == e)
            && self
                .text
                .as_ref()
                .is_none_or(|t| search_text.contains(&t.to_lowercase()))
            && self.updated_since.is_none_or(|u| r.updated_at >= u)
            && self
                .paths
                .as_ref()
                .is_none_or(|p| p.contains(r.path.as_str()))
    }
}

/// Filters for listing agents; all given filters must match.
#[derive(Debug, Clone, Default)]
pub struct AgentFilter {
    pub enabled: Option<bool>,
    pub lifecycle: Option<Lifecycle>,
    pub tag: Option<String>,
    pub owner_team: Option<String>,
    /// Case-insensitive substring of path, card name, description, tags or skill names.
    pub text: Option<String>,
}

/// An API key as stored: only a hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyRecord {
    /// Public identifier, the part of the key before the secret.
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret part, hex. Keys are 256-bit random values, so a fast hash is
    /// enough; no password stretching is needed.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    #[schema(ignore)]
    pub secret_hash: String,
    pub permissions: Vec<Permission>,
    pub created_by: String,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}

/// One audit record: who changed what, from which revision to which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Time-ordered unique id (UUIDv7).
    pub id: String,
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Subject of the principal.
    pub actor: String,
    pub actor_kind: PrincipalKind,
    /// E.g. `server.create`, `server.lifecycle`, `api_key.revoke`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_after: Option<u64>,
    /// Action-specific facts (never secrets), e.g. the lifecycle transition and reason.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl AuditRecord {
    /// A record of a change made now, outside a request (no request id, no revisions): for
    /// callers outside the API, such as `mcpgw-setup` seeding scope documents.
    pub fn new(
        actor: impl Into<String>,
        actor_kind: PrincipalKind,
        action: impl Into<String>,
        resource_type: impl Into<String>,
        resource_id: impl Into<String>,
        details: serde_json::Value,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            at: Timestamp::now(),
            request_id: None,
            actor: actor.into(),
            actor_kind,
            action: action.into(),
            resource_type: resource_type.into(),
            resource_id: resource_id.into(),
            revision_before: None,
            revision_after: None,
            details,
        }
    }
}

/// The audit record of a policy change, with the policy version it produced.
pub fn with_version(audit: &AuditRecord, version: u64) -> AuditRecord {
    let mut a = audit.clone();
    a.revision_after = Some(version);
    a
}

/// An audit record as it is written: the columns the log is filtered on and the record's JSON
/// (`doc`, what [`RegistryStore::list_audit`] reads back), serialized once by whoever made it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub id: String,
    /// [`Timestamp::to_canonical`].
    pub at: String,
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    /// The [`AuditRecord`] as JSON.
    pub doc: String,
    /// `details.tool` and `details.decision` of a gateway-reported record: MongoDB keeps them
    /// beside the document to filter on.
    pub tool: Option<String>,
    pub decision: Option<String>,
}

impl AuditRow {
    pub fn of(record: &AuditRecord) -> Result<Self, StoreError> {
        let detail = |key: &str| {
            let value = record.details.get(key)?.as_str()?;
            Some(value.to_owned())
        };
        Ok(Self {
            id: record.id.clone(),
            at: record.at.to_canonical(),
            actor: record.actor.clone(),
            action: record.action.clone(),
            resource_type: record.resource_type.clone(),
            resource_id: record.resource_id.clone(),
            doc: serde_json::to_string(record)
                .map_err(|e| StoreError::Internal(format!("serializing: {e}")))?,
            tool: detail("tool"),
            decision: detail("decision"),
        })
    }
}

/// Filters for reading the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Actions starting with this text (`mcp.` for every gateway-reported record).
    pub action_prefix: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Gateway-reported records of this tool (`details.tool`).
    pub tool: Option<String>,
    /// Gateway-reported records with this decision (`details.decision`: `allowed`, `denied`).
    pub decision: Option<String>,
}

#[async_trait]
pub trait RegistryStore: Send + Sync {
    /// `sqlite` or `mongodb`.
    fn backend(&self) -> &'static str;

    /// Succeeds when the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Inserts a new server; `Conflict` when the path exists.
    async fn insert_server(
        &self,
        record: &ServerRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;

    async fn get_server(&self, path: &ServerPath) -> Result<Option<ServerRecord>, StoreError>;

    /// Servers matching `filter`, ordered by path, starting after the path `after`.
    async fn list_servers(
        &self,
        filter: &ServerFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ServerRecord>, StoreError>;

    /// Replaces a server if the stored revision is `expected_revision`.
    async fn update_server(
        &self,
        record: &ServerRecord,
        expected_revision: u64,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;

    /// Deletes a server if the stored revision is `expected_revision`.
    async fn delete_server(
        &self,
        path: &ServerPath,
        expected_revision: u64,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;

    /// Inserts an API key; `Conflict` when the id exists.
    async fn insert_api_key(
        &self,
        key: &ApiKeyRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Marks a key revoked; `NotFound` when it does not exist or is already revoked.
    async fn revoke_api_key(
        &self,
        id: &str,
        at: Timestamp,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;

    /// Every scope document with the policy version, read consistently.
    async fn policy(&self) -> Result<PolicySnapshot, StoreError>;

    /// Inserts or replaces `docs` (with `replace_all`, deletes every other document first) and
    /// bumps the policy version; returns the new version.
    async fn put_scopes(
        &self,
        docs: &[ScopeDocument],
        replace_all: bool,
        audit: &AuditRecord,
    ) -> Result<u64, StoreError>;

    /// Deletes one scope document and bumps the version; `NotFound` when there is none.
    async fn delete_scope(&self, name: &str, audit: &AuditRecord) -> Result<u64, StoreError>;

    /// Inserts audit records that arrive from outside a mutation (gateway reports), skipping
    /// those whose id is already stored (a batch sent again after a lost answer). Returns how
    /// many were inserted; once it returns, they are durable.
    async fn insert_audit_batch(&self, records: &[AuditRecord]) -> Result<usize, StoreError> {
        let rows = records.iter().map(AuditRow::of).collect::<Result<_, _>>()?;
        self.insert_audit_rows(rows).await
    }

    /// [`insert_audit_batch`](Self::insert_audit_batch) for rows already made: a gateway's
    /// batch, whose records are serialized straight from its events.
    async fn insert_audit_rows(&self, rows: Vec<AuditRow>) -> Result<usize, StoreError>;

    /// Writes the health of servers and nothing else: no revision bump (an owner's edit
    /// conditional on the revision it read must not fail because a check ran) and no audit
    /// record (checks are observations, not changes). Paths that no longer exist are skipped.
    async fn update_health(
        &self,
        updates: &[(ServerPath, mcpgw_core::domain::Health)],
    ) -> Result<(), StoreError>;

    /// Takes or renews the lease on scheduled health checks for `holder` until `ttl` from now;
    /// false while another holder's lease runs. Replicas sharing a store thus check each server
    /// once per cycle. The default (SQLite) always grants: one process owns that file.
    async fn health_lease(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let _ = (holder, ttl);
        Ok(true)
    }

    /// Inserts a new agent; `Conflict` when the path exists.
    async fn insert_agent(
        &self,
        record: &AgentRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;

    async fn get_agent(&self, path: &ServerPath) -> Result<Option<AgentRecord>, StoreError>;

    /// Agents matching `filter`, ordered by path, starting after the path `after`.
    async fn list_agents(
        &self,
        filter: &AgentFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AgentRecord>, StoreError>;

    /// Replaces an agent if the stored revision is `expected_revision`.
    async fn update_agent(
        &self,
        record: &AgentRecord,
        expected_revision: u64,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;

    /// Deletes an agent if the stored revision is `expected_revision`.
    async fn delete_agent(
        &self,
        path: &ServerPath,
        expected_revision: u64,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;

    /// Writes an agent's health and nothing else (no revision bump, no audit record: a check
    /// is an observation, as for servers). A path that no longer exists is skipped.
    async fn update_agent_health(
        &self,
        path: &ServerPath,
        health: &AgentHealth,
    ) -> Result<(), StoreError>;

    /// Audit records matching `filter`, newest first, older than the id `before`.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// How many audit records match `filter` (the console's "tool calls in 24 h").
    async fn count_audit(&self, filter: &AuditFilter) -> Result<u64, StoreError>;
}

/// Opens the store a URL names.
pub async fn open(
    url: &str,
    settings: &crate::config::StoreConfig,
) -> Result<Arc<dyn RegistryStore>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url, settings).await?))
    } else if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") {
        Ok(Arc::new(mongo::MongoStore::open(url, settings).await?))
    } else {
        Err(StoreError::Internal(format!(
            "store.url must start with sqlite:, mongodb:// or mongodb+srv:// (got {:?})",
            url.split(':').next().unwrap_or_default()
        )))
    }
}
