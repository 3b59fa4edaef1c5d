//! The production store: MongoDB API (Amazon DocumentDB in AWS, MongoDB in tests).
//!
//! Settings chosen to work on DocumentDB: retryable writes off (DocumentDB does not support
//! them), `w: majority, j: true` on every write, majority reads, and transactions for a
//! mutation plus its audit record (DocumentDB 4.0+ supports them; so does a single-node
//! replica set).
//!
//! Each server is one document: `_id` is the path; the fields lists filter on are top-level
//! copies; the full record is JSON text in `doc`. Tool input schemas routinely contain keys
//! such as `$schema` or keys with dots, which DocumentDB refuses as field names; keeping the
//! record as text sidesteps that and keeps both backends byte-identical.

use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use mcpgw_core::domain::{AgentHealth, AgentRecord, ServerPath, ServerRecord};
use mcpgw_core::policy::{PolicySnapshot, ScopeDocument};
use mcpgw_core::time::Timestamp;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{Error as MongoError, ErrorKind, WriteFailure};
use mongodb::options::{Acknowledgment, ClientOptions, ReadConcern, WriteConcern};
use mongodb::{Client, ClientSession, Collection, Database};

use super::mongo_schema;
use super::{
    AgentFilter, ApiKeyRecord, AuditFilter, AuditRecord, AuditRow, RegistryStore, ServerFilter,
    StoreError, with_version,
};
use crate::config::StoreConfig;

pub struct MongoStore {
    client: Client,
    db: Database,
    servers: Collection<Document>,
    agents: Collection<Document>,
    api_keys: Collection<Document>,
    audit: Collection<Document>,
    scopes: Collection<Document>,
    meta: Collection<Document>,
}

/// Raised inside a transaction callback to abort it with a precise outcome.
#[derive(Debug)]
enum Abort {
    Stale(u64),
    Missing,
}

fn map_err(e: MongoError) -> StoreError {
    if let Some(abort) = e.get_custom::<Abort>() {
        return match abort {
            Abort::Stale(current) => StoreError::StaleRevision { current: *current },
            Abort::Missing => StoreError::NotFound,
        };
    }
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(we)) if we.code == 11000 => {
            StoreError::Conflict(we.message.clone())
        }
        ErrorKind::Command(ce) if ce.code == 11000 => StoreError::Conflict(ce.message.clone()),
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. } => StoreError::Unavailable(e.to_string()),
        _ => {
            if e.to_string().contains("E11000") {
                StoreError::Conflict(e.to_string())
            } else {
                StoreError::Internal(e.to_string())
            }
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(format!("serializing: {e}")))
}

fn from_doc<T: serde::de::DeserializeOwned>(d: &Document) -> Result<T, StoreError> {
    let text = d
        .get_str("doc")
        .map_err(|e| StoreError::Internal(format!("a stored document has no doc field: {e}")))?;
    serde_json::from_str(text)
        .map_err(|e| StoreError::Internal(format!("a stored document does not parse: {e}")))
}

fn server_doc(r: &ServerRecord) -> Result<Document, StoreError> {
    Ok(doc! {
        "_id": r.path.as_str(),
        "id": r.id.to_string(),
        "revision": r.revision as i64,
        "enabled": r.enabled,
        "lifecycle": r.lifecycle.as_str(),
        "tags": r.tags.clone(),
        "owner_team": &r.governance.owner_team,
        "environment": r.governance.environment.as_str(),
        "search_text": r.search_text(),
        "updated_at": r.updated_at.to_canonical(),
        "doc": to_json(r)?,
    })
}

/// A stored server. Health is written beside `doc` (a string the database cannot edit in
/// place) by [`RegistryStore::update_health`]; when present it is the newer value, since every
/// full write replaces the document and drops it.
fn server_from_doc(d: &Document) -> Result<ServerRecord, StoreError> {
    let mut record: ServerRecord = from_doc(d)?;
    if let Ok(text) = d.get_str("health") {
        record.health = serde_json::from_str(text)
            .map_err(|e| StoreError::Internal(format!("a stored health does not parse: {e}")))?;
    }
    Ok(record)
}

/// Agents are stored like servers (see the module docs); health is written beside `doc`.
fn agent_doc(r: &AgentRecord) -> Result<Document, StoreError> {
    Ok(doc! {
        "_id": r.path.as_str(),
        "id": r.id.to_string(),
        "revision": r.revision as i64,
        "enabled": r.enabled,
        "lifecycle": r.lifecycle.as_str(),
        "tags": r.tags.clone(),
        "owner_team": &r.governance.owner_team,
        "search_text": r.search_text(),
        "doc": to_json(r)?,
    })
}

fn agent_from_doc(d: &Document) -> Result<AgentRecord, StoreError> {
    let mut record: AgentRecord = from_doc(d)?;
    if let Ok(text) = d.get_str("health") {
        record.health = serde_json::from_str(text)
            .map_err(|e| StoreError::Internal(format!("a stored health does not parse: {e}")))?;
    }
    Ok(record)
}

fn audit_doc(a: &AuditRecord) -> Result<Document, StoreError> {
    Ok(row_doc(AuditRow::of(a)?))
}

fn row_doc(r: AuditRow) -> Document {
    let mut d = doc! {
        "_id": r.id,
        "at": r.at,
        "actor": r.actor,
        "action": r.action,
        "resource_type": r.resource_type,
        "resource_id": r.resource_id,
        "doc": r.doc,
    };
    // Gateway-reported records are filtered by tool and decision; the record itself is the
    // JSON text in `doc`, so these two are copied beside it.
    for (key, value) in [("tool", r.tool), ("decision", r.decision)] {
        if let Some(v) = value {
            d.insert(key, v);
        }
    }
    d
}

/// Adds one to the policy version inside the session's transaction; returns the new value.
async fn bump_policy(
    meta: &Collection<Document>,
    session: &mut ClientSession,
) -> Result<u64, MongoError> {
    let updated = meta
        .find_one_and_update(
            doc! {"_id": "policy_version"},
            doc! {"$inc": {"value": 1_i64}},
        )
        .upsert(true)
        .return_document(mongodb::options::ReturnDocument::After)
        .session(session)
        .await?;
    Ok(updated.and_then(|d| d.get_i64("value").ok()).unwrap_or(1) as u64)
}

fn escape_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl MongoStore {
    /// Connects and creates missing indexes ([`mongo_schema::create_indexes`]).
    pub async fn open(url: &str, settings: &StoreConfig) -> Result<Self, StoreError> {
        let store = Self::connect(url, settings).await?;
        store.ensure_indexes().await?;
        Ok(store)
    }

    /// Connects without writing anything (no index creation): for a caller that must not
    /// change the database before it decides to, such as `mcpgw-setup --dry-run`.
    pub async fn connect(url: &str, settings: &StoreConfig) -> Result<Self, StoreError> {
        let mut options = ClientOptions::parse(url).await.map_err(|e| {
            StoreError::Internal(format!("store.url is not a valid MongoDB URL: {e}"))
        })?;
        options.app_name = Some("mcpgw-registry".to_owned());
        options.retry_writes = Some(false);
        options.write_concern = Some(
            WriteConcern::builder()
                .w(Acknowledgment::Majority)
                .journal(true)
                .build(),
        );
        options.read_concern = Some(ReadConcern::majority());
        options.server_selection_timeout = Some(Duration::from_millis(
            settings.backend.mongo_server_selection_timeout_ms,
        ));
        options.max_pool_size = Some(settings.pool_size.max(1) * 4);
        let client = Client::with_options(options).map_err(map_err)?;
        let db = client.database(&settings.backend.mongo_database);
        Ok(Self {
            servers: db.collection(mongo_schema::SERVERS),
            agents: db.collection(mongo_schema::AGENTS),
            api_keys: db.collection(mongo_schema::API_KEYS),
            audit: db.collection(mongo_schema::AUDIT),
            scopes: db.collection(mongo_schema::SCOPES),
            meta: db.collection(mongo_schema::META),
            db,
            client,
        })
    }

    /// Creates the collections' missing indexes; safe to run on every start. Validators are
    /// left to `mcpgw-setup` (see [`mongo_schema`]).
    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        mongo_schema::create_indexes(&self.db)
            .await
            .map_err(map_err)
    }

    async fn policy_version(&self) -> Result<u64, StoreError> {
        let found = self
            .meta
            .find_one(doc! {"_id": "policy_version"})
            .await
            .map_err(map_err)?;
        Ok(found.and_then(|d| d.get_i64("value").ok()).unwrap_or(0) as u64)
    }

    async fn session(&self) -> Result<ClientSession, StoreError> {
        self.client.start_session().await.map_err(map_err)
    }

    /// Fails the transaction with the precise reason a conditional write matched nothing.
    async fn why_unmatched(
        records: &Collection<Document>,
        session: &mut ClientSession,
        path: &str,
    ) -> MongoError {
        match records
            .find_one(doc! {"_id": path})
            .projection(doc! {"revision": 1})
            .session(session)
            .await
        {
            Ok(Some(d)) => {
                MongoError::custom(Abort::Stale(d.get_i64("revision").unwrap_or(0) as u64))
            }
            Ok(None) => MongoError::custom(Abort::Missing),
            Err(e) => e,
        }
    }

    /// Inserts `record` into `records` and `audit` into the audit log, in one transaction.
    async fn insert_with_audit(
        &self,
        records: &Collection<Document>,
        record: Document,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let entry = audit_doc(audit)?;
        let (records, audits) = (records.clone(), self.audit.clone());
        let mut session = self.session().await?;
        session
            .start_transaction()
            .and_run2(async move |s| {
                records.insert_one(record.clone()).session(&mut *s).await?;
                audits.insert_one(entry.clone()).session(&mut *s).await?;
                Ok(())
            })
            .await
            .map_err(map_err)
    }

    /// Replaces or deletes the record at `path` in `records` if it is still at
    /// `expected_revision`, and writes `audit`, in one transaction.
    async fn write_versioned(
        &self,
        records: &Collection<Document>,
        path: &ServerPath,
        expected_revision: u64,
        write: Write,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let entry = audit_doc(audit)?;
        let path = path.as_str().to_owned();
        let (records, audits) = (records.clone(), self.audit.clone());
        let mut session = self.session().await?;
        session
            .start_transaction()
            .and_run2(async move |s| {
                let filter = doc! {"_id": &path, "revision": expected_revision as i64};
                let matched = match &write {
                    Write::Replace(record) => {
                        let done = records
                            .replace_one(filter, record.clone())
                            .session(&mut *s)
                            .await?;
                        done.matched_count
                    }
                    Write::Delete => {
                        records
                            .delete_one(filter)
                            .session(&mut *s)
                            .await?
                            .deleted_count
                    }
                };
                if matched == 0 {
                    return Err(Self::why_unmatched(&records, s, &path).await);
                }
                audits.insert_one(entry.clone()).session(&mut *s).await?;
                Ok(())
            })
            .await
            .map_err(map_err)
    }

    /// Up to `limit` stored records matching `query` (documents and health), by path.
    async fn find_records(
        records: &Collection<Document>,
        query: Document,
        limit: u32,
    ) -> Result<Vec<Document>, StoreError> {
        let cursor = records
            .find(query)
            .projection(doc! {"doc": 1, "health": 1})
            .sort(doc! {"_id": 1})
            .limit(limit as i64)
            .await
            .map_err(map_err)?;
        cursor.try_collect().await.map_err(map_err)
    }

    /// The stored record at `path` in `records` (its document and its health).
    async fn find_record(
        records: &Collection<Document>,
        path: &ServerPath,
    ) -> Result<Option<Document>, StoreError> {
        records
            .find_one(doc! {"_id": path.as_str()})
            .projection(doc! {"doc": 1, "health": 1})
            .await
            .map_err(map_err)
    }
}

/// What [`MongoStore::write_versioned`] does to a record found at the expected revision.
enum Write {
    Replace(Document),
    Delete,
}

#[async_trait]
impl RegistryStore for MongoStore {
    fn backend(&self) -> &'static str {
        "mongodb"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .database("admin")
            .run_command(doc! {"ping": 1})
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn insert_server(
        &self,
        record: &ServerRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        self.insert_with_audit(&self.servers, server_doc(record)?, audit)
            .await
    }

    async fn get_server(&self, path: &ServerPath) -> Result<Option<ServerRecord>, StoreError> {
        let found = Self::find_record(&self.servers, path).await?;
        found.as_ref().map(server_from_doc).transpose()
    }

    async fn list_servers(
        &self,
        filter: &ServerFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ServerRecord>, StoreError> {
        let mut query = Document::new();
        if let Some(enabled) = filter.enabled {
            query.insert("enabled", enabled);
        }
        if let Some(states) = &filter.lifecycle {
            let list: Vec<Bson> = states.iter().map(|s| Bson::from(s.as_str())).collect();
            query.insert("lifecycle", doc! {"$in": list});
        }
        if let Some(tag) = &filter.tag {
            query.insert("tags", tag.as_str());
        }
        if let Some(owner) = &filter.owner_team {
            query.insert("owner_team", owner.as_str());
        }
        if let Some(env) = filter.environment {
            query.insert("environment", env.as_str());
        }
        if let Some(text) = &filter.text {
            query.insert(
                "search_text",
                doc! {"$regex": escape_regex(&text.to_lowercase())},
            );
        }
        if let Some(since) = filter.updated_since {
            query.insert("updated_at", doc! {"$gte": since.to_canonical()});
        }
        let mut id = Document::new();
        if let Some(paths) = &filter.paths {
            let list: Vec<Bson> = paths.iter().map(|p| Bson::from(p.as_str())).collect();
            id.insert("$in", list);
        }
        if let Some(after) = after {
            id.insert("$gt", after);
        }
        if !id.is_empty() {
            query.insert("_id", id);
        }
        let docs = Self::find_records(&self.servers, query, limit).await?;
        docs.iter().map(server_from_doc).collect()
    }

    async fn update_server(
        &self,
        record: &ServerRecord,
        expected_revision: u64,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let server = server_doc(record)?;
        self.write_versioned(
            &self.servers,
            &record.path,
            expected_revision,
            Write::Replace(server),
            audit,
        )
        .await
    }

    async fn delete_server(
        &self,
        path: &ServerPath,
        expected_revision: u64,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        self.write_versioned(&self.servers, path, expected_revision, Write::Delete, audit)
            .await
    }

    async fn insert_api_key(
        &self,
        key: &ApiKeyRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let key_doc = doc! {"_id": &key.id, "revoked": false, "doc": to_json(key)?};
        self.insert_with_audit(&self.api_keys, key_doc, audit).await
    }

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let found = self
            .api_keys
            .find_one(doc! {"_id": id})
            .await
            .map_err(map_err)?;
        found.as_ref().map(from_doc).transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let cursor = self
            .api_keys
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await
            .map_err(map_err)?;
        let docs: Vec<Document> = cursor.try_collect().await.map_err(map_err)?;
        docs.iter().map(from_doc).collect()
    }

    async fn revoke_api_key(
        &self,
        id: &str,
        at: Timestamp,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let entry = audit_doc(audit)?;
        let id = id.to_owned();
        let (keys, audits) = (self.api_keys.clone(), self.audit.clone());
        let mut session = self.session().await?;
        session
            .start_transaction()
            .and_run2(async move |s| {
                let Some(found) = keys
                    .find_one(doc! {"_id": &id, "revoked": false})
                    .session(&mut *s)
                    .await?
                else {
                    return Err(MongoError::custom(Abort::Missing));
                };
                let mut key: ApiKeyRecord = from_doc(&found).map_err(MongoError::custom)?;
                key.revoked_at = Some(at);
                let text = serde_json::to_string(&key).map_err(MongoError::custom)?;
                keys.update_one(
                    doc! {"_id": &id, "revoked": false},
                    doc! {"$set": {"revoked": true, "doc": text}},
                )
                .session(&mut *s)
                .await?;
                audits.insert_one(entry.clone()).session(&mut *s).await?;
                Ok(())
            })
            .await
            .map_err(map_err)
    }

    async fn policy(&self) -> Result<PolicySnapshot, StoreError> {
        // The version is read before and after the documents; a change in between retries, so
        // the snapshot's documents are exactly those of its version.
        for _ in 0..5 {
            let before = self.policy_version().await?;
            let cursor = self
                .scopes
                .find(doc! {})
                .sort(doc! {"_id": 1})
                .await
                .map_err(map_err)?;
            let docs: Vec<Document> = cursor.try_collect().await.map_err(map_err)?;
            if self.policy_version().await? == before {
                return Ok(PolicySnapshot {
                    version: before,
                    documents: docs.iter().map(from_doc).collect::<Result<_, _>>()?,
                });
            }
        }
        Err(StoreError::Unavailable(
            "the policy kept changing while it was read; retry".to_owned(),
        ))
    }

    async fn put_scopes(
        &self,
        docs: &[ScopeDocument],
        replace_all: bool,
        audit: &AuditRecord,
    ) -> Result<u64, StoreError> {
        let mut rows = Vec::with_capacity(docs.len());
        for d in docs {
            rows.push(doc! {"_id": d.name(), "doc": to_json(d)?});
        }
        let audit = audit.clone();
        let (scopes, meta, audits) = (self.scopes.clone(), self.meta.clone(), self.audit.clone());
        let mut session = self.session().await?;
        session
            .start_transaction()
            .and_run2(async move |s| {
                if replace_all {
                    scopes.delete_many(doc! {}).session(&mut *s).await?;
                }
                for row in &rows {
                    scopes
                        .replace_one(
                            doc! {"_id": row.get_str("_id").unwrap_or_default()},
                            row.clone(),
                        )
                        .upsert(true)
                        .session(&mut *s)
                        .await?;
                }
                let version = bump_policy(&meta, s).await?;
                let entry =
                    audit_doc(&with_version(&audit, version)).map_err(MongoError::custom)?;
                audits.insert_one(entry).session(&mut *s).await?;
                Ok(version)
            })
            .await
            .map_err(map_err)
    }

    async fn delete_scope(&self, name: &str, audit: &AuditRecord) -> Result<u64, StoreError> {
        let name = name.to_owned();
        let audit = audit.clone();
        let (scopes, meta, audits) = (self.scopes.clone(), self.meta.clone(), self.audit.clone());
        let mut session = self.session().await?;
        session
            .start_transaction()
            .and_run2(async move |s| {
                let done = scopes
                    .delete_one(doc! {"_id": &name})
                    .session(&mut *s)
                    .await?;
                if done.deleted_count == 0 {
                    return Err(MongoError::custom(Abort::Missing));
                }
                let version = bump_policy(&meta, s).await?;
                let entry =
                    audit_doc(&with_version(&audit, version)).map_err(MongoError::custom)?;
                audits.insert_one(entry).session(&mut *s).await?;
                Ok(version)
            })
            .await
            .map_err(map_err)
    }

    async fn insert_audit_rows(&self, rows: Vec<AuditRow>) -> Result<usize, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let count = rows.len();
        let docs: Vec<Document> = rows.into_iter().map(row_doc).collect();
        // Unordered: every record is tried; a duplicate id (11000) is a record stored before.
        // The client's write concern (majority, journaled) applies.
        match self.audit.insert_many(docs).ordered(false).await {
            Ok(done) => Ok(done.inserted_ids.len()),
            Err(e) => match e.kind.as_ref() {
                ErrorKind::InsertMany(failure) if failure.write_concern_error.is_none() => {
                    let errors = failure.write_errors.as_deref().unwrap_or_default();
                    match errors.iter().find(|we| we.code != 11000) {
                        Some(other) => Err(StoreError::Internal(format!(
                            "inserting audit records: {} ({})",
                            other.message, other.code
                        ))),
                        None => Ok(count - errors.len()),
                    }
                }
                ErrorKind::InsertMany(failure) => Err(StoreError::Unavailable(format!(
                    "audit records not confirmed durable: {:?}",
                    failure.write_concern_error
                ))),
                _ => Err(map_err(e)),
            },
        }
    }

    async fn update_health(
        &self,
        updates: &[(ServerPath, mcpgw_core::domain::Health)],
    ) -> Result<(), StoreError> {
        use futures::StreamExt;
        // Independent single-document writes, a few at a time (each waits for the majority).
        let mut writes = Vec::with_capacity(updates.len());
        for (path, health) in updates {
            let (servers, path, text) = (self.servers.clone(), path.to_string(), to_json(health)?);
            writes.push(async move {
                servers
                    .update_one(doc! {"_id": path}, doc! {"$set": {"health": text}})
                    .await
                    .map(|_| ())
                    .map_err(map_err)
            });
        }
        let results: Vec<Result<(), StoreError>> = futures::stream::iter(writes)
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn insert_agent(
        &self,
        record: &AgentRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        self.insert_with_audit(&self.agents, agent_doc(record)?, audit)
            .await
    }

    async fn get_agent(&self, path: &ServerPath) -> Result<Option<AgentRecord>, StoreError> {
        let found = Self::find_record(&self.agents, path).await?;
        found.as_ref().map(agent_from_doc).transpose()
    }

    async fn list_agents(
        &self,
        filter: &AgentFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AgentRecord>, StoreError> {
        let mut query = Document::new();
        if let Some(enabled) = filter.enabled {
            query.insert("enabled", enabled);
        }
        if let Some(state) = filter.lifecycle {
            query.insert("lifecycle", state.as_str());
        }
        if let Some(tag) = &filter.tag {
            query.insert("tags", tag.as_str());
        }
        if let Some(owner) = &filter.owner_team {
            query.insert("owner_team", owner.as_str());
        }
        if let Some(text) = &filter.text {
            query.insert(
                "search_text",
                doc! {"$regex": escape_regex(&text.to_lowercase())},
            );
        }
        if let Some(after) = after {
            query.insert("_id", doc! {"$gt": after});
        }
        let docs = Self::find_records(&self.agents, query, limit).await?;
        docs.iter().map(agent_from_doc).collect()
    }

    async fn update_agent(
        &self,
        record: &AgentRecord,
        expected_revision: u64,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let agent = agent_doc(record)?;
        self.write_versioned(
            &self.agents,
            &record.path,
            expected_revision,
            Write::Replace(agent),
            audit,
        )
        .await
    }

    async fn delete_agent(
        &self,
        path: &ServerPath,
        expected_revision: u64,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        self.write_versioned(&self.agents, path, expected_revision, Write::Delete, audit)
            .await
    }

    async fn update_agent_health(
        &self,
        path: &ServerPath,
        health: &AgentHealth,
    ) -> Result<(), StoreError> {
        self.agents
            .update_one(
                doc! {"_id": path.as_str()},
                doc! {"$set": {"health": to_json(health)?}},
            )
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn health_lease(&self, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = chrono::Utc::now().timestamp_millis();
        let until = now + ttl.as_millis() as i64;
        // Taken when free, expired, or already ours; an upsert that collides with another
        // holder's unexpired lease is a duplicate key, i.e. "not granted".
        let taken = self
            .meta
            .update_one(
                doc! {"_id": "health_lease", "$or": [{"until": {"$lt": now}}, {"holder": holder}]},
                doc! {"$set": {"holder": holder, "until": until}},
            )
            .upsert(true)
            .await;
        match taken.map_err(map_err) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut query = audit_query(filter);
        if let Some(before) = before {
            query.insert("_id", doc! {"$lt": before});
        }
        let cursor = self
            .audit
            .find(query)
            .sort(doc! {"_id": -1})
            .limit(limit as i64)
            .await
            .map_err(map_err)?;
        let docs: Vec<Document> = cursor.try_collect().await.map_err(map_err)?;
        docs.iter().map(from_doc).collect()
    }

    async fn count_audit(&self, filter: &AuditFilter) -> Result<u64, StoreError> {
        self.audit
            .count_documents(audit_query(filter))
            .await
            .map_err(map_err)
    }
}

/// The query document of an audit filter.
fn audit_query(filter: &AuditFilter) -> Document {
    let mut query = Document::new();
    for (field, value) in [
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("resource_type", &filter.resource_type),
        ("resource_id", &filter.resource_id),
        ("tool", &filter.tool),
        ("decision", &filter.decision),
    ] {
        if let Some(v) = value {
            query.insert(field, v.as_str());
        }
    }
    if let Some(prefix) = &filter.action_prefix {
        // An anchored regex without options is answered from the `action` index. (The API
        // sets either `action` or `action_prefix`, never both.)
        query.insert(
            "action",
            doc! {"$regex": format!("^{}", escape_regex(prefix))},
        );
    }
    let mut at = Document::new();
    if let Some(since) = filter.since {
        at.insert("$gte", since.to_canonical());
    }
    if let Some(until) = filter.until {
        at.insert("$lt", until.to_canonical());
    }
    if !at.is_empty() {
        query.insert("at", at);
    }
    query
}

#[cfg(test)]
mod tests {
    #[test]
    fn regex_metacharacters_are_escaped() {
        assert_eq!(super::escape_regex("a.b*(c)"), "a\\.b\\*\\(c\\)");
    }
}
