//! What servers and agents share as versioned catalog records: optimistic concurrency (the
//! `If-Match` revision against the stored one), the revision bump of a write, the store's
//! conditional-write errors in API terms, and lifecycle steps. Their rules differ (permission
//! scoping, what a review approves), so those stay with each resource; this is the mechanics.

use mcpgw_core::auth::{Permission, Principal};
use mcpgw_core::domain::{AgentRecord, Lifecycle, LifecycleEvent, ServerRecord};
use mcpgw_core::time::Timestamp;

use crate::error::{RegistryError, Result};
use crate::store::StoreError;

/// A record written with optimistic concurrency and a lifecycle.
pub(crate) trait Versioned {
    fn revision(&self) -> u64;
    /// Marks a write by `caller`: next revision, now, who.
    fn bump(&mut self, caller: &Principal);
    /// Bumps, and moves to `to` with the history entry (at the write's time).
    fn transition(&mut self, to: Lifecycle, caller: &Principal, reason: &str);
}

// The two records name these fields alike; a macro, as they share no struct.
macro_rules! versioned {
    ($record:ty) => {
        impl Versioned for $record {
            fn revision(&self) -> u64 {
                self.revision
            }
            fn bump(&mut self, caller: &Principal) {
                self.revision += 1;
                self.updated_at = Timestamp::now();
                self.updated_by = caller.subject.clone();
            }
            fn transition(&mut self, to: Lifecycle, caller: &Principal, reason: &str) {
                let from = self.lifecycle;
                self.bump(caller);
                self.lifecycle = to;
                self.lifecycle_history.push(LifecycleEvent {
                    from,
                    to,
                    actor: caller.subject.clone(),
                    reason: reason.to_owned(),
                    at: self.updated_at,
                });
            }
        }
    };
}
versioned!(ServerRecord);
versioned!(AgentRecord);

/// The revision the write is based on: the stored one, if it is the `expected` one (when given).
pub(crate) fn check_revision(record: &impl Versioned, expected: Option<u64>) -> Result<u64> {
    match expected {
        Some(e) if e != record.revision() => Err(RegistryError::StaleRevision {
            expected: e,
            current: record.revision(),
        }),
        _ => Ok(record.revision()),
    }
}

/// A conditional store write's failure in API terms (`not_found` names the resource).
pub(crate) fn store_error(
    e: StoreError,
    expected: u64,
    not_found: impl FnOnce() -> RegistryError,
) -> RegistryError {
    match e {
        StoreError::StaleRevision { current } => RegistryError::StaleRevision { expected, current },
        StoreError::NotFound => not_found(),
        other => other.into(),
    }
}

/// The permission the `from → to` step needs, or why it is not a step.
pub(crate) fn transition_permission(from: Lifecycle, to: Lifecycle) -> Result<Permission> {
    from.transition_permission(to)
        .ok_or_else(|| RegistryError::InvalidTransition {
            from,
            to,
            allowed: from.next_states(),
        })
}
