//! Reciprocal rank fusion (Cormack, Clarke & Büttcher, 2009): a document's fused score is the
//! sum over the rankings it appears in of 1 / (k + rank), rank starting at 1. It needs no
//! calibration between BM25 scores and cosine similarities, which live on unrelated scales.

use std::collections::HashMap;

/// The constant of the original paper, used by most hybrid search engines.
pub const RRF_K: f64 = 60.0;

/// Fuses rankings (each best first) into scores per item.
pub fn reciprocal_rank_fusion<T: Copy + Eq + std::hash::Hash>(
    rankings: &[&[T]],
    k: f64,
) -> HashMap<T, f64> {
    let mut fused = HashMap::new();
    for ranking in rankings {
        for (i, item) in ranking.iter().enumerate() {
            *fused.entry(*item).or_insert(0.0) += 1.0 / (k + (i + 1) as f64);
        }
    }
    fused
}
