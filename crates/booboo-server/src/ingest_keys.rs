//! The live ingestion keys a node has seen, kept in memory so that a
//! request does not look its key up in the database.
//!
//! A key found here is only a hint: every event it brings is checked again
//! when its batch is stored, inside the batch's transaction
//! (`Ingest::store_keyed_events`, called by `group_commit.rs`), and the
//! events of a key no longer live are refused, nothing of them stored. So a key revoked through any node, or
//! with the CLI, is refused by every node from the next batch on: what
//! arrives after the revocation committed is never stored under it. Answers
//! that store nothing (a handshake, a Sentry envelope without events) ask
//! the database themselves (`ingest/`).

use std::collections::HashMap;
use std::sync::Mutex;

/// At most this many keys are remembered; past it the memory starts again
/// empty (keys are looked up again as their requests come).
const MAX_KEYS: usize = 10_000;

/// Live keys and their projects.
#[derive(Default)]
pub struct IngestKeys {
    projects: Mutex<HashMap<String, i64>>,
}

impl IngestKeys {
    /// The project of `token`, if it was live when last seen.
    pub fn project_of(&self, token: &str) -> Option<i64> {
        self.lock().get(token).copied()
    }

    /// Remembers that `token` is live and sends to `project_id`.
    pub fn remember(&self, token: &str, project_id: i64) {
        let mut projects = self.lock();
        if projects.len() >= MAX_KEYS && !projects.contains_key(token) {
            projects.clear();
        }
        projects.insert(token.to_string(), project_id);
    }

    /// Forgets a key found revoked (or deleted).
    pub fn forget(&self, token: &str) {
        self.lock().remove(token);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        // A panic elsewhere while holding the lock leaves a usable map.
        self.projects.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_remembered_forgotten_and_bounded() {
        let keys = IngestKeys::default();
        keys.remember("a", 1);
        assert_eq!(keys.project_of("a"), Some(1));
        keys.forget("a");
        assert_eq!(keys.project_of("a"), None);
        for n in 0..MAX_KEYS + 1 {
            keys.remember(&n.to_string(), 2);
        }
        assert!(keys.lock().len() <= MAX_KEYS);
        assert_eq!(keys.project_of(&MAX_KEYS.to_string()), Some(2), "the newest is kept");
    }
}
