//! The auth-server's own metrics, beside core's HTTP metrics, in the same registry (served on
//! the metrics port). Names are `mcpgw_auth_*`; labels are small fixed sets.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct AuthMetrics {
    /// Logins by provider and result (`success`, `failure`, `limited`).
    pub logins: IntCounterVec,
    pub tokens_minted: IntCounter,
    pub mints_limited: IntCounter,
    /// `/validate` answers by result (`allowed`, `unauthenticated`, `insufficient_scope`).
    pub validations: IntCounterVec,
    /// OAuth authorization codes by event (`issued`, `exchanged`, `refused`: an exchange that
    /// failed, `replayed`: a code redeemed twice).
    pub oauth_codes: IntCounterVec,
    /// Refresh token grants by result (`rotated`, `refused`, `reused`: a rotated token
    /// presented again, which ends the sign-in).
    pub oauth_refreshes: IntCounterVec,
}

impl AuthMetrics {
    pub fn register(registry: &Registry) -> Self {
        let logins = IntCounterVec::new(
            Opts::new(
                "mcpgw_auth_logins_total",
                "Login attempts by provider and result",
            ),
            &["provider", "result"],
        )
        .expect("valid metric definition");
        let tokens_minted = IntCounter::new(
            "mcpgw_auth_tokens_minted_total",
            "Access tokens vended to logged-in users",
        )
        .expect("valid metric definition");
        let mints_limited = IntCounter::new(
            "mcpgw_auth_token_mints_limited_total",
            "Token mints refused by the per-user rate limit",
        )
        .expect("valid metric definition");
        let validations = IntCounterVec::new(
            Opts::new(
                "mcpgw_auth_validations_total",
                "Answers of /validate by result",
            ),
            &["result"],
        )
        .expect("valid metric definition");
        let oauth_codes = IntCounterVec::new(
            Opts::new(
                "mcpgw_auth_oauth_codes_total",
                "OAuth authorization codes issued, exchanged, refused at exchange, or replayed",
            ),
            &["event"],
        )
        .expect("valid metric definition");
        let oauth_refreshes = IntCounterVec::new(
            Opts::new(
                "mcpgw_auth_oauth_refreshes_total",
                "OAuth refresh token grants: rotated, refused, or reused (the sign-in ended)",
            ),
            &["result"],
        )
        .expect("valid metric definition");
        for m in [
            Box::new(logins.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(tokens_minted.clone()),
            Box::new(mints_limited.clone()),
            Box::new(validations.clone()),
            Box::new(oauth_codes.clone()),
            Box::new(oauth_refreshes.clone()),
        ] {
            registry.register(m).expect("metric registered once");
        }
        Self {
            logins,
            tokens_minted,
            mints_limited,
            validations,
            oauth_codes,
            oauth_refreshes,
        }
    }
}
