//! Waiting for what arrives in the background (audit records shipped in batches, a sync that
//! has not run yet): ask again until the answer is the one wanted, within a bound, then hand
//! the last answer back so the test's own assertion says what was missing.

use std::future::Future;
use std::time::Duration;

/// How many times [`poll`] asks, and how long it waits between: 10 s in all, well above the
/// gateway's audit flush interval and the sync's period in the tests' configurations.
const TRIES: u32 = 100;
const EVERY: Duration = Duration::from_millis(100);

/// Calls `fetch` until `done` holds for its answer, at most 100 times 100 ms apart; returns the
/// last answer either way.
pub async fn poll<T, F, Fut>(mut fetch: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let mut answer = fetch().await;
    for _ in 1..TRIES {
        if done(&answer) {
            break;
        }
        tokio::time::sleep(EVERY).await;
        answer = fetch().await;
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn poll_returns_the_first_answer_that_is_done() {
        let mut calls = 0;
        let answer = poll(
            || {
                calls += 1;
                let n = calls;
                async move { n }
            },
            |n| *n == 3,
        )
        .await;
        assert_eq!(answer, 3);
    }
}
