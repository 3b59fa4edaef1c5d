//! `notifications/tools/list_changed` for `/mcp`: after each new routing snapshot, a caller's
//! view of the catalog is digested again, and a listener hears about it only when the digest
//! changed (a server or tool it may use came or went or changed, or a policy change touched
//! it). Snapshots that change nothing for the caller stay silent.

use std::sync::Arc;

use futures::Stream;
use mcpgw_core::policy::Identity;
use serde_json::{Value, json};

use super::catalog::View;
use crate::state::Gateway;

/// The digest of what `identity` may use now.
pub fn fingerprint(gw: &Gateway, identity: &Identity) -> [u8; 32] {
    let routes = gw.table.current();
    gw.aggregate
        .catalog
        .with(&routes, |c| c.fingerprint(&View::new(&routes, identity)))
}

/// One `notifications/tools/list_changed` per change of the caller's tool set, until dropped.
pub fn list_changed(
    gw: Arc<Gateway>,
    identity: Arc<Identity>,
) -> impl Stream<Item = Value> + Send + 'static {
    let snapshots = gw.table.subscribe();
    let seen = fingerprint(&gw, &identity);
    futures::stream::unfold(
        (gw, identity, snapshots, seen),
        |(gw, identity, mut snapshots, mut seen)| async move {
            loop {
                snapshots.changed().await.ok()?;
                let now = fingerprint(&gw, &identity);
                if now != seen {
                    seen = now;
                    let n = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
                    return Some((n, (gw, identity, snapshots, seen)));
                }
            }
        },
    )
}
