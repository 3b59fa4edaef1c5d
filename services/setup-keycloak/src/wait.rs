//! Bounded waiting with visible progress: for DNS, endpoints and Keycloak to come up.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Result, SetupError};
use crate::output::{Output, duration};

/// One attempt's outcome.
pub enum Attempt<T> {
    Ready(T),
    /// Not yet; the reason is shown in progress lines and in the timeout error.
    NotYet(String),
    /// Waiting will not help (wrong password, a malformed answer).
    Fail(SetupError),
}

/// How often progress is printed while waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Calls `attempt` every `interval` until it is ready, fails, or `limit` has passed (then an
/// `Unreachable` error naming `what` and the last reason).
pub async fn until<T, F, Fut>(
    out: &Output,
    what: &str,
    limit: Duration,
    interval: Duration,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let started = Instant::now();
    let mut last_progress = started;
    loop {
        let reason = match attempt().await {
            Attempt::Ready(v) => {
                out.end_progress();
                return Ok(v);
            }
            Attempt::Fail(e) => {
                out.end_progress();
                return Err(e);
            }
            Attempt::NotYet(why) => why,
        };
        let waited = started.elapsed();
        if waited >= limit {
            out.end_progress();
            return Err(SetupError::unreachable(format!(
                "{what}: not ready after {} ({reason})",
                duration(waited)
            )));
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            out.progress(&format!(
                "waiting for {what}: {} of {} ({reason})",
                duration(waited),
                duration(limit)
            ));
        }
        tokio::time::sleep(interval.min(limit.saturating_sub(waited))).await;
    }
}
