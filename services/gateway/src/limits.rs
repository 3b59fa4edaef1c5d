//! Per-caller limits: token buckets for tool calls and a count of open streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Token buckets by key, refilled continuously at `per_minute / 60` tokens a second with a
/// burst of `per_minute` (at least 1).
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
    per_minute: u32,
}

/// Refused: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds for the `Retry-After` header (at least 1).
    pub fn seconds(&self) -> u64 {
        self.0.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// Buckets untouched this long are forgotten (they would be full again anyway).
const IDLE_FORGET: Duration = Duration::from_secs(300);
const SWEEP_AT: usize = 50_000;

impl RateLimiter {
    /// Takes one token from `key`'s bucket; `per_minute == 0` means unlimited.
    pub fn take(&self, key: &str, per_minute: u32) -> Result<(), RetryAfter> {
        if per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let rate = per_minute as f64 / 60.0;
        let burst = per_minute.max(1) as f64;
        let mut buckets = self.buckets.lock().expect("rate buckets");
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, b| now.duration_since(b.updated) < IDLE_FORGET);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            updated: now,
            per_minute,
        });
        if bucket.per_minute != per_minute {
            // The limit changed with a new snapshot: start from the new burst.
            bucket.per_minute = per_minute;
            bucket.tokens = bucket.tokens.min(burst);
        }
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(RetryAfter(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / rate,
            )))
        }
    }
}

/// Open streams per caller, each held by a [`StreamPermit`] that gives its place back when
/// dropped (the stream ended or the client went away).
#[derive(Clone, Default)]
pub struct StreamCounter {
    open: Arc<Mutex<HashMap<String, u32>>>,
}

pub struct StreamPermit {
    open: Arc<Mutex<HashMap<String, u32>>>,
    key: String,
    gauge: prometheus::IntGauge,
}

impl StreamCounter {
    pub fn acquire(
        &self,
        key: &str,
        max: u32,
        gauge: &prometheus::IntGauge,
    ) -> Option<StreamPermit> {
        let mut open = self.open.lock().expect("stream counter");
        let n = open.entry(key.to_owned()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        gauge.inc();
        Some(StreamPermit {
            open: Arc::clone(&self.open),
            key: key.to_owned(),
            gauge: gauge.clone(),
        })
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.gauge.dec();
        let mut open = self.open.lock().expect("stream counter");
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_says_when_to_retry() {
        let limiter = RateLimiter::default();
        for _ in 0..3 {
            limiter.take("a", 3).unwrap();
        }
        let retry = limiter.take("a", 3).unwrap_err();
        // 3 a minute = one token every 20 s.
        assert!(retry.0 > Duration::from_secs(19) && retry.0 <= Duration::from_secs(20));
        assert_eq!(retry.seconds(), 20);
        // other keys and unlimited keys are unaffected
        limiter.take("b", 3).unwrap();
        for _ in 0..100 {
            limiter.take("a", 0).unwrap();
        }
    }

    #[test]
    fn a_bucket_refills_with_time() {
        let limiter = RateLimiter::default();
        // 600 a minute = 10 a second, burst 600.
        for _ in 0..600 {
            limiter.take("a", 600).unwrap();
        }
        assert!(limiter.take("a", 600).is_err());
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.take("a", 600).is_ok());
    }

    #[test]
    fn stream_permits_are_returned_when_dropped() {
        let counter = StreamCounter::default();
        let gauge = prometheus::IntGauge::new("g", "g").unwrap();
        let a = counter.acquire("alice", 2, &gauge).unwrap();
        let _b = counter.acquire("alice", 2, &gauge).unwrap();
        assert!(counter.acquire("alice", 2, &gauge).is_none());
        assert!(counter.acquire("bob", 2, &gauge).is_some());
        assert_eq!(gauge.get(), 2);
        drop(a);
        assert!(counter.acquire("alice", 2, &gauge).is_some());
    }
}
