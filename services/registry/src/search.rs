//! The catalog's search index, kept in memory and following every change.
//!
//! Consistency rules (the same as the catalog cache's, see `catalog.rs`):
//! - Every server write through this process updates the index at once, incrementally (the
//!   server's own document and its tools; nothing else is touched).
//! - The index is built from the store at start. With SQLite the registry is the only writer,
//!   so that is all. With a shared store (MongoDB / DocumentDB, several replicas) it is also
//!   reconciled with the store when older than the catalog cache's expiry: the records come
//!   from the catalog cache (one load shared with lists and the gateway snapshot), and only
//!   servers whose id or revision moved are re-indexed.
//! - A reconciliation never undoes a newer write: a load that overlapped a write through this
//!   process is discarded (as the catalog cache does), and a loaded record replaces the indexed
//!   one only if it is a different server (id) or a later revision.
//!
//! With `[search.embeddings]` on, the semantic leg follows the same changes without slowing
//! them: a change indexes its documents lexically at once and queues their texts; a background
//! task embeds them in batches (off the lock; cached by text hash, so unchanged text is never
//! re-embedded) and attaches the vectors if the text is still current. A query is embedded
//! before the index is read, within `query_timeout_ms`; if that fails the answer is lexical and
//! says why.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use mcpgw_core::auth::{MissingPermission, Permission, Principal};
use mcpgw_core::domain::tool::ToolAnnotations;
use mcpgw_core::domain::{AgentRecord, Lifecycle, ServerRecord};
use mcpgw_core::policy::CompiledPolicy;
use mcpgw_core::search::{
    DocKind, Document, EmbedError, Filter, Mode, Param, SearchIndex, Weights,
};
use mcpgw_core::validate::{self, FieldError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::embeddings::{Embeddings, TextHash, text_hash};
use crate::error::Result;
use crate::service::{Registry, parse_path};
use crate::store::{AgentFilter, RegistryStore, ServerFilter, StoreError};

/// Longest query, in characters.
pub const MAX_QUERY: usize = 512;
/// Most results per request.
pub const MAX_LIMIT: u32 = 100;
pub const DEFAULT_LIMIT: u32 = 10;
/// Parameters of one tool that are indexed (a schema may declare hundreds).
const MAX_PARAMS: usize = 64;

/// What an answer needs beyond the indexed text.
#[derive(Debug, Clone, Default)]
pub struct Payload {
    pub input_schema: Option<Value>,
    pub annotations: Option<ToolAnnotations>,
    /// The tool says `readOnlyHint: true`.
    pub tool_read_only: bool,
    /// The server has the gateway's write protection on (`gateway.read_only`).
    pub server_read_only: bool,
}

/// The search documents of one server: itself and each of its tools.
pub fn documents(r: &ServerRecord) -> Vec<Document<Payload>> {
    let path = r.path.as_str();
    let server = Document {
        id: format!("server:{path}"),
        kind: DocKind::Server,
        server: path.to_owned(),
        server_name: r.name.clone(),
        name: r.name.clone(),
        title: None,
        description: r.description.clone(),
        tags: r.tags.clone(),
        params: Vec::new(),
        lifecycle: r.lifecycle,
        enabled: r.enabled,
        payload: Payload {
            server_read_only: r.gateway.read_only,
            ..Payload::default()
        },
    };
    let tools = r.tools.iter().map(|t| {
        let spec = &t.spec;
        Document {
            id: format!("tool:{path}/{}", spec.name),
            kind: DocKind::Tool,
            server: path.to_owned(),
            server_name: r.name.clone(),
            name: spec.name.clone(),
            title: spec
                .title
                .clone()
                .or_else(|| spec.annotations.title.clone()),
            description: spec.description.clone().unwrap_or_default(),
            tags: r.tags.clone(),
            params: params(&spec.input_schema),
            lifecycle: r.lifecycle,
            enabled: r.enabled,
            payload: Payload {
                input_schema: Some(spec.input_schema.clone()),
                annotations: Some(spec.annotations.clone()),
                tool_read_only: t.is_read_only(),
                server_read_only: r.gateway.read_only,
            },
        }
    });
    std::iter::once(server).chain(tools).collect()
}

/// The search document of one agent: its card, with skills indexed as parameters.
pub fn agent_document(r: &AgentRecord) -> Document<Payload> {
    let mut tags = r.tags.clone();
    tags.extend(r.card.skills.iter().flat_map(|s| s.tags.iter().cloned()));
    Document {
        id: format!("agent:{}", r.path),
        kind: DocKind::Agent,
        server: r.path.to_string(),
        server_name: r.card.name.clone(),
        name: r.card.name.clone(),
        title: None,
        description: r.card.description.clone(),
        tags,
        params: r
            .card
            .skills
            .iter()
            .take(MAX_PARAMS)
            .map(|s| Param {
                name: s.name.clone(),
                description: s.description.clone(),
            })
            .collect(),
        lifecycle: r.lifecycle,
        enabled: r.enabled,
        payload: Payload::default(),
    }
}

/// The top-level properties of a JSON Schema: names and descriptions.
fn params(schema: &Value) -> Vec<Param> {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .take(MAX_PARAMS)
        .map(|(name, p)| Param {
            name: name.clone(),
            description: p
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        })
        .collect()
}

struct Indexed {
    id: uuid::Uuid,
    revision: u64,
    docs: Vec<String>,
}

struct State {
    index: SearchIndex<Payload>,
    servers: HashMap<String, Indexed>,
    /// Indexed agents by path: (id, revision).
    agents: HashMap<String, (uuid::Uuid, u64)>,
    synced_at: Option<Instant>,
    /// With embeddings on: the provider (for its cache) and the background embedder's queue.
    semantic: Option<(Arc<Embeddings>, tokio::sync::mpsc::UnboundedSender<Job>)>,
}

/// A document text waiting to be embedded.
struct Job {
    id: String,
    hash: TextHash,
    text: String,
}

pub struct CatalogSearch {
    /// `None`: the store has no other writer; the index is built once.
    refresh_every: Option<Duration>,
    writes: AtomicU64,
    state: Arc<RwLock<State>>,
    sync: tokio::sync::Mutex<()>,
    embeddings: Option<Arc<Embeddings>>,
}

/// The query's vector, or why there is none.
pub enum QueryEmbedding {
    /// Embeddings are off: lexical search, nothing to report.
    Off,
    Ready(Vec<f32>),
    /// The provider failed or timed out: lexical search, and the answer says so.
    Failed(String),
}

impl CatalogSearch {
    pub fn new(refresh_every: Option<Duration>) -> Self {
        Self::with_weights(refresh_every, Weights::default())
    }

    /// With other scoring weights (for tuning them on the quality set).
    pub fn with_weights(refresh_every: Option<Duration>, weights: Weights) -> Self {
        Self {
            refresh_every,
            writes: AtomicU64::new(0),
            state: Arc::new(RwLock::new(State {
                index: SearchIndex::new(weights, None),
                servers: HashMap::new(),
                agents: HashMap::new(),
                synced_at: None,
                semantic: None,
            })),
            sync: tokio::sync::Mutex::new(()),
            embeddings: None,
        }
    }

    /// Turns the semantic leg on (before anything is indexed): starts the background embedder
    /// on the current tokio runtime. It stops when this index is dropped.
    pub fn with_embeddings(mut self, embeddings: Option<Arc<Embeddings>>) -> Self {
        if let Some(e) = embeddings {
            let (queue, jobs) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(embed_in_background(
                e.clone(),
                Arc::downgrade(&self.state),
                jobs,
            ));
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            state.semantic = Some((e.clone(), queue));
            drop(state);
            self.embeddings = Some(e);
        }
        self
    }

    /// The query's vector, when embeddings are on and the query is valid (an invalid one is
    /// refused by [`CatalogSearch::answer_with`] without reaching the provider).
    pub async fn embed_query(&self, req: &SearchRequest) -> QueryEmbedding {
        let Some(e) = &self.embeddings else {
            return QueryEmbedding::Off;
        };
        let Ok(query) = validate::text("query", &req.query, 1, MAX_QUERY) else {
            return QueryEmbedding::Off;
        };
        match e.embed_query(&query).await {
            Ok(v) => QueryEmbedding::Ready(v),
            Err(err) => {
                tracing::warn!(error = %err, "search query not embedded; answering lexically");
                QueryEmbedding::Failed(err.0)
            }
        }
    }

    /// A server was written through this process: index what it is now.
    pub fn server_changed(&self, record: &ServerRecord) {
        self.writes.fetch_add(1, Ordering::AcqRel);
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.put(record);
    }

    /// A server was deleted through this process.
    pub fn server_removed(&self, path: &str) {
        self.writes.fetch_add(1, Ordering::AcqRel);
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.drop_server(path);
    }

    /// An agent was written through this process: index what it is now.
    pub fn agent_changed(&self, record: &AgentRecord) {
        self.writes.fetch_add(1, Ordering::AcqRel);
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.put_agent(record);
    }

    /// An agent was deleted through this process.
    pub fn agent_removed(&self, path: &str) {
        self.writes.fetch_add(1, Ordering::AcqRel);
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.drop_agent(path);
    }

    fn due(&self) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        match (state.synced_at, self.refresh_every) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(at), Some(every)) => at.elapsed() >= every,
        }
    }

    /// Builds the index, or reconciles it with the store when it is due (see the module docs).
    pub async fn refresh(&self, registry: &Registry) -> std::result::Result<(), StoreError> {
        if !self.due() {
            return Ok(());
        }
        let _one_at_a_time = self.sync.lock().await;
        if !self.due() {
            return Ok(());
        }
        let writes = self.writes.load(Ordering::Acquire);
        let records = load(registry).await?;
        let agents = load_agents(registry.store.as_ref()).await?;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if self.writes.load(Ordering::Acquire) != writes {
            // A write went through this process while loading: the load may predate it.
            // Discarded, as the catalog cache does; the next search tries again.
            return Ok(());
        }
        let mut seen = std::collections::HashSet::with_capacity(records.len());
        for r in &records {
            seen.insert(r.path.as_str());
            let newer = state
                .servers
                .get(r.path.as_str())
                .is_none_or(|i| i.id != r.id || i.revision < r.revision);
            if newer {
                state.put(r);
            }
        }
        let gone: Vec<String> = state
            .servers
            .keys()
            .filter(|p| !seen.contains(p.as_str()))
            .cloned()
            .collect();
        for path in gone {
            state.drop_server(&path);
        }
        // Agents follow the same rules as servers.
        let seen: std::collections::HashSet<&str> =
            agents.iter().map(|a| a.path.as_str()).collect();
        for a in &agents {
            let newer = state
                .agents
                .get(a.path.as_str())
                .is_none_or(|(id, rev)| *id != a.id || *rev < a.revision);
            if newer {
                state.put_agent(a);
            }
        }
        let gone: Vec<String> = state
            .agents
            .keys()
            .filter(|p| !seen.contains(p.as_str()))
            .cloned()
            .collect();
        for path in gone {
            state.drop_agent(&path);
        }
        state.synced_at = Some(Instant::now());
        Ok(())
    }

    /// Documents indexed (servers plus tools).
    pub fn len(&self) -> usize {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl State {
    /// Indexes documents lexically at once; with embeddings on, attaches cached vectors and
    /// queues the other texts for the background embedder.
    fn upsert(&mut self, docs: Vec<Document<Payload>>) -> std::result::Result<(), EmbedError> {
        let texts: Vec<(String, String)> = match &self.semantic {
            Some(_) => docs
                .iter()
                .map(|d| (d.id.clone(), d.embedding_text()))
                .collect(),
            None => Vec::new(),
        };
        self.index.upsert_many(docs)?;
        let Some((embeddings, queue)) = &self.semantic else {
            return Ok(());
        };
        for (id, text) in texts {
            let hash = text_hash(&text);
            match embeddings.cached(&hash) {
                Some(v) => {
                    self.index.set_vector(&id, v.to_vec());
                }
                // A closed queue means the runtime is shutting down: nothing to do.
                None => drop(queue.send(Job { id, hash, text })),
            }
        }
        Ok(())
    }

    /// The document `job` was made for is still indexed with that text.
    fn current(&self, job: &Job) -> bool {
        self.index
            .get(&job.id)
            .is_some_and(|d| text_hash(&d.embedding_text()) == job.hash)
    }

    fn put(&mut self, r: &ServerRecord) {
        let docs = documents(r);
        let ids: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
        if let Some(old) = self.servers.get(r.path.as_str()) {
            for id in old.docs.iter().filter(|id| !ids.contains(id)) {
                self.index.remove(id);
            }
        }
        // Without an embedder upsert cannot fail; with one, a failure keeps the old documents.
        if let Err(e) = self.upsert(docs) {
            tracing::warn!(server = %r.path.as_str(), error = %e, "search index not updated");
            return;
        }
        self.servers.insert(
            r.path.to_string(),
            Indexed {
                id: r.id,
                revision: r.revision,
                docs: ids,
            },
        );
    }

    fn put_agent(&mut self, r: &AgentRecord) {
        if let Err(e) = self.upsert(vec![agent_document(r)]) {
            tracing::warn!(agent = %r.path.as_str(), error = %e, "search index not updated");
            return;
        }
        self.agents.insert(r.path.to_string(), (r.id, r.revision));
    }

    fn drop_agent(&mut self, path: &str) {
        if self.agents.remove(path).is_some() {
            self.index.remove(&format!("agent:{path}"));
        }
    }

    fn drop_server(&mut self, path: &str) {
        if let Some(old) = self.servers.remove(path) {
            for id in &old.docs {
                self.index.remove(id);
            }
        }
    }
}

/// Embeds queued document texts in batches, off the index lock, until the index is dropped.
/// A failed batch is retried with growing pauses (the documents stay lexical meanwhile); texts
/// that changed or went while waiting are skipped.
async fn embed_in_background(
    embeddings: Arc<Embeddings>,
    state: Weak<RwLock<State>>,
    mut jobs: tokio::sync::mpsc::UnboundedReceiver<Job>,
) {
    const FIRST_PAUSE: Duration = Duration::from_millis(500);
    let mut pending: VecDeque<Job> = VecDeque::new();
    let mut pause = FIRST_PAUSE;
    loop {
        if pending.is_empty() {
            match jobs.recv().await {
                Some(job) => pending.push_back(job),
                None => return,
            }
        }
        while let Ok(job) = jobs.try_recv() {
            pending.push_back(job);
        }
        let Some(shared) = state.upgrade() else {
            return;
        };
        // A batch of distinct texts still current and not cached (those attach at once).
        let mut batch: Vec<Job> = Vec::new();
        let mut texts: Vec<String> = Vec::new();
        {
            let mut st = shared.write().unwrap_or_else(|e| e.into_inner());
            let mut seen = HashSet::new();
            while texts.len() < embeddings.batch_size() {
                let Some(job) = pending.pop_front() else {
                    break;
                };
                if !st.current(&job) {
                    continue;
                }
                if let Some(v) = embeddings.cached(&job.hash) {
                    st.index.set_vector(&job.id, v.to_vec());
                    continue;
                }
                if seen.insert(job.hash) {
                    texts.push(job.text.clone());
                }
                batch.push(job);
            }
        }
        drop(shared);
        if batch.is_empty() {
            continue;
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        match embeddings.embed_documents(&refs).await {
            Ok(_) => {
                pause = FIRST_PAUSE;
                let Some(shared) = state.upgrade() else {
                    return;
                };
                let mut st = shared.write().unwrap_or_else(|e| e.into_inner());
                for job in &batch {
                    if let (true, Some(v)) = (st.current(job), embeddings.cached(&job.hash)) {
                        st.index.set_vector(&job.id, v.to_vec());
                    }
                }
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    documents = batch.len(),
                    retry_in_ms = pause.as_millis() as u64,
                    "search documents not embedded; they are found lexically until this works"
                );
                for job in batch.into_iter().rev() {
                    pending.push_front(job);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// Every server record: from the catalog cache when it is on (its expiry rules apply), else
/// from the store in pages.
async fn load(
    registry: &Registry,
) -> std::result::Result<Vec<std::sync::Arc<ServerRecord>>, StoreError> {
    if let Some(cache) = &registry.catalog {
        return cache.all(registry.store.as_ref()).await;
    }
    let store: &dyn RegistryStore = registry.store.as_ref();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_servers(
                &ServerFilter::default(),
                after.as_deref(),
                crate::catalog::LOAD_PAGE,
            )
            .await?;
        let full = page.len() == crate::catalog::LOAD_PAGE as usize;
        after = page.last().map(|r| r.path.to_string());
        out.extend(page.into_iter().map(std::sync::Arc::new));
        if !full {
            return Ok(out);
        }
    }
}

/// Every agent record, from the store in pages.
async fn load_agents(
    store: &dyn RegistryStore,
) -> std::result::Result<Vec<AgentRecord>, StoreError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_agents(
                &AgentFilter::default(),
                after.as_deref(),
                crate::catalog::LOAD_PAGE,
            )
            .await?;
        let full = page.len() == crate::catalog::LOAD_PAGE as usize;
        after = page.last().map(|r| r.path.to_string());
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

// ---- The request and the answer ----------------------------------------------------------

/// A search over servers and tools (agents later).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// What the caller is looking for, in words (1–512 characters).
    pub query: String,
    /// Only these kinds (`server`, `tool`, `agent`); default all.
    #[serde(default)]
    pub kinds: Option<Vec<DocKind>>,
    /// Only servers (and their tools) carrying every one of these tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Only servers in these lifecycle states; default every state but `retired`.
    #[serde(default)]
    pub lifecycle: Option<Vec<Lifecycle>>,
    /// Only this server (path) and its tools.
    #[serde(default)]
    pub server: Option<String>,
    /// 1–100, default 10.
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchResult {
    pub kind: DocKind,
    /// The server's path (for a tool: the server that serves it).
    pub server: String,
    /// The server's display name.
    pub server_name: String,
    /// The tool's name as `tools/call` takes it, or the server's display name.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub description: String,
    /// BM25F score (mode `lexical`) or reciprocal-rank-fusion score (mode `hybrid`).
    pub score: f64,
    /// 1 = best.
    pub rank: usize,
    pub tags: Vec<String>,
    pub lifecycle: Lifecycle,
    /// Tools only: the JSON Schema of the arguments, as the server declares it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input_schema: Option<Value>,
    /// Tools only: MCP annotations (`readOnlyHint`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<ToolAnnotations>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchAnswer {
    pub mode: Mode,
    pub results: Vec<SearchResult>,
    /// Set when semantic search is configured but this answer is lexical, saying why (e.g. the
    /// embedding provider timed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

impl SearchRequest {
    /// The checked query, filter and limit; errors name the field.
    fn validate(&self) -> std::result::Result<(String, Filter, usize), FieldError> {
        let query = validate::text("query", &self.query, 1, MAX_QUERY)?;
        let kinds = self.kinds.clone().unwrap_or_default();
        if kinds.len() > 3 {
            return Err(FieldError::new("kinds", "must have at most 3 entries"));
        }
        let tags = validate::list(
            "tags",
            self.tags.as_deref().unwrap_or_default(),
            mcpgw_core::domain::limits::TAGS,
            |f, t| {
                validate::identifier(
                    f,
                    &t.trim().to_ascii_lowercase(),
                    mcpgw_core::domain::limits::TAG,
                    "-_.:",
                )
            },
        )?;
        let lifecycle = match &self.lifecycle {
            Some(l) if l.is_empty() => {
                return Err(FieldError::new(
                    "lifecycle",
                    "must name at least one state, or be left out",
                ));
            }
            Some(l) if l.len() > Lifecycle::ALL.len() => {
                return Err(FieldError::new(
                    "lifecycle",
                    format!("must have at most {} entries", Lifecycle::ALL.len()),
                ));
            }
            Some(l) => l.clone(),
            // Retired servers are kept for the record, not for use.
            None => Lifecycle::ALL
                .into_iter()
                .filter(|l| *l != Lifecycle::Retired)
                .collect(),
        };
        let server = match &self.server {
            Some(s) => Some(
                parse_path(s)
                    .map_err(|_| FieldError::new("server", format!("{s:?} is not a server path")))?
                    .to_string(),
            ),
            None => None,
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT} (got {limit})"),
            ));
        }
        let filter = Filter {
            kinds,
            tags,
            lifecycle,
            server,
            include_disabled: false,
        };
        Ok((query, filter, limit as usize))
    }
}

impl Registry {
    /// Ranked search over what the caller may see (see [`CatalogSearch::answer`]), after
    /// bringing the index up to date with a shared store when it is due.
    pub async fn search(&self, caller: &Principal, req: &SearchRequest) -> Result<SearchAnswer> {
        self.search_index.refresh(self).await?;
        let policy = match &caller.identity {
            Some(_) => Some(self.compiled_policy().await?),
            None => None,
        };
        // Checked before the provider is asked anything.
        req.validate()?;
        may_search(caller)?;
        let query_vector = self.search_index.embed_query(req).await;
        self.search_index
            .answer_with(caller, policy.as_deref(), req, query_vector)
    }
}

/// A caller with no `servers:read` at all may not search.
fn may_search(caller: &Principal) -> Result<()> {
    if caller
        .limited_to(Permission::ServersRead)
        .is_some_and(|p| p.is_empty())
    {
        return Err(MissingPermission(Permission::ServersRead).into());
    }
    Ok(())
}

impl CatalogSearch {
    /// Answers from the index as it is: servers the caller may read (as in
    /// [`Registry::list_servers`]) and, of those, the tools it may call. A caller with an IdP
    /// identity is filtered tool by tool with `policy`, exactly as the gateway filters
    /// `tools/list`; an API key sees every tool of the servers it may read.
    pub fn answer(
        &self,
        caller: &Principal,
        policy: Option<&CompiledPolicy>,
        req: &SearchRequest,
    ) -> Result<SearchAnswer> {
        self.answer_with(caller, policy, req, QueryEmbedding::Off)
    }

    /// As [`CatalogSearch::answer`], with the query's vector from [`CatalogSearch::embed_query`]:
    /// hybrid when there is one, else lexical (saying why when the provider failed).
    pub fn answer_with(
        &self,
        caller: &Principal,
        policy: Option<&CompiledPolicy>,
        req: &SearchRequest,
        query_embedding: QueryEmbedding,
    ) -> Result<SearchAnswer> {
        let (query, filter, limit) = req.validate()?;
        may_search(caller)?;
        let readable = caller.limited_to(Permission::ServersRead);
        let policy_caller = match (policy, &caller.identity) {
            (Some(p), Some(identity)) => Some(p.caller(identity)),
            _ => None,
        };
        let filters = RefCell::new(HashMap::new());
        // Agents need `servers:read` unscoped (scoped grants name servers; see agents.rs).
        let reads_agents = caller.has(Permission::ServersRead);
        let visible = |d: &Document<Payload>| {
            if d.kind == DocKind::Agent {
                return reads_agents;
            }
            if readable.as_ref().is_some_and(|p| !p.contains(&d.server)) {
                return false;
            }
            let (DocKind::Tool, Some(pc)) = (d.kind, &policy_caller) else {
                return true;
            };
            let mut filters = filters.borrow_mut();
            let filter = filters
                .entry(d.server.clone())
                .or_insert_with(|| pc.tool_filter(&d.server));
            // The gateway's rule for tools/list: callable, and on a write-protected server
            // either read-only or granted writing.
            filter.allows(&d.name)
                && (!d.payload.server_read_only
                    || d.payload.tool_read_only
                    || filter.allows_write(&d.name))
        };
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let (query_vector, notice) = match query_embedding {
            QueryEmbedding::Off => (None, None),
            QueryEmbedding::Ready(v) => (Some(v), None),
            QueryEmbedding::Failed(why) => (
                None,
                Some(format!(
                    "semantic search unavailable ({why}); results are lexical"
                )),
            ),
        };
        let found = state
            .index
            .search_with_vector(&query, query_vector, &filter, limit, &visible);
        let results = found
            .hits
            .into_iter()
            .map(|h| {
                let d = &h.doc;
                SearchResult {
                    kind: d.kind,
                    server: d.server.clone(),
                    server_name: d.server_name.clone(),
                    name: d.name.clone(),
                    title: d.title.clone(),
                    description: d.description.clone(),
                    score: h.score,
                    rank: h.rank,
                    tags: d.tags.clone(),
                    lifecycle: d.lifecycle,
                    input_schema: d.payload.input_schema.clone(),
                    annotations: d.payload.annotations.clone(),
                }
            })
            .collect();
        Ok(SearchAnswer {
            mode: found.mode,
            results,
            notice,
        })
    }
}
