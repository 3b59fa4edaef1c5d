//! The upstream sessions the aggregated endpoint opened, by caller and server. A plain table
//! (it imports no handler), so the gateway's state can hold it without an import loop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use crate::caller::Caller;
use crate::routes::Route;
use crate::session::SessionState;

/// Upstream sessions remembered per process; past this the map starts over (cheap, rare).
const MAX_SESSIONS: usize = 10_000;

/// Caller digest and server path.
type SessionKey = (Arc<str>, String);

/// The session opened on one route (none: the upstream keeps no sessions). Held as it is,
/// not sealed: it never leaves the process.
struct Remembered {
    route: Weak<Route>,
    session: Option<SessionState>,
}

/// Upstream sessions by caller and server.
#[derive(Default)]
pub struct UpstreamSessions {
    open: Mutex<HashMap<SessionKey, Remembered>>,
}

impl UpstreamSessions {
    pub(super) fn get(&self, caller: &Caller, route: &Arc<Route>) -> Option<Option<SessionState>> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let seen = open.get(&(Arc::clone(&caller.digest), route.path().to_owned()))?;
        std::ptr::eq(seen.route.as_ptr(), Arc::as_ptr(route)).then(|| seen.session.clone())
    }

    pub(super) fn put(&self, caller: &Caller, route: &Arc<Route>, session: Option<SessionState>) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= MAX_SESSIONS {
            open.clear();
        }
        open.insert(
            (Arc::clone(&caller.digest), route.path().to_owned()),
            Remembered {
                route: Arc::downgrade(route),
                session,
            },
        );
    }

    pub(super) fn forget(&self, caller: &Caller, route: &Route) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&(Arc::clone(&caller.digest), route.path().to_owned()));
    }
}
