//! (Being written.)

use crate::error::Result;
use crate::{Context, Outcome};

pub async fn run(_ctx: &mut Context) -> Result<Outcome> {
    Ok(Outcome::note("not written yet"))
}
