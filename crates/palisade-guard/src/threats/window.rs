//! Detector state: sliding-window sets (what was seen, by whom, within the
//! last `window` ms) and one-shot claims, in process or shared through Redis.
//!
//! One primitive covers every detector: `add(key, member, at, window, cap)`
//! puts `member` into the set `key` with time `at`, forgets members older than
//! `at - window`, and answers how many remain. Counting failures adds a unique
//! member per event; counting distinct accounts adds the account name. A set
//! keeps at most `cap` members (the newest): a detector only needs to know
//! that a threshold was reached, so memory per key is bounded by it.
//!
//! `claim(key, at, ttl)` is true for the first caller until `at + ttl`: one
//! detection per attack and window, even when several instances see the same
//! attack through Redis.
//!
//! Times are the events' own (`at_ms`), not the server's, so a replayed or
//! test stream with a manual clock behaves as it happened. With Redis, each
//! call is one Lua script on one key (hash-tagged for Cluster). When Redis
//! fails, the in-process state answers instead and the failure is counted:
//! detection degrades to per-instance, it never stops.

use palisade_store::Redis;
use redis::Script;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

/// KEYS[1]: the sorted set. ARGV: member ('' to only count), at, window, cap.
const ADD_SOURCE: &str = r"
local at, window, cap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (at - window))
if ARGV[1] ~= '' then
  redis.call('ZADD', KEYS[1], 'GT', at, ARGV[1])
end
local n = redis.call('ZCARD', KEYS[1])
if n > cap then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - cap - 1)
  n = cap
end
if n > 0 then redis.call('PEXPIRE', KEYS[1], window + 60000) end
return n
";
static ADD: LazyLock<Script> = LazyLock::new(|| Script::new(ADD_SOURCE));

/// KEYS[1]: the claim. ARGV: at, ttl. The value is the claim's end, in event time.
const CLAIM_SOURCE: &str = r"
local at, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local held = tonumber(redis.call('GET', KEYS[1]))
if held and held > at then return 0 end
redis.call('SET', KEYS[1], string.format('%.0f', at + ttl), 'PX', ttl + 60000)
return 1
";
static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(CLAIM_SOURCE));

#[derive(Debug, Default)]
struct Set {
    members: HashMap<String, i64>,
    last_ms: i64,
}

/// In-process windows, bounded in keys.
#[derive(Debug)]
struct Memory {
    sets: Mutex<HashMap<String, Set>>,
    claims: Mutex<HashMap<String, i64>>,
    max_keys: usize,
}

impl Memory {
    fn add(&self, key: &str, member: &str, at: i64, window: i64, cap: usize) -> u64 {
        let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        if !sets.contains_key(key) && sets.len() >= self.max_keys {
            evict_oldest(&mut sets, at, window);
        }
        let set = sets.entry(key.to_owned()).or_default();
        let cutoff = at - window;
        set.members.retain(|_, t| *t >= cutoff);
        if !member.is_empty() {
            let t = set.members.entry(member.to_owned()).or_insert(at);
            *t = (*t).max(at);
            set.last_ms = set.last_ms.max(at);
        }
        while set.members.len() > cap.max(1) {
            let oldest = set
                .members
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(m, _)| m.clone());
            match oldest {
                Some(m) => set.members.remove(&m),
                None => break,
            };
        }
        let n = set.members.len() as u64;
        if n == 0 {
            sets.remove(key);
        }
        n
    }

    fn claim(&self, key: &str, at: i64, ttl: i64) -> bool {
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        if claims.len() >= self.max_keys {
            claims.retain(|_, until| *until > at);
        }
        match claims.get(key) {
            Some(until) if *until > at => false,
            _ => {
                if claims.len() < self.max_keys {
                    claims.insert(key.to_owned(), at + ttl);
                }
                true
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.sets.lock().map_or(0, |s| s.len())
    }
}

/// Makes room: drops sets whose newest member fell out of a window, else
/// the least recently used of a sample.
fn evict_oldest(sets: &mut HashMap<String, Set>, at: i64, window: i64) {
    let before = sets.len();
    sets.retain(|_, s| s.last_ms >= at - window);
    if sets.len() < before {
        return;
    }
    let victim = sets
        .iter()
        .take(32)
        .min_by_key(|(_, s)| s.last_ms)
        .map(|(k, _)| k.clone());
    if let Some(victim) = victim {
        sets.remove(&victim);
    }
}

/// Sliding-window sets and claims, in process or on Redis.
#[derive(Debug)]
pub(crate) struct Windows {
    memory: Memory,
    redis: Option<Redis>,
    redis_failures: AtomicU64,
}

impl Windows {
    pub(crate) fn new(redis: Option<Redis>, max_keys: usize) -> Self {
        Self {
            memory: Memory {
                sets: Mutex::new(HashMap::new()),
                claims: Mutex::new(HashMap::new()),
                max_keys: max_keys.max(1),
            },
            redis,
            redis_failures: AtomicU64::new(0),
        }
    }

    fn storage_key(redis: &Redis, key: &str) -> String {
        redis.key(&format!("threats:{{{key}}}"))
    }

    /// Adds `member` (or nothing, when empty) to the set `key` at `at` and
    /// answers how many members are within `window` of `at`, at most `cap`.
    pub(crate) async fn add(&self, key: &str, member: &str, at: i64, window: u64, cap: u64) -> u64 {
        let window = i64::try_from(window).unwrap_or(i64::MAX / 4);
        if let Some(redis) = &self.redis {
            let keys = [Self::storage_key(redis, key)];
            let args = [
                member.to_owned(),
                at.to_string(),
                window.to_string(),
                cap.max(1).to_string(),
            ];
            match redis.invoke_script::<u64, _, _>(&ADD, &keys, &args).await {
                Ok(n) => return n,
                Err(error) => self.redis_failed(&error),
            }
        }
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        self.memory.add(key, member, at, window, cap)
    }

    /// True for the first claim of `key` until `at + ttl` (event time).
    pub(crate) async fn claim(&self, key: &str, at: i64, ttl: u64) -> bool {
        let ttl = i64::try_from(ttl).unwrap_or(i64::MAX / 4);
        if let Some(redis) = &self.redis {
            let keys = [Self::storage_key(redis, &format!("claim:{key}"))];
            let args = [at, ttl];
            match redis.invoke_script::<i64, _, _>(&CLAIM, &keys, &args).await {
                Ok(n) => return n == 1,
                Err(error) => self.redis_failed(&error),
            }
        }
        self.memory.claim(key, at, ttl)
    }

    fn redis_failed(&self, error: &palisade_store::RedisError) {
        self.redis_failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("palisade_threats_redis_failures_total").increment(1);
        tracing::debug!(%error, "threat detection state unavailable on Redis; using this instance's");
    }

    /// Sets held in process.
    #[cfg(test)]
    pub(crate) fn local_keys(&self) -> usize {
        self.memory.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_members_within_the_window_and_caps_them() {
        let w = Windows::new(None, 100);
        let mut counts = Vec::new();
        for (i, at) in [0, 10, 20, 30].into_iter().enumerate() {
            counts.push(w.add("k", &format!("e{i}"), at, 25, 10).await);
        }
        assert_eq!(counts, [1, 2, 3, 3]);
        // At 30 with a window of 25, the member of 0 has gone: 10, 20, 30 remain.
        assert_eq!(w.add("k", "", 30, 25, 10).await, 3);
        assert_eq!(w.add("k", "", 100, 25, 10).await, 0);
        for i in 0..50 {
            assert!(w.add("cap", &format!("m{i}"), 200, 1000, 5).await <= 5);
        }
        assert_eq!(w.add("cap", "", 200, 1000, 5).await, 5);
        // Distinct members: the same one counts once.
        assert_eq!(w.add("d", "alice", 0, 100, 10).await, 1);
        assert_eq!(w.add("d", "alice", 1, 100, 10).await, 1);
        assert_eq!(w.add("d", "bob", 2, 100, 10).await, 2);
    }

    #[tokio::test]
    async fn a_claim_is_granted_once_per_ttl() {
        let w = Windows::new(None, 100);
        assert!(w.claim("c", 0, 100).await);
        assert!(!w.claim("c", 50, 100).await);
        assert!(w.claim("c", 100, 100).await);
        assert!(w.claim("other", 50, 100).await);
    }

    #[tokio::test]
    async fn keys_stay_bounded() {
        let w = Windows::new(None, 10);
        for i in 0..1_000 {
            w.add(&format!("k{i}"), "m", i, 1_000_000, 4).await;
            assert!(w.local_keys() <= 10);
        }
    }
}
