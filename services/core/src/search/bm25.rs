//! BM25F over an inverted index that changes one document at a time.
//!
//! Each posting keeps the raw term frequency per field, and each document its field lengths, so
//! nothing derived from the whole collection (average lengths, document frequencies) is baked
//! into the index: it is read at query time. Adding or removing a document therefore touches
//! only that document's own terms: no rebuild, ever.

use std::collections::HashMap;

use super::tokenize::terms;

/// The fields of a document, in the order of [`Weights::field`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The name (a tool's or server's identifier), and a server's path.
    Name = 0,
    Title = 1,
    Description = 2,
    Tags = 3,
    /// Tool parameter names and their descriptions.
    Params = 4,
    /// For tools: the owning server's name and path.
    Server = 5,
}

pub const FIELDS: usize = 6;

/// Scoring parameters. The defaults were tuned on the quality set (docs/performance.md,
/// "Search quality").
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// Weight of a term occurrence in each field, indexed by [`Field`].
    pub field: [f32; FIELDS],
    /// Length normalisation per field (0: none, 1: full).
    pub b: [f32; FIELDS],
    /// Term-frequency saturation.
    pub k1: f32,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            // Tuned on the quality set (from name 3, title 2, description 1, tags 1.5,
            // params 0.5, server 0.7, k1 1.2: NDCG@10 0.702 → 0.726). A lower k1 saturates
            // repeated terms sooner, which suits short tool texts.
            //       name title desc tags params server
            field: [3.0, 2.0, 1.5, 1.0, 0.5, 0.5],
            b: [0.5, 0.5, 0.75, 0.5, 0.75, 0.5],
            k1: 0.8,
        }
    }
}

type Tf = [u16; FIELDS];

/// The lexical index. Documents are addressed by a slot number chosen by the caller (dense:
/// slots index vectors here, so that scoring walks arrays, not hash tables).
#[derive(Default)]
pub struct Bm25 {
    /// Per term: (slot, term frequency per field), unordered.
    postings: HashMap<String, Vec<(u32, Tf)>>,
    /// Per slot: field lengths and distinct terms (so that removal visits exactly the postings
    /// the document is in); `None` for a free slot.
    docs: Vec<Option<([u32; FIELDS], Vec<String>)>>,
    live: usize,
    total_lens: [u64; FIELDS],
}

impl Bm25 {
    /// Indexes the text of each field under `slot` (which must not be indexed already).
    pub fn insert(&mut self, slot: u32, fields: &[(Field, &str)]) {
        let mut tfs: HashMap<String, Tf> = HashMap::new();
        let mut lens = [0u32; FIELDS];
        for (field, text) in fields {
            let f = *field as usize;
            for term in terms(text) {
                lens[f] += 1;
                let tf = tfs.entry(term).or_default();
                tf[f] = tf[f].saturating_add(1);
            }
        }
        for (f, len) in lens.iter().enumerate() {
            self.total_lens[f] += u64::from(*len);
        }
        let mut distinct = Vec::with_capacity(tfs.len());
        for (term, tf) in tfs {
            self.postings
                .entry(term.clone())
                .or_default()
                .push((slot, tf));
            distinct.push(term);
        }
        let at = slot as usize;
        if self.docs.len() <= at {
            self.docs.resize_with(at + 1, || None);
        }
        self.docs[at] = Some((lens, distinct));
        self.live += 1;
    }

    /// Costs the document's terms times the length of their posting lists (a scan of a few
    /// thousand entries at most for the commonest words of a large catalog).
    pub fn remove(&mut self, slot: u32) {
        let Some((lens, terms)) = self.docs.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        self.live -= 1;
        for (f, len) in lens.iter().enumerate() {
            self.total_lens[f] -= u64::from(*len);
        }
        for term in terms {
            if let Some(list) = self.postings.get_mut(&term) {
                if let Some(at) = list.iter().position(|(s, _)| *s == slot) {
                    list.swap_remove(at);
                }
                if list.is_empty() {
                    self.postings.remove(&term);
                }
            }
        }
    }

    /// BM25F score of every document that contains at least one query term, as (slot, score).
    pub fn score(&self, query: &str, weights: &Weights) -> Vec<(u32, f32)> {
        let n = self.live as f32;
        if self.live == 0 {
            return Vec::new();
        }
        // norm(f) = 1 - b + b * len / avg, split into a constant and a factor of len.
        let mut base = [0f32; FIELDS];
        let mut per_len = [0f32; FIELDS];
        for (f, total) in self.total_lens.iter().enumerate() {
            let avg = (*total as f32 / n).max(1.0);
            base[f] = 1.0 - weights.b[f];
            per_len[f] = weights.b[f] / avg;
        }
        let mut query_terms = terms(query);
        query_terms.sort_unstable();
        query_terms.dedup();
        let mut scores = vec![0f32; self.docs.len()];
        let mut touched = Vec::new();
        for term in &query_terms {
            let Some(list) = self.postings.get(term) else {
                continue;
            };
            let df = list.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for (slot, tf) in list {
                let Some((lens, _)) = &self.docs[*slot as usize] else {
                    continue;
                };
                let mut weighted = 0f32;
                for f in 0..FIELDS {
                    if tf[f] > 0 {
                        let norm = base[f] + per_len[f] * lens[f] as f32;
                        weighted += weights.field[f] * f32::from(tf[f]) / norm;
                    }
                }
                let score = &mut scores[*slot as usize];
                if *score == 0.0 {
                    touched.push(*slot);
                }
                *score += idf * weighted * (weights.k1 + 1.0) / (weights.k1 + weighted);
            }
        }
        touched
            .into_iter()
            .map(|slot| (slot, scores[slot as usize]))
            .collect()
    }

    /// Distinct terms in the index (for tests and metrics).
    pub fn term_count(&self) -> usize {
        self.postings.len()
    }
}
