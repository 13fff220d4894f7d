//! The web UI's login sessions: an admin who presented the admin token gets a random session id
//! (in an HttpOnly, SameSite=Strict cookie) and a CSRF token (in the page, sent back as a
//! header on every state-changing request).
//!
//! Sessions live in memory only: a restart logs everyone out, which costs one login and keeps
//! no admin credential on disk. The map is keyed by the SHA-256 of the session id, so a heap
//! dump does not hand out live cookies, and is bounded: past [`MAX_SESSIONS`] the oldest goes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::policy::keys::sha256_hex;

/// The cookie that carries the session id.
pub const COOKIE: &str = "codemode_session";

/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long a session lasts from its login.
pub const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// Sessions kept at most; a login past it ends the oldest.
pub const MAX_SESSIONS: usize = 1_000;

/// One logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token its pages send back in [`CSRF_HEADER`].
    pub csrf: String,
    started: Instant,
}

impl Session {
    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        verify_slices_are_equal(self.csrf.as_bytes(), presented.as_bytes()).is_ok()
    }
}

/// The system has no randomness to make a session from.
#[derive(Debug, thiserror::Error)]
#[error("no randomness available for a session id")]
pub struct NoRandomness;

/// Every live session.
#[derive(Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session: answers its id (for the cookie) and the session.
    ///
    /// # Errors
    /// [`NoRandomness`] when the system's random source fails.
    pub fn start(&self) -> Result<(String, Session), NoRandomness> {
        let id = random_hex()?;
        let session = Session {
            csrf: random_hex()?,
            started: Instant::now(),
        };
        let mut sessions = self.lock();
        sessions.retain(|_, s| s.started.elapsed() < LIFETIME);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.started)
                .map(|(hash, _)| hash.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(sha256_hex(id.as_bytes()), session.clone());
        Ok((id, session))
    }

    /// The live session of cookie value `id`.
    pub fn get(&self, id: &str) -> Option<Session> {
        let hash = sha256_hex(id.as_bytes());
        let mut sessions = self.lock();
        match sessions.get(&hash) {
            Some(session) if session.started.elapsed() < LIFETIME => Some(session.clone()),
            Some(_) => {
                sessions.remove(&hash);
                None
            }
            None => None,
        }
    }

    /// Ends the session of cookie value `id`, if it is live.
    pub fn end(&self, id: &str) {
        self.lock().remove(&sha256_hex(id.as_bytes()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // Every change leaves the map consistent before it could panic.
        self.by_hash.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// 32 random bytes, hex.
fn random_hex() -> Result<String, NoRandomness> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| NoRandomness)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_only_and_ends() {
        let sessions = Sessions::default();
        let (id, session) = sessions.start().expect("randomness");
        assert_eq!(id.len(), 64);
        let found = sessions.get(&id).expect("live");
        assert!(found.csrf_matches(&session.csrf));
        assert!(!found.csrf_matches("wrong"));
        assert!(sessions.get(&session.csrf).is_none());
        sessions.end(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn past_the_bound_the_oldest_session_goes() {
        let sessions = Sessions::default();
        let (first, _) = sessions.start().expect("randomness");
        for _ in 1..MAX_SESSIONS {
            sessions.start().expect("randomness");
        }
        assert!(sessions.get(&first).is_some());
        sessions.start().expect("randomness");
        assert!(sessions.get(&first).is_none());
    }
}
