//! The lifecycle of a registered server, from the blueprint's governance model:
//!
//! ```text
//! draft → submitted → security_review → approved_dev → approved_prod → deprecated → retired
//!           ↘ draft (withdrawn)   ↘ draft (rejected)      ↘ deprecated
//! ```
//!
//! Only the transitions in [`Lifecycle::transition_permission`] exist, each guarded by a
//! permission. Retired is terminal and never routable; a production gateway routes only
//! `approved_prod`.

use serde::{Deserialize, Serialize};

use crate::auth::Permission;
use crate::time::Timestamp;

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
pub enum Lifecycle {
    Draft,
    Submitted,
    SecurityReview,
    ApprovedDev,
    ApprovedProd,
    Deprecated,
    Retired,
}

/// Where a gateway runs, which decides what it may route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStage {
    /// Routes `approved_dev`, `approved_prod` and `deprecated` servers.
    NonProduction,
    /// Routes only `approved_prod` servers.
    Production,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 7] = [
        Lifecycle::Draft,
        Lifecycle::Submitted,
        Lifecycle::SecurityReview,
        Lifecycle::ApprovedDev,
        Lifecycle::ApprovedProd,
        Lifecycle::Deprecated,
        Lifecycle::Retired,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Lifecycle::Draft => "draft",
            Lifecycle::Submitted => "submitted",
            Lifecycle::SecurityReview => "security_review",
            Lifecycle::ApprovedDev => "approved_dev",
            Lifecycle::ApprovedProd => "approved_prod",
            Lifecycle::Deprecated => "deprecated",
            Lifecycle::Retired => "retired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Lifecycle::ALL.into_iter().find(|l| l.as_str() == text)
    }

    /// The permission a transition needs, or `None` when the transition does not exist.
    pub fn transition_permission(self, to: Lifecycle) -> Option<Permission> {
        use Lifecycle::*;
        match (self, to) {
            (Draft, Submitted) | (Submitted, Draft) => Some(Permission::LifecycleSubmit),
            (Submitted, SecurityReview)
            | (SecurityReview, ApprovedDev)
            | (SecurityReview, Draft) => Some(Permission::LifecycleReview),
            (ApprovedDev, ApprovedProd) => Some(Permission::LifecycleApproveProd),
            (ApprovedDev, Deprecated) | (ApprovedProd, Deprecated) => {
                Some(Permission::LifecycleDeprecate)
            }
            (Deprecated, Retired) => Some(Permission::LifecycleRetire),
            _ => None,
        }
    }

    /// Every state reachable in one step.
    pub fn next_states(self) -> Vec<Lifecycle> {
        Lifecycle::ALL
            .into_iter()
            .filter(|to| self.transition_permission(*to).is_some())
            .collect()
    }

    /// Whether a gateway at `stage` may route a server in this state (enabled servers only).
    pub fn is_routable(self, stage: DeploymentStage) -> bool {
        match stage {
            DeploymentStage::Production => self == Lifecycle::ApprovedProd,
            DeploymentStage::NonProduction => matches!(
                self,
                Lifecycle::ApprovedDev | Lifecycle::ApprovedProd | Lifecycle::Deprecated
            ),
        }
    }

    /// Servers in these states are in use or on the way out; they cannot be deleted outright
    /// (deprecate and retire them instead, so the trail stays).
    pub fn blocks_delete(self) -> bool {
        matches!(
            self,
            Lifecycle::ApprovedDev | Lifecycle::ApprovedProd | Lifecycle::Deprecated
        )
    }
}

impl std::fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recorded lifecycle transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LifecycleEvent {
    pub from: Lifecycle,
    pub to: Lifecycle,
    /// Subject of the principal that made the transition.
    pub actor: String,
    pub reason: String,
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_is_a_chain_of_allowed_transitions() {
        let chain = Lifecycle::ALL;
        for pair in chain.windows(2) {
            assert!(
                pair[0].transition_permission(pair[1]).is_some(),
                "{} -> {}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn skipping_review_or_leaving_retired_is_impossible() {
        assert_eq!(
            Lifecycle::Draft.transition_permission(Lifecycle::ApprovedProd),
            None
        );
        assert_eq!(
            Lifecycle::Submitted.transition_permission(Lifecycle::ApprovedDev),
            None
        );
        assert!(Lifecycle::Retired.next_states().is_empty());
        for state in Lifecycle::ALL {
            assert_eq!(
                state.transition_permission(state),
                None,
                "{state} -> itself"
            );
        }
    }

    #[test]
    fn production_routes_only_approved_prod_and_retired_is_never_routable() {
        for state in Lifecycle::ALL {
            assert_eq!(
                state.is_routable(DeploymentStage::Production),
                state == Lifecycle::ApprovedProd
            );
        }
        assert!(!Lifecycle::Retired.is_routable(DeploymentStage::NonProduction));
        assert!(Lifecycle::ApprovedDev.is_routable(DeploymentStage::NonProduction));
        assert!(!Lifecycle::Draft.is_routable(DeploymentStage::NonProduction));
    }
}
