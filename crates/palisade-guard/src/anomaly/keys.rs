//! The bounded map of baselines: sharded, each shard holding at most its
//! share of the key budget. A new key in a full shard evicts the least
//! recently seen of a sample of its keys, so memory stays bounded whatever
//! number of distinct addresses or subjects an attacker sends, and the keys
//! that stay are mostly the active ones.

use super::baseline::Baseline;
use foldhash::fast::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;

const SHARDS: usize = 16;
/// Keys compared when choosing one to evict.
const SAMPLE: usize = 16;

#[derive(Debug)]
pub(crate) struct Keys<K> {
    shards: Vec<Mutex<HashMap<K, Baseline, RandomState>>>,
    per_shard: usize,
    hasher: RandomState,
}

impl<K: Hash + Eq + Clone> Keys<K> {
    /// A map of at most `max_keys` keys (rounded up to a multiple of the shard count).
    pub(crate) fn new(max_keys: usize) -> Self {
        let per_shard = max_keys.div_ceil(SHARDS).max(1);
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_hasher(RandomState::default())))
                .collect(),
            per_shard,
            hasher: RandomState::default(),
        }
    }

    /// Runs `f` on the baseline of `key`, creating it with `init` (and
    /// evicting another key if the shard is full). Returns `f`'s result and
    /// whether a key was evicted.
    pub(crate) fn with<R>(
        &self,
        key: &K,
        init: impl FnOnce() -> Baseline,
        f: impl FnOnce(&mut Baseline) -> R,
    ) -> (R, bool) {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        let Some(shard) = self.shards.get(index) else {
            let mut fresh = init();
            return (f(&mut fresh), false);
        };
        // A poisoned shard only means a panic between two plain updates.
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        let mut evicted = false;
        if !map.contains_key(key) && map.len() >= self.per_shard {
            let victim = map
                .iter()
                .take(SAMPLE)
                .min_by_key(|(_, b)| b.last_seen_ms)
                .map(|(k, _)| k.clone());
            if let Some(victim) = victim {
                map.remove(&victim);
                evicted = true;
            }
        }
        let baseline = map.entry(key.clone()).or_insert_with(init);
        (f(baseline), evicted)
    }

    /// Keys held.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }

    /// The most keys ever held.
    pub(crate) fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// Drops keys not seen since `cutoff_ms`; returns how many.
    pub(crate) fn evict_idle(&self, cutoff_ms: i64) -> usize {
        let mut removed = 0;
        for shard in &self.shards {
            let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
            let before = map.len();
            map.retain(|_, b| b.last_seen_ms >= cutoff_ms);
            removed += before - map.len();
        }
        removed
    }
}
