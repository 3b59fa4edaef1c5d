//! The tools behind `/mcp`: one search index over every routed server's tools (from the
//! registry's snapshot), and per caller a [`View`] that decides which of them the caller may
//! see and call, and with which definition.
//!
//! The index is shared by all callers and updated in place when a snapshot arrives: servers
//! whose route did not change (the route table reuses their `Arc<Route>`) are not re-indexed.
//! Who may see what is decided per request, with the same checks as a per-server
//! `tools/call` (policy, write protection, tool integrity), never stored.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, Weak};

use mcpgw_core::domain::Lifecycle;
use mcpgw_core::domain::integrity::Gate;
use mcpgw_core::policy::{Identity, ToolFilter};
use mcpgw_core::search::{DocKind, Document, Filter, Param, SearchIndex};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::routes::{Route, Routes};

pub use super::SEPARATOR;
/// Parameters of one tool that are indexed (names and descriptions), at most.
const MAX_INDEXED_PARAMS: usize = 64;

/// The name a tool of `server` has on `/mcp`.
pub fn exposed_name(server: &str, tool: &str) -> String {
    format!("{server}{SEPARATOR}{tool}")
}

/// One tool of one server, as the registry last described it.
pub struct Entry {
    pub server: String,
    pub tool: String,
    pub exposed: String,
    /// The definition the registry holds now (none: approved, since removed).
    current: Option<Value>,
    /// The approved definition (served when integrity says `ServeApproved`).
    approved: Option<Value>,
}

struct Indexed {
    /// The route the server's tools were indexed from; another `Arc` means it changed.
    route: Weak<Route>,
    names: Vec<String>,
}

/// The shared index and where its entries came from.
#[derive(Default)]
pub struct Catalog {
    version: String,
    index: SearchIndex<Arc<Entry>>,
    /// Exposed name → entry, in name order (plain aggregation lists in this order).
    by_name: BTreeMap<String, Arc<Entry>>,
    servers: HashMap<String, Indexed>,
}

/// The catalog behind a lock, refreshed when a request sees a newer snapshot.
#[derive(Default)]
pub struct SharedCatalog(RwLock<Catalog>);

impl SharedCatalog {
    /// Brings the catalog up to `routes` (if it is not already) and runs `f` on it.
    pub fn with<R>(&self, routes: &Routes, f: impl FnOnce(&Catalog) -> R) -> R {
        {
            let catalog = self.0.read().unwrap_or_else(|e| e.into_inner());
            if catalog.version == routes.version {
                return f(&catalog);
            }
        }
        let mut catalog = self.0.write().unwrap_or_else(|e| e.into_inner());
        if catalog.version != routes.version {
            catalog.refresh(routes);
        }
        f(&catalog)
    }
}

impl Catalog {
    /// Re-indexes the servers that are new or changed, and drops those that are gone.
    fn refresh(&mut self, routes: &Routes) {
        let stale: Vec<String> = self
            .servers
            .iter()
            .filter(|(path, seen)| {
                routes
                    .get(path)
                    .is_none_or(|now| !std::ptr::eq(Arc::as_ptr(now), seen.route.as_ptr()))
            })
            .map(|(path, _)| path.clone())
            .collect();
        for path in stale {
            if let Some(seen) = self.servers.remove(&path) {
                for name in seen.names {
                    self.index.remove(&name);
                    self.by_name.remove(&name);
                }
            }
        }
        let mut docs = Vec::new();
        for (path, route) in &routes.servers {
            if self.servers.contains_key(path) {
                continue;
            }
            let mut names = Vec::with_capacity(route.entry.tools.len());
            for tool in &route.entry.tools {
                let entry = Arc::new(Entry {
                    server: path.clone(),
                    tool: tool.name.clone(),
                    exposed: exposed_name(path, &tool.name),
                    current: tool.definition.clone(),
                    approved: tool.approved.clone(),
                });
                names.push(entry.exposed.clone());
                self.by_name
                    .insert(entry.exposed.clone(), Arc::clone(&entry));
                docs.push(document(&route.entry.name, entry));
            }
            self.servers.insert(
                path.clone(),
                Indexed {
                    route: Arc::downgrade(route),
                    names,
                },
            );
        }
        // No embedder is set, so upserting cannot fail.
        let _ = self.index.upsert_many(docs);
        self.version = routes.version.clone();
    }

    pub fn get(&self, exposed: &str) -> Option<&Arc<Entry>> {
        self.by_name.get(exposed)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The best `limit` tools for `query` that `view` shows, best first, as shown.
    pub fn search(&self, view: &View<'_>, query: &str, limit: usize) -> Vec<Value> {
        let results = self.index.search(query, &Filter::default(), limit, &|doc| {
            view.shown(&doc.payload).is_some()
        });
        results
            .hits
            .iter()
            .filter_map(|hit| view.shown(&hit.doc.payload))
            .collect()
    }

    /// Every tool `view` shows, in name order.
    pub fn all(&self, view: &View<'_>) -> Vec<Value> {
        self.by_name
            .values()
            .filter_map(|e| view.shown(e))
            .collect()
    }

    /// A digest of what `view` shows: it changes exactly when the caller's tool list does.
    pub fn fingerprint(&self, view: &View<'_>) -> [u8; 32] {
        let mut hash = Sha256::new();
        for entry in self.by_name.values() {
            if let Some(shown) = view.shown(entry) {
                hash.update(shown.to_string().as_bytes());
                hash.update([0]);
            }
        }
        hash.finalize().into()
    }
}

fn text(definition: Option<&Value>, pointer: &str) -> Option<String> {
    definition
        .and_then(|d| d.pointer(pointer))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The search document of one tool: name, title, description and parameters are indexed, the
/// server's path and name too (so "weather" finds the weather server's tools).
fn document(server_name: &str, entry: Arc<Entry>) -> Document<Arc<Entry>> {
    let definition = entry.current.as_ref().or(entry.approved.as_ref());
    let params = definition
        .and_then(|d| d.pointer("/inputSchema/properties"))
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .take(MAX_INDEXED_PARAMS)
                .map(|(name, schema)| Param {
                    name: name.clone(),
                    description: text(Some(schema), "/description").unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Document {
        id: entry.exposed.clone(),
        kind: DocKind::Tool,
        server: entry.server.clone(),
        server_name: server_name.to_owned(),
        name: entry.tool.clone(),
        title: text(definition, "/title").or_else(|| text(definition, "/annotations/title")),
        description: text(definition, "/description").unwrap_or_default(),
        tags: Vec::new(),
        params,
        // The snapshot holds only servers this gateway may route; lifecycle is not filtered.
        lifecycle: Lifecycle::ApprovedProd,
        enabled: true,
        payload: entry,
    }
}

/// What one caller may see of the catalog: the checks of a per-server `tools/call`, prepared
/// for every routed server.
pub struct View<'p> {
    routes: &'p Routes,
    filters: HashMap<&'p str, ToolFilter<'p>>,
}

impl<'p> View<'p> {
    pub fn new(routes: &'p Routes, identity: &Identity) -> Self {
        let caller = routes.policy.caller(identity);
        let filters = routes
            .servers
            .keys()
            .map(|path| (path.as_str(), caller.tool_filter(path)))
            .collect();
        Self { routes, filters }
    }

    /// The definition `entry` has for this caller (named as exposed), or `None` when the
    /// caller may not call it: not granted by policy, a write on a write-protected server
    /// without `allow_write`, withheld by tool integrity, or on a route that cannot be used.
    pub fn shown(&self, entry: &Entry) -> Option<Value> {
        let route = self.routes.get(&entry.server)?;
        if route.broken.is_some() {
            return None;
        }
        let filter = self.filters.get(entry.server.as_str())?;
        if !filter.allows(&entry.tool) {
            return None;
        }
        if route.entry.gateway.read_only
            && !route.is_read_only(&entry.tool)
            && !filter.allows_write(&entry.tool)
        {
            return None;
        }
        let definition = match route.integrity.gate(&entry.tool) {
            Gate::Hide => return None,
            Gate::ServeApproved => entry.approved.as_ref()?,
            Gate::Serve => entry.current.as_ref().or(entry.approved.as_ref())?,
        };
        Some(exposed_definition(definition, &entry.exposed))
    }
}

/// A tool definition renamed to its exposed name, with only the fields an agent needs.
fn exposed_definition(definition: &Value, exposed: &str) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), Value::String(exposed.to_owned()));
    for key in [
        "title",
        "description",
        "inputSchema",
        "outputSchema",
        "annotations",
    ] {
        if let Some(v) = definition.get(key)
            && !v.is_null()
        {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_names_split_at_the_first_separator() {
        let name = exposed_name("time-zones", "get__current");
        assert_eq!(name, "time-zones__get__current");
        assert_eq!(
            name.split_once(SEPARATOR),
            Some(("time-zones", "get__current"))
        );
    }

    #[test]
    fn an_exposed_definition_keeps_what_agents_read() {
        let d = serde_json::json!({
            "name": "add", "description": "Add", "inputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true}, "icons": [], "title": null
        });
        assert_eq!(
            exposed_definition(&d, "calc__add"),
            serde_json::json!({
                "name": "calc__add", "description": "Add", "inputSchema": {"type": "object"},
                "annotations": {"readOnlyHint": true}
            })
        );
    }
}
