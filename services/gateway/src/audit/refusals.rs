//! Refusals before the caller is known (no or bad token, unknown server, a body too large or
//! malformed, bad headers), coalesced, so an anonymous client cannot write to the audit log at
//! line rate.
//!
//! The gateway does not see client addresses (it serves behind a load balancer and reads no
//! forwarding header), so a refusal is keyed by its server and reason. The first refusal of a
//! key in a window is recorded at once as its own event; the later ones in that window are
//! counted and recorded as one event (the last of them, with `count`) when the window closes.
//! The table is bounded: beyond [`MAX_KEYS`] keys, refusals are counted per reason only (one
//! overflow counter each, recorded with server `*`), so memory cannot be exhausted. Nothing
//! counted is lost: closing every window at shutdown records the pending counts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mcpgw_core::gateway_sync::McpAuditEvent;

/// How long the refusals of one key are coalesced.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Keys tracked one by one; past this, refusals are counted per reason.
pub const MAX_KEYS: usize = 10_000;
/// Overflow counters (reasons are the gateway's own, a short list; past this they share one).
const MAX_OVERFLOW_REASONS: usize = 64;
/// The server an overflow event names: it counts refusals of many servers.
pub const OVERFLOW_SERVER: &str = "*";

/// One key's window.
struct Window {
    opened: Instant,
    /// The latest refusal counted after the first (recorded, with `count`, at the close).
    last: Option<McpAuditEvent>,
    repeated: u64,
}

impl Window {
    fn new(opened: Instant) -> Self {
        Self {
            opened,
            last: None,
            repeated: 0,
        }
    }

    fn count(&mut self, event: McpAuditEvent) {
        self.repeated += 1;
        self.last = Some(event);
    }

    /// The event standing for the refusals counted in this window, if any.
    fn into_event(self) -> Option<McpAuditEvent> {
        let mut event = self.last?;
        event.count = self.repeated;
        Some(event)
    }
}

pub struct Refusals {
    window: Duration,
    max_keys: usize,
    by_key: HashMap<(String, String), Window>,
    /// Windows of refusals counted per reason once `by_key` is full.
    overflow: HashMap<String, Window>,
}

impl Refusals {
    pub fn new(window: Duration, max_keys: usize) -> Self {
        Self {
            window,
            max_keys,
            by_key: HashMap::new(),
            overflow: HashMap::new(),
        }
    }

    /// Takes one refusal at `now`; pushes onto `out` what is to be recorded now: the refusal
    /// itself when it opens a window (and the count of its key's previous window, if that
    /// closed but was not collected yet).
    pub fn admit(&mut self, event: McpAuditEvent, now: Instant, out: &mut Vec<McpAuditEvent>) {
        let key = (event.server.clone(), event.reason.clone());
        if let Some(w) = self.by_key.get_mut(&key) {
            if now.duration_since(w.opened) < self.window {
                w.count(event);
                return;
            }
            let closed = std::mem::replace(w, Window::new(now));
            out.extend(closed.into_event());
            out.push(event);
            return;
        }
        if self.by_key.len() < self.max_keys {
            self.by_key.insert(key, Window::new(now));
            out.push(event);
            return;
        }
        let reason = if self.overflow.len() < MAX_OVERFLOW_REASONS
            || self.overflow.contains_key(&event.reason)
        {
            event.reason.clone()
        } else {
            String::new()
        };
        let mut event = event;
        event.server = OVERFLOW_SERVER.to_owned();
        self.overflow
            .entry(reason)
            .or_insert_with(|| Window::new(now))
            .count(event);
    }

    /// Closes the windows opened at least a window before `now` (every window when `now` is
    /// `None`: at shutdown), pushing onto `out` an event for each that counted refusals.
    pub fn close(&mut self, now: Option<Instant>, out: &mut Vec<McpAuditEvent>) {
        let window = self.window;
        let open = |w: &Window| now.is_some_and(|now| now.duration_since(w.opened) < window);
        close_in(&mut self.by_key, open, out);
        close_in(&mut self.overflow, open, out);
    }

    /// Keys tracked (overflow counters included).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_key.len() + self.overflow.len()
    }
}

fn close_in<K: Eq + std::hash::Hash>(
    map: &mut HashMap<K, Window>,
    open: impl Fn(&Window) -> bool,
    out: &mut Vec<McpAuditEvent>,
) {
    out.extend(
        map.extract_if(|_, w| !open(w))
            .filter_map(|(_, w)| w.into_event()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(server: &str, reason: &str) -> McpAuditEvent {
        serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::now_v7(), "at": "2026-01-01T00:00:00Z", "request_id": "r",
            "gateway": "gw-test", "server": server, "method": "", "subject": "", "issuer": "",
            "decision": "denied", "reason": reason, "status": "denied", "latency_ms": 0.0
        }))
        .unwrap()
    }

    fn counts(events: &[McpAuditEvent]) -> Vec<(String, u64)> {
        let mut counts: Vec<_> = events.iter().map(|e| (e.server.clone(), e.count)).collect();
        counts.sort();
        counts
    }

    #[test]
    fn the_first_refusal_of_a_window_is_recorded_and_the_rest_once_at_its_close() {
        let mut table = Refusals::new(Duration::from_secs(60), 10);
        let (t0, mut out) = (Instant::now(), Vec::new());
        for _ in 0..1000 {
            table.admit(refusal("a", "unauthenticated"), t0, &mut out);
        }
        assert_eq!(counts(&out), [("a".to_owned(), 1)]);
        table.close(Some(t0 + Duration::from_secs(59)), &mut out);
        assert_eq!(out.len(), 1, "closed before the window ended");
        table.close(Some(t0 + Duration::from_secs(60)), &mut out);
        assert_eq!(counts(&out), [("a".to_owned(), 1), ("a".to_owned(), 999)]);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn a_refusal_after_an_uncollected_window_closes_it_and_opens_the_next() {
        let mut table = Refusals::new(Duration::from_secs(60), 10);
        let (t0, mut out) = (Instant::now(), Vec::new());
        table.admit(refusal("a", "r"), t0, &mut out);
        table.admit(refusal("a", "r"), t0, &mut out);
        table.admit(refusal("a", "r"), t0 + Duration::from_secs(61), &mut out);
        assert_eq!(out.iter().map(|e| e.count).collect::<Vec<_>>(), [1, 1, 1]);
        table.close(None, &mut out);
        assert_eq!(out.len(), 3, "the new window counted nothing yet");
    }

    #[test]
    fn distinct_servers_and_reasons_are_not_merged() {
        let mut table = Refusals::new(Duration::from_secs(60), 10);
        let (t0, mut out) = (Instant::now(), Vec::new());
        for (server, reason) in [("a", "r"), ("b", "r"), ("a", "s"), ("a", "r")] {
            table.admit(refusal(server, reason), t0, &mut out);
        }
        assert_eq!(out.len(), 3);
        table.close(None, &mut out);
        assert_eq!(out.len(), 4, "shutdown records the pending count");
        assert_eq!(out[3].count, 1);
    }

    #[test]
    fn past_the_key_limit_refusals_are_counted_per_reason_and_none_is_lost() {
        let mut table = Refusals::new(Duration::from_secs(60), 100);
        let (t0, mut out) = (Instant::now(), Vec::new());
        for n in 0..10_000 {
            table.admit(refusal(&format!("s{n}"), "unknown_server"), t0, &mut out);
        }
        assert_eq!(
            table.len(),
            101,
            "bounded: 100 keys and one overflow counter"
        );
        table.close(None, &mut out);
        assert_eq!(out.len(), 101);
        assert_eq!(out.iter().map(|e| e.count).sum::<u64>(), 10_000);
        let overflow = out.iter().find(|e| e.count > 1).unwrap();
        assert_eq!((overflow.server.as_str(), overflow.count), ("*", 9_900));
    }
}
