//! Ranked search over the catalog: servers, tools and (later) agents in one index.
//!
//! Pure: no I/O, no clock, no locks. The registry keeps one [`SearchIndex`] behind a lock and
//! feeds it every change; the gateway can do the same for its aggregated `discover_tools`.
//!
//! - Lexical: BM25F ([`bm25`]) over analyzed text ([`tokenize`]), field weights from
//!   [`Weights`]. Always on.
//! - Semantic (optional): an [`Embedder`] and a cosine top-k ([`semantic`]). When one is set,
//!   both rankings are fused with reciprocal rank fusion ([`fusion`], k = 60).
//! - Filters (kinds, tags, lifecycle, server) and a caller-supplied visibility check are
//!   applied before the top-k is cut, so a page is never short because of hidden documents.
//! - Ties are broken by document id, so equal input gives equal output.

pub mod bm25;
pub mod fusion;
pub mod semantic;
pub mod tokenize;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use bm25::{Field, Weights};
pub use fusion::{RRF_K, reciprocal_rank_fusion};
pub use semantic::{EmbedError, Embedder};

use crate::domain::Lifecycle;

/// What a document describes.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Server,
    Tool,
    /// A registered A2A agent (the catalog has none yet; the kind is reserved so that agents
    /// slot in without changing the index or the API).
    Agent,
}

/// A tool parameter, as indexed.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub description: String,
}

/// One searchable thing. `payload` is whatever the caller needs to build an answer (the index
/// never reads it).
#[derive(Debug, Clone)]
pub struct Document<T> {
    /// Unique in the index, e.g. `server:weather` or `tool:weather/get_forecast`.
    pub id: String,
    pub kind: DocKind,
    /// The path of the owning server (a server's own path; an agent's path for agents).
    pub server: String,
    /// For tools: the owning server's display name (indexed with its path).
    pub server_name: String,
    pub name: String,
    pub title: Option<String>,
    pub description: String,
    pub tags: Vec<String>,
    pub params: Vec<Param>,
    pub lifecycle: Lifecycle,
    pub enabled: bool,
    pub payload: T,
}

impl<T> Document<T> {
    fn fields(&self) -> Vec<(Field, String)> {
        let mut name = self.name.clone();
        if self.kind != DocKind::Tool {
            name = format!("{name} {}", self.server);
        }
        let mut out = vec![
            (Field::Name, name),
            (Field::Description, self.description.clone()),
            (Field::Tags, self.tags.join(" ")),
        ];
        if let Some(t) = &self.title {
            out.push((Field::Title, t.clone()));
        }
        if !self.params.is_empty() {
            let text = self
                .params
                .iter()
                .map(|p| format!("{} {}", p.name, p.description))
                .collect::<Vec<_>>()
                .join(" ");
            out.push((Field::Params, text));
        }
        if self.kind == DocKind::Tool {
            out.push((
                Field::Server,
                format!("{} {}", self.server_name, self.server),
            ));
        }
        out
    }

    /// The text the semantic leg embeds: what a person would read about it.
    pub fn embedding_text(&self) -> String {
        let mut text = self.name.clone();
        for part in [self.title.as_deref(), Some(&self.description)]
            .into_iter()
            .flatten()
        {
            text.push_str(". ");
            text.push_str(part);
        }
        if self.kind == DocKind::Tool {
            text.push_str(". Server: ");
            text.push_str(&self.server_name);
        }
        text
    }
}

/// Which documents a query may return. Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub kinds: Vec<DocKind>,
    /// Every one of these tags (compared case-insensitively).
    pub tags: Vec<String>,
    pub lifecycle: Vec<Lifecycle>,
    /// Only documents of this server (its own document and its tools).
    pub server: Option<String>,
    /// Disabled documents are left out unless this is set.
    pub include_disabled: bool,
}

impl Filter {
    pub fn matches<T>(&self, d: &Document<T>) -> bool {
        (self.include_disabled || d.enabled)
            && (self.kinds.is_empty() || self.kinds.contains(&d.kind))
            && (self.lifecycle.is_empty() || self.lifecycle.contains(&d.lifecycle))
            && self.server.as_ref().is_none_or(|s| *s == d.server)
            && self
                .tags
                .iter()
                .all(|t| d.tags.iter().any(|have| have.eq_ignore_ascii_case(t)))
    }
}

/// How results were ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// BM25 only.
    Lexical,
    /// BM25 and the semantic leg, fused with reciprocal rank fusion.
    Hybrid,
}

/// One result: the document, its score (BM25F in lexical mode, the fused RRF score in hybrid
/// mode) and its rank (1 = best).
#[derive(Debug, Clone)]
pub struct Hit<T> {
    pub doc: Arc<Document<T>>,
    pub score: f64,
    pub rank: usize,
}

#[derive(Debug, Clone)]
pub struct Results<T> {
    pub mode: Mode,
    pub hits: Vec<Hit<T>>,
}

/// How many candidates each leg contributes to the fusion, at least.
const FUSION_DEPTH: usize = 100;

/// The index: documents by id, the BM25F postings and (with an embedder) their vectors.
pub struct SearchIndex<T> {
    weights: Weights,
    embedder: Option<Arc<dyn Embedder>>,
    /// By slot; `None` for a free slot.
    docs: Vec<Option<Arc<Document<T>>>>,
    slots: HashMap<String, u32>,
    free: Vec<u32>,
    next_slot: u32,
    lexical: bm25::Bm25,
    vectors: semantic::Vectors,
}

impl<T> Default for SearchIndex<T> {
    fn default() -> Self {
        Self::new(Weights::default(), None)
    }
}

impl<T> SearchIndex<T> {
    pub fn new(weights: Weights, embedder: Option<Arc<dyn Embedder>>) -> Self {
        Self {
            weights,
            embedder,
            docs: Vec::new(),
            slots: HashMap::new(),
            free: Vec::new(),
            next_slot: 0,
            lexical: bm25::Bm25::default(),
            vectors: semantic::Vectors::default(),
        }
    }

    pub fn mode(&self) -> Mode {
        if self.embedder.is_some() {
            Mode::Hybrid
        } else {
            Mode::Lexical
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Document<T>>> {
        self.slots
            .get(id)
            .and_then(|s| self.docs[*s as usize].as_ref())
    }

    /// Adds or replaces one document. Costs about the size of the document (plus one embedding
    /// call when an embedder is set).
    pub fn upsert(&mut self, doc: Document<T>) -> Result<(), EmbedError> {
        self.upsert_many(vec![doc])
    }

    /// Adds or replaces documents, embedding them in one batch. On an embedding error nothing
    /// changes.
    pub fn upsert_many(&mut self, docs: Vec<Document<T>>) -> Result<(), EmbedError> {
        let vectors = match &self.embedder {
            Some(e) => {
                let texts: Vec<String> = docs.iter().map(Document::embedding_text).collect();
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let vectors = e.embed(&refs)?;
                if vectors.len() != docs.len() {
                    return Err(EmbedError(format!(
                        "{} vectors for {} texts",
                        vectors.len(),
                        docs.len()
                    )));
                }
                Some(vectors)
            }
            None => None,
        };
        let mut vectors = vectors.map(Vec::into_iter);
        for doc in docs {
            self.remove(&doc.id);
            let slot = self.free.pop().unwrap_or_else(|| {
                self.next_slot += 1;
                self.next_slot - 1
            });
            let fields = doc.fields();
            let refs: Vec<(Field, &str)> = fields.iter().map(|(f, t)| (*f, t.as_str())).collect();
            self.lexical.insert(slot, &refs);
            if let Some(v) = vectors.as_mut().and_then(Iterator::next) {
                self.vectors.insert(slot, v);
            }
            self.slots.insert(doc.id.clone(), slot);
            if self.docs.len() <= slot as usize {
                self.docs.resize_with(slot as usize + 1, || None);
            }
            self.docs[slot as usize] = Some(Arc::new(doc));
        }
        Ok(())
    }

    /// Sets the vector of an indexed document, embedded outside the index (the registry embeds
    /// in the background, off the index lock). Returns whether the document is there. The
    /// vector goes when the document is replaced or removed.
    pub fn set_vector(&mut self, id: &str, vector: Vec<f32>) -> bool {
        let Some(&slot) = self.slots.get(id) else {
            return false;
        };
        self.vectors.insert(slot, vector);
        true
    }

    /// Removes a document; returns whether it was there.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(slot) = self.slots.remove(id) else {
            return false;
        };
        self.lexical.remove(slot);
        self.vectors.remove(slot);
        self.docs[slot as usize] = None;
        self.free.push(slot);
        true
    }

    /// Every document id (unordered).
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.slots.keys().map(String::as_str)
    }

    /// The best `limit` documents for `query` that pass `filter` and `visible`.
    ///
    /// A semantic failure (the embedder erring on the query) falls back to the lexical ranking
    /// rather than failing the search; the result's mode says which ranking was used.
    pub fn search(
        &self,
        query: &str,
        filter: &Filter,
        limit: usize,
        visible: &dyn Fn(&Document<T>) -> bool,
    ) -> Results<T> {
        let query_vector = self
            .embedder
            .as_ref()
            .and_then(|e| e.embed(&[query]).ok()?.into_iter().next());
        self.search_with_vector(query, query_vector, filter, limit, visible)
    }

    /// As [`SearchIndex::search`], with the query's vector computed by the caller (`None`: a
    /// lexical search). For callers that embed outside the index (I/O off the index lock).
    pub fn search_with_vector(
        &self,
        query: &str,
        query_vector: Option<Vec<f32>>,
        filter: &Filter,
        limit: usize,
        visible: &dyn Fn(&Document<T>) -> bool,
    ) -> Results<T> {
        let keep = |slot: u32| {
            let d = self.doc(slot);
            filter.matches(d) && visible(d)
        };
        // Matches are scored first and filtered lazily, best first: `keep` (a filter and the
        // caller's permissions) then runs on a few times `limit` documents, not on every match.
        let lexical: Vec<(u32, f64)> = self
            .lexical
            .score(query, &self.weights)
            .into_iter()
            .map(|(slot, s)| (slot, f64::from(s)))
            .collect();
        let semantic = query_vector.map(|v| {
            let q = semantic::normalized(v);
            self.vectors
                .similar(&q, keep)
                .into_iter()
                .map(|(slot, s)| (slot, f64::from(s)))
                .collect::<Vec<_>>()
        });
        let (mode, scored) = match semantic {
            None => (Mode::Lexical, self.top(lexical, limit, &keep)),
            Some(semantic) => {
                let depth = limit.max(FUSION_DEPTH);
                let lex: Vec<u32> = self
                    .top(lexical, depth, &keep)
                    .into_iter()
                    .map(|h| h.0)
                    .collect();
                let sem: Vec<u32> = self
                    .top(semantic, depth, &|_| true)
                    .into_iter()
                    .map(|h| h.0)
                    .collect();
                let fused = reciprocal_rank_fusion(&[&lex, &sem], RRF_K);
                (
                    Mode::Hybrid,
                    self.top(fused.into_iter().collect(), limit, &|_| true),
                )
            }
        };
        let hits = scored
            .into_iter()
            .enumerate()
            .map(|(i, (slot, score))| Hit {
                doc: self.docs[slot as usize].clone().expect("a live slot"),
                score,
                rank: i + 1,
            })
            .collect();
        Results { mode, hits }
    }

    /// The `limit` best of `scored` that `keep` accepts, best first, ties broken by document id.
    /// Candidates are taken in growing chunks (select, then sort the chunk), so `keep` runs on
    /// the best few only unless most candidates are refused.
    fn top(
        &self,
        mut scored: Vec<(u32, f64)>,
        limit: usize,
        keep: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f64)> {
        let order = |a: &(u32, f64), b: &(u32, f64)| {
            b.1.partial_cmp(&a.1)
                .unwrap_or(Ordering::Equal)
                .then_with(|| self.doc(a.0).id.cmp(&self.doc(b.0).id))
        };
        let mut out = Vec::with_capacity(limit.min(scored.len()));
        let mut start = 0;
        let mut chunk = (limit * 4).max(32);
        while out.len() < limit && start < scored.len() {
            let rest = &mut scored[start..];
            let take = chunk.min(rest.len());
            if take < rest.len() {
                rest.select_nth_unstable_by(take - 1, order);
            }
            let head = &mut rest[..take];
            head.sort_unstable_by(order);
            for &(slot, score) in head.iter() {
                if out.len() == limit {
                    break;
                }
                if keep(slot) {
                    out.push((slot, score));
                }
            }
            start += take;
            chunk *= 4;
        }
        out
    }

    /// The document in a live slot (slots come from the index itself).
    fn doc(&self, slot: u32) -> &Document<T> {
        self.docs[slot as usize].as_deref().expect("a live slot")
    }

    /// Distinct terms in the lexical index.
    pub fn term_count(&self) -> usize {
        self.lexical.term_count()
    }
}
