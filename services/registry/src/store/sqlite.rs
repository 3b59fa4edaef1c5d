//! The embedded default store: SQLite through `sqlx`, in WAL mode, its pools opened by
//! `mcpgw_core::sqlite::open_pools` (shared with the other service with an embedded store).
//!
//! Writes go through a pool of exactly one connection, so writers queue in the application
//! instead of failing with `SQLITE_BUSY`; reads use a separate pool and never block on writes
//! (WAL). `synchronous` defaults to FULL: a commit is on disk before the call returns, so an
//! acknowledged write survives a power loss, not only a process crash.

use async_trait::async_trait;
use mcpgw_core::domain::{AgentHealth, AgentRecord, ServerPath, ServerRecord};
use mcpgw_core::policy::{PolicySnapshot, ScopeDocument};
use mcpgw_core::sqlite::{self, Pools};
use mcpgw_core::time::Timestamp;
use sqlx::migrate::Migrator;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::{
    AgentFilter, ApiKeyRecord, AuditFilter, AuditRecord, AuditRow, RegistryStore, ServerFilter,
    StoreError, with_version,
};
use crate::config::StoreConfig;

/// The reader and writer pools (`mcpgw_core::sqlite`).
pub struct SqliteStore(Pools);

/// The statements the shared helpers run on a table of versioned records (`path` key,
/// `revision`, `doc`): servers and agents.
#[derive(Clone, Copy)]
struct Table {
    revision: &'static str,
    doc: &'static str,
    delete: &'static str,
}
const SERVERS: Table = Table {
    revision: "SELECT revision FROM servers WHERE path = ?",
    doc: "SELECT doc FROM servers WHERE path = ?",
    delete: "DELETE FROM servers WHERE path = ? AND revision = ?",
};
const AGENTS: Table = Table {
    revision: "SELECT revision FROM agents WHERE path = ?",
    doc: "SELECT doc FROM agents WHERE path = ?",
    delete: "DELETE FROM agents WHERE path = ? AND revision = ?",
};

fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(format!("serializing: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Internal(format!("a stored document does not parse: {e}")))
}

impl SqliteStore {
    /// Opens (creating if needed) the database and runs the migrations in `migrations/sqlite`.
    pub async fn open(url: &str, settings: &StoreConfig) -> Result<Self, StoreError> {
        static MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
        Ok(Self(sqlite::open_pools(url, settings, &MIGRATIONS).await?))
    }

    async fn begin(&self) -> Result<Transaction<'_, Sqlite>, StoreError> {
        self.0.writes.begin().await.map_err(map_err)
    }

    async fn write_audit(
        tx: &mut Transaction<'_, Sqlite>,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit (id, at, actor, action, resource_type, resource_id, doc)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&audit.id)
        .bind(audit.at.to_canonical())
        .bind(&audit.actor)
        .bind(&audit.action)
        .bind(&audit.resource_type)
        .bind(&audit.resource_id)
        .bind(to_json(audit)?)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn write_tags(
        tx: &mut Transaction<'_, Sqlite>,
        record: &ServerRecord,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM server_tags WHERE path = ?")
            .bind(record.path.as_str())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        for tag in &record.tags {
            sqlx::query("INSERT INTO server_tags (path, tag) VALUES (?, ?)")
                .bind(record.path.as_str())
                .bind(tag)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    async fn bump_policy(tx: &mut Transaction<'_, Sqlite>) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "UPDATE meta SET value = value + 1 WHERE key = 'policy_version' RETURNING value",
        )
        .fetch_one(&mut **tx)
        .await
        .map_err(map_err)?;
        Ok(row.get::<i64, _>(0) as u64)
    }

    /// Why a conditional write (`WHERE path = ? AND revision = ?`) on `table` matched nothing.
    async fn unmatched(tx: &mut Transaction<'_, Sqlite>, table: Table, path: &str) -> StoreError {
        let row = sqlx::query(table.revision)
            .bind(path)
            .fetch_optional(&mut **tx)
            .await;
        match row {
            Ok(Some(r)) => StoreError::StaleRevision {
                current: r.get::<i64, _>(0) as u64,
            },
            Ok(None) => StoreError::NotFound,
            Err(e) => map_err(e),
        }
    }

    /// The JSON document of the record at `path` in `table`.
    async fn get_doc<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
        path: &ServerPath,
    ) -> Result<Option<T>, StoreError> {
        let row = sqlx::query(table.doc)
            .bind(path.as_str())
            .fetch_optional(&self.0.reads)
            .await
            .map_err(map_err)?;
        row.map(|r| from_json(r.get::<&str, _>(0))).transpose()
    }

    /// Deletes the record at `path` in `table` if it is still at `expected_revision`, and
    /// writes its audit record, in one transaction.
    async fn delete_with_audit(
        &self,
        table: Table,
        path: &ServerPath,
        expected_revision: u64,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(table.delete)
            .bind(path.as_str())
            .bind(expected_revision as i64)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(Self::unmatched(&mut tx, table, path.as_str()).await);
        }
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }
}

#[async_trait]
impl RegistryStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    /// Both pools answer: a stuck writer makes the store unready too.
    async fn ping(&self) -> Result<(), StoreError> {
        self.0.ping().await.map_err(map_err)
    }

    async fn insert_server(
        &self,
        record: &ServerRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO servers (path, id, revision, enabled, lifecycle, owner_team, environment,
                                  search_text, updated_at, doc)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(record.path.as_str())
        .bind(record.id.to_string())
        .bind(record.revision as i64)
        .bind(record.enabled)
        .bind(record.lifecycle.as_str())
        .bind(&record.governance.owner_team)
        .bind(record.governance.environment.as_str())
        .bind(record.search_text())
        .bind(record.updated_at.to_canonical())
        .bind(to_json(record)?)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        Self::write_tags(&mut tx, record).await?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn get_server(&self, path: &ServerPath) -> Result<Option<ServerRecord>, StoreError> {
        self.get_doc(SERVERS, path).await
    }

    async fn list_servers(
        &self,
        filter: &ServerFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ServerRecord>, StoreError> {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT s.doc FROM servers s WHERE 1=1");
        if let Some(enabled) = filter.enabled {
            q.push(" AND s.enabled = ").push_bind(enabled);
        }
        if let Some(states) = &filter.lifecycle {
            q.push(" AND s.lifecycle IN (");
            let mut sep = q.separated(", ");
            for s in states {
                sep.push_bind(s.as_str());
            }
            q.push(")");
        }
        if let Some(tag) = &filter.tag {
            q.push(" AND EXISTS (SELECT 1 FROM server_tags t WHERE t.path = s.path AND t.tag = ")
                .push_bind(tag.clone())
                .push(")");
        }
        if let Some(owner) = &filter.owner_team {
            q.push(" AND s.owner_team = ").push_bind(owner.clone());
        }
        if let Some(env) = filter.environment {
            q.push(" AND s.environment = ").push_bind(env.as_str());
        }
        if let Some(text) = &filter.text {
            // instr() is a plain substring test: no LIKE wildcards to escape.
            q.push(" AND instr(s.search_text, ")
                .push_bind(text.to_lowercase())
                .push(") > 0");
        }
        if let Some(since) = filter.updated_since {
            q.push(" AND s.updated_at >= ")
                .push_bind(since.to_canonical());
        }
        if let Some(paths) = &filter.paths {
            if paths.is_empty() {
                q.push(" AND 0");
            } else {
                q.push(" AND s.path IN (");
                let mut sep = q.separated(", ");
                for p in paths {
                    sep.push_bind(p.clone());
                }
                q.push(")");
            }
        }
        if let Some(after) = after {
            q.push(" AND s.path > ").push_bind(after.to_owned());
        }
        q.push(" ORDER BY s.path LIMIT ").push_bind(limit as i64);
        let rows = q.build().fetch_all(&self.0.reads).await.map_err(map_err)?;
        rows.iter()
            .map(|r| from_json(r.get::<&str, _>(0)))
            .collect()
    }

    async fn update_server(
        &self,
        record: &ServerRecord,
        expected_revision: u64,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE servers SET revision = ?, enabled = ?, lifecycle = ?, owner_team = ?,
                    environment = ?, search_text = ?, updated_at = ?, doc = ?
             WHERE path = ? AND revision = ?",
        )
        .bind(record.revision as i64)
        .bind(record.enabled)
        .bind(record.lifecycle.as_str())
        .bind(&record.governance.owner_team)
        .bind(record.governance.environment.as_str())
        .bind(record.search_text())
        .bind(record.updated_at.to_canonical())
        .bind(to_json(record)?)
        .bind(record.path.as_str())
        .bind(expected_revision as i64)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(Self::unmatched(&mut tx, SERVERS, record.path.as_str()).await);
        }
        Self::write_tags(&mut tx, record).await?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn delete_server(
        &self,
        path: &ServerPath,
        expected_revision: u64,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        self.delete_with_audit(SERVERS, path, expected_revision, audit)
            .await
    }

    async fn insert_api_key(
        &self,
        key: &ApiKeyRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO api_keys (id, revoked_at, doc) VALUES (?, NULL, ?)")
            .bind(&key.id)
            .bind(to_json(key)?)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query("SELECT doc FROM api_keys WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.0.reads)
            .await
            .map_err(map_err)?;
        row.map(|r| from_json(r.get::<&str, _>(0))).transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT doc FROM api_keys ORDER BY id")
            .fetch_all(&self.0.reads)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| from_json(r.get::<&str, _>(0)))
            .collect()
    }

    async fn revoke_api_key(
        &self,
        id: &str,
        at: Timestamp,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT doc FROM api_keys WHERE id = ? AND revoked_at IS NULL")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let Some(row) = row else {
            return Err(StoreError::NotFound);
        };
        let mut key: ApiKeyRecord = from_json(row.get::<&str, _>(0))?;
        key.revoked_at = Some(at);
        sqlx::query("UPDATE api_keys SET revoked_at = ?, doc = ? WHERE id = ?")
            .bind(at.to_canonical())
            .bind(to_json(&key)?)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn policy(&self) -> Result<PolicySnapshot, StoreError> {
        // One read transaction: WAL gives it a consistent snapshot of both tables.
        let mut tx = self.0.reads.begin().await.map_err(map_err)?;
        let version: i64 = sqlx::query("SELECT value FROM meta WHERE key = 'policy_version'")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?
            .get(0);
        let rows = sqlx::query("SELECT doc FROM scopes ORDER BY name")
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        let documents = rows
            .iter()
            .map(|r| from_json(r.get::<&str, _>(0)))
            .collect::<Result<Vec<ScopeDocument>, _>>()?;
        tx.commit().await.map_err(map_err)?;
        Ok(PolicySnapshot {
            version: version as u64,
            documents,
        })
    }

    async fn put_scopes(
        &self,
        docs: &[ScopeDocument],
        replace_all: bool,
        audit: &AuditRecord,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        if replace_all {
            sqlx::query("DELETE FROM scopes")
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        for doc in docs {
            sqlx::query(
                "INSERT INTO scopes (name, doc) VALUES (?, ?)
                 ON CONFLICT (name) DO UPDATE SET doc = excluded.doc",
            )
            .bind(doc.name())
            .bind(to_json(doc)?)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        let version = Self::bump_policy(&mut tx).await?;
        Self::write_audit(&mut tx, &with_version(audit, version)).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(version)
    }

    async fn delete_scope(&self, name: &str, audit: &AuditRecord) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM scopes WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let version = Self::bump_policy(&mut tx).await?;
        Self::write_audit(&mut tx, &with_version(audit, version)).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(version)
    }

    async fn insert_audit_rows(&self, rows: Vec<AuditRow>) -> Result<usize, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        // One multi-row statement per 100 records: a statement per record costs a round trip
        // to SQLite's thread each, which dominated the registry's CPU under gateway load. The
        // rows' strings move into the statement's arguments.
        let mut tx = self.begin().await?;
        let mut inserted = 0;
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO audit (id, at, actor, action, resource_type, resource_id, doc) ",
            );
            q.push_values(rows.by_ref().take(100), |mut row, audit| {
                row.push_bind(audit.id)
                    .push_bind(audit.at)
                    .push_bind(audit.actor)
                    .push_bind(audit.action)
                    .push_bind(audit.resource_type)
                    .push_bind(audit.resource_id)
                    .push_bind(audit.doc);
            });
            // Only a duplicate id is skipped; any other constraint still fails the batch.
            q.push(" ON CONFLICT (id) DO NOTHING");
            let done = q.build().execute(&mut *tx).await.map_err(map_err)?;
            inserted += done.rows_affected() as usize;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(inserted)
    }

    async fn update_health(
        &self,
        updates: &[(ServerPath, mcpgw_core::domain::Health)],
    ) -> Result<(), StoreError> {
        // One transaction for a whole cycle: one fsync instead of one per server.
        let mut tx = self.begin().await?;
        for (path, health) in updates {
            sqlx::query(
                "UPDATE servers SET doc = json_set(doc, '$.health', json(?)) WHERE path = ?",
            )
            .bind(to_json(health)?)
            .bind(path.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn insert_agent(
        &self,
        record: &AgentRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO agents (path, id, revision, enabled, lifecycle, owner_team, search_text, doc)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(record.path.as_str())
        .bind(record.id.to_string())
        .bind(record.revision as i64)
        .bind(record.enabled)
        .bind(record.lifecycle.as_str())
        .bind(&record.governance.owner_team)
        .bind(record.search_text())
        .bind(to_json(record)?)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn get_agent(&self, path: &ServerPath) -> Result<Option<AgentRecord>, StoreError> {
        self.get_doc(AGENTS, path).await
    }

    async fn list_agents(
        &self,
        filter: &AgentFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AgentRecord>, StoreError> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT a.doc FROM agents a WHERE 1=1");
        if let Some(enabled) = filter.enabled {
            q.push(" AND a.enabled = ").push_bind(enabled);
        }
        if let Some(state) = filter.lifecycle {
            q.push(" AND a.lifecycle = ").push_bind(state.as_str());
        }
        if let Some(tag) = &filter.tag {
            q.push(" AND EXISTS (SELECT 1 FROM json_each(a.doc, '$.tags') t WHERE t.value = ")
                .push_bind(tag.clone())
                .push(")");
        }
        if let Some(owner) = &filter.owner_team {
            q.push(" AND a.owner_team = ").push_bind(owner.clone());
        }
        if let Some(text) = &filter.text {
            q.push(" AND instr(a.search_text, ")
                .push_bind(text.to_lowercase())
                .push(") > 0");
        }
        if let Some(after) = after {
            q.push(" AND a.path > ").push_bind(after.to_owned());
        }
        q.push(" ORDER BY a.path LIMIT ").push_bind(limit as i64);
        let rows = q.build().fetch_all(&self.0.reads).await.map_err(map_err)?;
        rows.iter()
            .map(|r| from_json(r.get::<&str, _>(0)))
            .collect()
    }

    async fn update_agent(
        &self,
        record: &AgentRecord,
        expected_revision: u64,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE agents SET revision = ?, enabled = ?, lifecycle = ?, owner_team = ?,
                    search_text = ?, doc = ?
             WHERE path = ? AND revision = ?",
        )
        .bind(record.revision as i64)
        .bind(record.enabled)
        .bind(record.lifecycle.as_str())
        .bind(&record.governance.owner_team)
        .bind(record.search_text())
        .bind(to_json(record)?)
        .bind(record.path.as_str())
        .bind(expected_revision as i64)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(Self::unmatched(&mut tx, AGENTS, record.path.as_str()).await);
        }
        Self::write_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn delete_agent(
        &self,
        path: &ServerPath,
        expected_revision: u64,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        self.delete_with_audit(AGENTS, path, expected_revision, audit)
            .await
    }

    async fn update_agent_health(
        &self,
        path: &ServerPath,
        health: &AgentHealth,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE agents SET doc = json_set(doc, '$.health', json(?)) WHERE path = ?")
            .bind(to_json(health)?)
            .bind(path.as_str())
            .execute(&self.0.writes)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT doc FROM audit WHERE 1=1");
        push_audit_filter(&mut q, filter);
        if let Some(before) = before {
            q.push(" AND id < ").push_bind(before.to_owned());
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(limit as i64);
        let rows = q.build().fetch_all(&self.0.reads).await.map_err(map_err)?;
        rows.iter()
            .map(|r| from_json(r.get::<&str, _>(0)))
            .collect()
    }

    async fn count_audit(&self, filter: &AuditFilter) -> Result<u64, StoreError> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT COUNT(*) FROM audit WHERE 1=1");
        push_audit_filter(&mut q, filter);
        let row = q.build().fetch_one(&self.0.reads).await.map_err(map_err)?;
        Ok(row.get::<i64, _>(0).max(0) as u64)
    }
}

/// The `AND …` conditions of an audit filter.
fn push_audit_filter(q: &mut QueryBuilder<Sqlite>, filter: &AuditFilter) {
    for (column, value) in [
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("resource_type", &filter.resource_type),
        ("resource_id", &filter.resource_id),
        ("json_extract(doc, '$.details.tool')", &filter.tool),
        ("json_extract(doc, '$.details.decision')", &filter.decision),
    ] {
        if let Some(v) = value {
            q.push(format!(" AND {column} = ")).push_bind(v.clone());
        }
    }
    if let Some(prefix) = &filter.action_prefix {
        // A range on the indexed column: every text that starts with the prefix sorts
        // between the prefix and the prefix followed by the highest code point.
        q.push(" AND action >= ")
            .push_bind(prefix.clone())
            .push(" AND action < ")
            .push_bind(format!("{prefix}\u{10FFFF}"));
    }
    if let Some(since) = filter.since {
        q.push(" AND at >= ").push_bind(since.to_canonical());
    }
    if let Some(until) = filter.until {
        q.push(" AND at < ").push_bind(until.to_canonical());
    }
}
