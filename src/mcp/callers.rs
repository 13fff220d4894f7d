//! Per-user OAuth: each caller's own session with a client's server, kept for its next call.
//!
//! A session opens on a caller's first call (with that caller's token) and is reused until it
//! has been idle for [`IDLE_AFTER`]; idle sessions are closed whenever the pool is used, so no
//! task of its own runs. Opening a session per call (what Bifrost does) costs a handshake, and
//! often a token refresh, on every call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::transport::Session;

/// How long a caller's session may stay unused before it is closed.
pub const IDLE_AFTER: Duration = Duration::from_secs(10 * 60);

/// The sessions of one client, by caller.
#[derive(Default)]
pub(crate) struct CallerSessions {
    sessions: Mutex<HashMap<String, Pooled>>,
}

struct Pooled {
    session: Arc<Session>,
    last_used: Instant,
}

impl CallerSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pooled>> {
        // Each critical section is one map operation: a panic cannot leave it half done.
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `caller`'s open session, if it has one.
    pub(crate) fn get(&self, caller: &str) -> Option<Arc<Session>> {
        let mut sessions = self.lock();
        evict_idle(&mut sessions);
        let pooled = sessions.get_mut(caller)?;
        if pooled.session.is_closed() {
            sessions.remove(caller);
            return None;
        }
        pooled.last_used = Instant::now();
        Some(Arc::clone(&pooled.session))
    }

    /// Keeps `session` as `caller`'s.
    pub(crate) fn put(&self, caller: &str, session: Arc<Session>) {
        let mut sessions = self.lock();
        evict_idle(&mut sessions);
        sessions.insert(
            caller.to_string(),
            Pooled {
                session,
                last_used: Instant::now(),
            },
        );
    }

    /// Closes `caller`'s session (its authorization was revoked, say).
    pub(crate) fn remove(&self, caller: &str) {
        let removed = self.lock().remove(caller);
        drop(removed);
    }

    /// How many sessions are open (idle ones closed first).
    pub(crate) fn len(&self) -> usize {
        let mut sessions = self.lock();
        evict_idle(&mut sessions);
        sessions.len()
    }

    /// Closes every session.
    pub(crate) fn clear(&self) {
        let removed: Vec<Pooled> = self.lock().drain().map(|(_, pooled)| pooled).collect();
        drop(removed);
    }
}

fn evict_idle(sessions: &mut HashMap<String, Pooled>) {
    sessions.retain(|_, pooled| pooled.last_used.elapsed() < IDLE_AFTER);
}
