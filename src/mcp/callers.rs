//! Per-user OAuth: each caller's own session with a client's server, kept for its next call.
//!
//! A session opens on a caller's first call (with that caller's token) and is reused until it
//! has been idle for [`IDLE_AFTER`]; idle sessions are closed whenever the pool is used, so no
//! task of its own runs. Opening a session per call (what Bifrost does) costs a handshake, and
//! often a token refresh, on every call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::handler::client::progress::ProgressDispatcher;

use super::transport::Session;

/// How long a caller's session may stay unused before it is closed.
pub const IDLE_AFTER: Duration = Duration::from_secs(10 * 60);

/// The sessions of one client, by caller.
#[derive(Default)]
pub(crate) struct CallerSessions {
    sessions: Mutex<HashMap<String, Pooled>>,
}

/// One caller's session, and where its progress notifications go: each session numbers its
/// progress tokens from zero, so sessions cannot share one dispatcher.
#[derive(Clone)]
pub(crate) struct CallerSession {
    pub(crate) session: Arc<Session>,
    pub(crate) progress: ProgressDispatcher,
}

struct Pooled {
    caller: CallerSession,
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
    pub(crate) fn get(&self, caller: &str) -> Option<CallerSession> {
        let (found, _closed) = {
            let mut sessions = self.lock();
            let mut closed = evict_idle(&mut sessions);
            let found = match sessions.get_mut(caller) {
                Some(pooled) if !pooled.caller.session.is_closed() => {
                    pooled.last_used = Instant::now();
                    Some(pooled.caller.clone())
                }
                Some(_) => {
                    closed.extend(sessions.remove(caller));
                    None
                }
                None => None,
            };
            (found, closed)
        };
        // Sessions are dropped (and so closed) after the lock is released.
        found
    }

    /// Keeps `session` as `caller`'s.
    pub(crate) fn put(&self, caller: &str, session: CallerSession) {
        let _replaced = {
            let mut sessions = self.lock();
            let mut closed = evict_idle(&mut sessions);
            let pooled = Pooled {
                caller: session,
                last_used: Instant::now(),
            };
            closed.extend(sessions.insert(caller.to_string(), pooled));
            closed
        };
    }

    /// Closes `caller`'s session (its authorization was revoked, say).
    pub(crate) fn remove(&self, caller: &str) {
        let removed = self.lock().remove(caller);
        drop(removed);
    }

    /// How many sessions are open (idle ones closed first).
    pub(crate) fn len(&self) -> usize {
        let (count, _closed) = {
            let mut sessions = self.lock();
            let closed = evict_idle(&mut sessions);
            (sessions.len(), closed)
        };
        count
    }

    /// Closes every session.
    pub(crate) fn clear(&self) {
        let removed: Vec<Pooled> = self.lock().drain().map(|(_, pooled)| pooled).collect();
        drop(removed);
    }
}

/// Takes the sessions idle too long out of `sessions`, for the caller to drop once it has
/// released the lock.
fn evict_idle(sessions: &mut HashMap<String, Pooled>) -> Vec<Pooled> {
    let idle: Vec<String> = sessions
        .iter()
        .filter(|(_, pooled)| pooled.last_used.elapsed() >= IDLE_AFTER)
        .map(|(caller, _)| caller.clone())
        .collect();
    idle.iter()
        .filter_map(|caller| sessions.remove(caller))
        .collect()
}
