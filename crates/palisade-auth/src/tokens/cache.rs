//! A bounded cache of tokens already verified, so a token presented again is
//! not re-checked cryptographically. Keyed by SHA-256 of the whole token
//! (two tokens differing in one byte never share an entry), holding the
//! verified claims. What can change after a token was verified is checked on
//! every hit by the caller: expiry, audience, and revocation.

use crate::jwt::Claims;
use aws_lc_rs::digest;
use std::sync::Arc;
use std::time::Duration;

/// The cache; disabled when built with capacity 0.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedCache {
    entries: Option<moka::sync::Cache<[u8; 32], Arc<Claims>>>,
}

impl VerifiedCache {
    /// Up to `capacity` tokens, each kept at most `lifetime` (the longest a
    /// token may live; expiry is still checked on every hit).
    pub(crate) fn new(capacity: u64, lifetime: Duration) -> Self {
        let entries = (capacity > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(lifetime)
                .build()
        });
        Self { entries }
    }

    /// The key of `token`, or `None` when the cache is off (no hash computed).
    pub(crate) fn key(&self, token: &str) -> Option<[u8; 32]> {
        self.entries.as_ref()?;
        let mut key = [0u8; 32];
        key.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
        Some(key)
    }

    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<Arc<Claims>> {
        self.entries.as_ref()?.get(key)
    }

    pub(crate) fn insert(&self, key: [u8; 32], claims: Arc<Claims>) {
        if let Some(entries) = &self.entries {
            entries.insert(key, claims);
        }
    }

    /// Forgets everything: after a key was removed, nothing it signed may be
    /// served from memory.
    pub(crate) fn clear(&self) {
        if let Some(entries) = &self.entries {
            entries.invalidate_all();
        }
    }
}
