//! The optional semantic leg: an [`Embedder`] turns text into vectors; the index keeps one unit
//! vector per document and answers a query with a cosine top-k (exhaustive: a catalog of tens
//! of thousands of documents is a few milliseconds of dot products, and exact).

use std::collections::HashMap;

/// Turns texts into vectors of a fixed dimension (a sentence-embedding model, in process or
/// behind an API). Implementations that do I/O own their runtime concerns (timeouts, retries);
/// the index calls `embed` on every upsert and once per query.
pub trait Embedder: Send + Sync {
    /// Vectors for `texts`, one per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("embedding failed: {0}")]
pub struct EmbedError(pub String);

/// One unit vector per document slot.
#[derive(Default)]
pub struct Vectors {
    by_slot: HashMap<u32, Vec<f32>>,
}

/// `v` scaled to length 1 (a zero vector stays zero: it matches nothing).
pub fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

impl Vectors {
    pub fn insert(&mut self, slot: u32, vector: Vec<f32>) {
        self.by_slot.insert(slot, normalized(vector));
    }

    pub fn remove(&mut self, slot: u32) {
        self.by_slot.remove(&slot);
    }

    /// Cosine similarity of every stored vector with `query` (already normalized) that
    /// `keep` accepts and that is positive.
    pub fn similar(&self, query: &[f32], keep: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
        self.by_slot
            .iter()
            .filter(|(slot, _)| keep(**slot))
            .filter_map(|(slot, v)| {
                if v.len() != query.len() {
                    return None;
                }
                let cos: f32 = v.iter().zip(query).map(|(a, b)| a * b).sum();
                (cos > 0.0).then_some((*slot, cos))
            })
            .collect()
    }
}
