//! Flap damping and history: how one check result changes a server's stored health.
//!
//! The status moves only when `damping` consecutive checks agree on a new one, so a single
//! lost packet does not flip routing in every gateway. Two results apply at once: the first
//! one (a new server should not sit at `unknown` for several cycles) and a manual check (the
//! person asking wants the answer now).

use mcpgw_core::domain::{Health, HealthCheck, HealthStatus};

/// `prev` after `check`, keeping at most `history` results (newest first).
pub fn apply(prev: &Health, check: HealthCheck, damping: u32, history: usize) -> Health {
    let mut next = prev.clone();
    next.checked_at = Some(check.at);
    if check.status == prev.status {
        next.disagreeing = 0;
        next.reason = check.reason.clone();
    } else {
        let continues_streak = prev.disagreeing > 0
            && prev
                .history
                .first()
                .is_some_and(|h| h.status == check.status);
        next.disagreeing = if continues_streak {
            prev.disagreeing + 1
        } else {
            1
        };
        let immediate = check.trigger == "manual" || prev.status == HealthStatus::Unknown;
        if immediate || next.disagreeing >= damping {
            next.status = check.status;
            next.reason = check.reason.clone();
            next.since = Some(check.at);
            next.disagreeing = 0;
        }
    }
    next.history.insert(0, check);
    next.history.truncate(history);
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpgw_core::time::Timestamp;

    fn check(status: HealthStatus, trigger: &str) -> HealthCheck {
        HealthCheck {
            at: Timestamp::now(),
            status,
            reason: (status != HealthStatus::Healthy).then(|| format!("{status:?}")),
            latency_ms: 1,
            protocol: None,
            trigger: trigger.to_owned(),
        }
    }

    #[test]
    fn the_first_result_applies_at_once_then_changes_need_agreement() {
        use HealthStatus::*;
        let h = apply(&Health::default(), check(Healthy, "scheduled"), 3, 20);
        assert_eq!(h.status, Healthy);
        let h = apply(&h, check(Unhealthy, "scheduled"), 3, 20);
        let h = apply(&h, check(Unhealthy, "scheduled"), 3, 20);
        assert_eq!((h.status, h.disagreeing), (Healthy, 2));
        // A different outlier restarts the streak.
        let h = apply(&h, check(Degraded, "scheduled"), 3, 20);
        assert_eq!((h.status, h.disagreeing), (Healthy, 1));
        let h = apply(&h, check(Unhealthy, "scheduled"), 3, 20);
        let h = apply(&h, check(Unhealthy, "scheduled"), 3, 20);
        let h = apply(&h, check(Unhealthy, "scheduled"), 3, 20);
        assert_eq!((h.status, h.disagreeing), (Unhealthy, 0));
        assert_eq!(h.reason.as_deref(), Some("Unhealthy"));
        // An agreeing result clears a streak.
        let h = apply(&h, check(Healthy, "scheduled"), 3, 20);
        let h = apply(&h, check(Unhealthy, "scheduled"), 3, 20);
        assert_eq!((h.status, h.disagreeing), (Unhealthy, 0));
    }

    #[test]
    fn a_manual_check_applies_at_once_and_history_is_bounded() {
        use HealthStatus::*;
        let mut h = apply(&Health::default(), check(Healthy, "scheduled"), 5, 4);
        h = apply(&h, check(AuthFailed, "manual"), 5, 4);
        assert_eq!(h.status, AuthFailed);
        for _ in 0..10 {
            h = apply(&h, check(AuthFailed, "scheduled"), 5, 4);
        }
        assert_eq!(h.history.len(), 4);
        assert_eq!(h.history[0].trigger, "scheduled");
    }
}
