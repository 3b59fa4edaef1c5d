//! Reconciles the realm with the spec. (Being written.)

use mcpgw_core::plan::Change;

use crate::Context;
use crate::error::Result;

/// Ensures every object of the spec's realm; in a dry run, only plans.
pub async fn ensure(_ctx: &Context) -> Result<Vec<Change>> {
    Ok(Vec::new())
}
