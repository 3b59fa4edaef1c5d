//! The catalog in memory, for lists and filters.
//!
//! A list request filters every server, so serving it from the store costs a query, a parse of
//! each stored record and a sort on every request. The catalog is small (thousands of servers),
//! so the registry keeps all records in memory, sorted by path, with their search text, and
//! answers lists from there.
//!
//! Consistency rules:
//! - Every write through this process invalidates the cache, so this process reads its own
//!   writes at once.
//! - With SQLite the registry is the only writer, so that is all. With a shared store (MongoDB /
//!   DocumentDB, several replicas) the cache also expires after `store.catalog_cache_ms`, the most
//!   a list can lag a write made through another replica.
//! - A reload that overlaps a write is discarded (the write counter moved), never kept.
//! - Reads of one server (`GET /api/v1/servers/{path}`) and every write go to the store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use mcpgw_core::domain::ServerRecord;

use crate::store::{RegistryStore, ServerFilter, StoreError};

struct Entry {
    record: Arc<ServerRecord>,
    search_text: String,
}

struct Loaded {
    at: Instant,
    writes: u64,
    /// Sorted by path.
    entries: Vec<Entry>,
}

pub struct CatalogCache {
    /// `None`: valid until the next write (the store has no other writer).
    ttl: Option<Duration>,
    writes: AtomicU64,
    state: RwLock<Option<Arc<Loaded>>>,
    reload: tokio::sync::Mutex<()>,
}

/// Records read per store call while loading.
pub const LOAD_PAGE: u32 = 1000;

impl CatalogCache {
    pub fn new(ttl: Option<Duration>) -> Self {
        Self {
            ttl,
            writes: AtomicU64::new(0),
            state: RwLock::new(None),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    /// Call after every successful write of a server.
    pub fn invalidate(&self) {
        self.writes.fetch_add(1, Ordering::AcqRel);
    }

    fn valid(&self) -> Option<Arc<Loaded>> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state
            .as_ref()
            .filter(|l| l.writes == self.writes.load(Ordering::Acquire))
            .filter(|l| self.ttl.is_none_or(|ttl| l.at.elapsed() < ttl))
            .cloned()
    }

    async fn current(&self, store: &dyn RegistryStore) -> Result<Arc<Loaded>, StoreError> {
        if let Some(l) = self.valid() {
            return Ok(l);
        }
        let _one_reload_at_a_time = self.reload.lock().await;
        if let Some(l) = self.valid() {
            return Ok(l);
        }
        let writes = self.writes.load(Ordering::Acquire);
        let at = Instant::now();
        let mut entries = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_servers(&ServerFilter::default(), after.as_deref(), LOAD_PAGE)
                .await?;
            let full = page.len() == LOAD_PAGE as usize;
            after = page.last().map(|r| r.path.to_string());
            entries.extend(page.into_iter().map(|r| Entry {
                search_text: r.search_text(),
                record: Arc::new(r),
            }));
            if !full {
                break;
            }
        }
        let loaded = Arc::new(Loaded {
            at,
            writes,
            entries,
        });
        // Kept only if no write happened while loading; either way this caller uses what it read,
        // which is at least as new as the moment it asked.
        if self.writes.load(Ordering::Acquire) == writes {
            *self.state.write().unwrap_or_else(|e| e.into_inner()) = Some(loaded.clone());
        }
        Ok(loaded)
    }

    /// Every server, ordered by path (for the gateway snapshot).
    pub async fn all(
        &self,
        store: &dyn RegistryStore,
    ) -> Result<Vec<Arc<ServerRecord>>, StoreError> {
        let loaded = self.current(store).await?;
        Ok(loaded.entries.iter().map(|e| e.record.clone()).collect())
    }

    /// Servers matching `filter`, ordered by path, after the path `after`, at most `limit`.
    pub async fn list(
        &self,
        store: &dyn RegistryStore,
        filter: &ServerFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Arc<ServerRecord>>, StoreError> {
        let loaded = self.current(store).await?;
        let start = match after {
            Some(a) => loaded
                .entries
                .partition_point(|e| e.record.path.as_str() <= a),
            None => 0,
        };
        Ok(loaded.entries[start..]
            .iter()
            .filter(|e| filter.matches_with_text(&e.record, &e.search_text))
            .take(limit as usize)
            .map(|e| e.record.clone())
            .collect())
    }
}
