//! The in-process limiter: one [`Limit`] enforced per key, lock-free per key.
//!
//! Each key's state is one or two `AtomicU64`s updated by compare-and-swap
//! loops over the arithmetic in `algorithm.rs`, so concurrent checks of one
//! key never block each other and never over-admit:
//! - GCRA: one word, the theoretical arrival time.
//! - Fixed window: one word packing (window index as `u32`, count as `u32`).
//! - Sliding window: two such words, one per window parity. A check only ever
//!   swaps the current window's word, so the previous window's count it read
//!   cannot change under it.
//!
//! Window indexes are kept modulo 2^32, which is safe as long as a key is not
//! left untouched for 2^32 windows (50 days at a 1 ms period) without
//! [`LocalLimiter::evict_idle`] running; the HTTP layer runs it on a timer.
//!
//! Keys live in a [`DashMap`] hashed with foldhash. A check of a known key
//! takes the shard's read lock and allocates nothing; only a new key takes
//! the write lock and clones the key.

use super::algorithm::Params;
use super::{Algorithm, Decision, Limit};
use crate::GuardError;
use compact_str::CompactString;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use foldhash::fast::RandomState;
use palisade_core::SharedClock;
use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// How often, at most, a full limiter scans for idle keys on its own: once
/// per this many refused new keys (a 16th of `max_keys`), so a flood of new
/// keys costs O(16) per key, not a scan each...
const EVICTION_SHARE: usize = 16;

/// ...or once this long has passed since the last scan, so a key that has
/// just gone idle frees its place promptly.
const EVICTION_INTERVAL_NS: u64 = 100_000_000;

/// A clock reading marking "never".
const NEVER: u64 = u64::MAX;

/// A key as the limiter stores it, made from the borrowed form a check is
/// given. The stored type may differ from what `ToOwned` gives: string keys
/// (client addresses, user names) are kept as [`CompactString`] by default,
/// inline up to 24 bytes, so a lookup compares the key in the map's own slot
/// instead of following a pointer to a separate heap block (one cache miss
/// less per check over many keys).
pub trait StoredKey<Q: ?Sized>: Borrow<Q> + Hash + Eq + Send + Sync + 'static {
    /// The key to store for a check of `key`.
    fn stored(key: &Q) -> Self;
}

impl<T: Clone + Hash + Eq + Send + Sync + 'static> StoredKey<T> for T {
    fn stored(key: &T) -> Self {
        key.clone()
    }
}

impl StoredKey<str> for String {
    fn stored(key: &str) -> Self {
        key.to_owned()
    }
}

impl StoredKey<str> for CompactString {
    fn stored(key: &str) -> Self {
        CompactString::new(key)
    }
}

/// Enforces one [`Limit`] per key in process.
///
/// Memory is bounded by `max_keys`. When that many keys are tracked, a new
/// key first makes the limiter drop keys that are at rest; if every tracked
/// key is still active, the check fails with [`GuardError::Full`]. Failing
/// closed is deliberate: admitting untracked keys would let anyone who can
/// mint keys (client addresses, user names) bypass the limit.
pub struct LocalLimiter<K = CompactString> {
    limit: Limit,
    params: Params,
    clock: SharedClock,
    max_keys: usize,
    keys: DashMap<K, KeyState, RandomState>,
    /// Keys in the map plus insertions in flight, so concurrent insertions
    /// cannot overshoot `max_keys`.
    tracked: AtomicUsize,
    /// Only one thread scans for idle keys at a time.
    evicting: AtomicBool,
    /// New keys refused for lack of room since the last scan.
    refused_since_scan: AtomicUsize,
    /// When the last scan made on insertion ran, or [`NEVER`].
    last_scan_ns: AtomicU64,
}

/// One key's state. GCRA and the fixed window use the first word only.
#[derive(Debug, Default)]
struct KeyState {
    words: [AtomicU64; 2],
}

impl<K> fmt::Debug for LocalLimiter<K> {
    /// Leaves the keys out: they are client addresses or user names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalLimiter")
            .field("limit", &self.limit)
            .field("tracked", &self.tracked.load(Ordering::Relaxed))
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Send + Sync + 'static> LocalLimiter<K> {
    /// A limiter enforcing `limit` for each of at most `max_keys` keys, with
    /// time read from `clock`'s monotonic time. A `max_keys` of 0 tracks no
    /// key, so every check fails with [`GuardError::Full`].
    pub fn new(limit: Limit, clock: SharedClock, max_keys: usize) -> Self {
        Self {
            limit,
            params: Params::new(&limit),
            clock,
            max_keys,
            keys: DashMap::with_hasher(RandomState::default()),
            tracked: AtomicUsize::new(0),
            evicting: AtomicBool::new(false),
            refused_since_scan: AtomicUsize::new(0),
            last_scan_ns: AtomicU64::new(NEVER),
        }
    }

    /// The limit enforced for every key.
    pub fn limit(&self) -> &Limit {
        &self.limit
    }

    /// Takes `cost` units from `key` now (one read of the clock).
    ///
    /// Fails if the cost could never pass ([`Limit::check_cost`]) or if the
    /// key is new and the limiter is full of active keys.
    pub fn check<Q>(&self, key: &Q, cost: u64) -> Result<Decision, GuardError>
    where
        K: StoredKey<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.check_nanos(key, cost, nanos(self.clock.monotonic()))
    }

    /// Takes `cost` units from `key` at `now`, a reading of the clock's
    /// monotonic time. For callers that already read the clock for a batch
    /// of checks, and for tests.
    pub fn check_at<Q>(&self, key: &Q, cost: u64, now: Duration) -> Result<Decision, GuardError>
    where
        K: StoredKey<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.check_nanos(key, cost, nanos(now))
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Drops every key whose state is at rest, that is, a new key would get
    /// the same answer (GCRA: its arrival time has passed; windows: its
    /// counts are older than the previous window). Returns how many went.
    pub fn evict_idle(&self) -> usize {
        self.evict_at(nanos(self.clock.monotonic()))
    }

    #[inline]
    fn check_nanos<Q>(&self, key: &Q, cost: u64, now: u64) -> Result<Decision, GuardError>
    where
        K: StoredKey<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.limit.check_cost(cost)?;
        if let Some(state) = self.keys.get(key) {
            return Ok(self.apply(&state, now, cost));
        }
        self.insert_and_apply(key, cost, now)
    }

    /// The slow path: the key was not found under the read lock. Kept out of
    /// line so the hot path stays small.
    #[cold]
    #[inline(never)]
    fn insert_and_apply<Q>(&self, key: &Q, cost: u64, now: u64) -> Result<Decision, GuardError>
    where
        K: StoredKey<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.reserve(now) {
            // Another thread may have inserted this very key meanwhile.
            return match self.keys.get(key) {
                Some(state) => Ok(self.apply(&state, now, cost)),
                None => Err(GuardError::Full(self.max_keys)),
            };
        }
        match self.keys.entry(K::stored(key)) {
            Entry::Occupied(entry) => {
                self.tracked.fetch_sub(1, Ordering::AcqRel);
                Ok(self.apply(entry.get(), now, cost))
            }
            Entry::Vacant(entry) => {
                let state = entry.insert(KeyState::default());
                Ok(self.apply(&state, now, cost))
            }
        }
    }

    /// Reserves a place for a new key, scanning for idle keys once if full.
    fn reserve(&self, now: u64) -> bool {
        for attempt in 0..2 {
            if self.tracked.fetch_add(1, Ordering::AcqRel) < self.max_keys {
                return true;
            }
            self.tracked.fetch_sub(1, Ordering::AcqRel);
            if attempt == 0 && !self.scan_when_full(now) {
                return false;
            }
        }
        false
    }

    /// Runs [`Self::evict_at`] if the amortisation allows it and no other
    /// thread is scanning. Returns whether it ran.
    fn scan_when_full(&self, now: u64) -> bool {
        let refused = self.refused_since_scan.fetch_add(1, Ordering::AcqRel) + 1;
        let last = self.last_scan_ns.load(Ordering::Acquire);
        let due = last == NEVER
            || refused >= (self.max_keys / EVICTION_SHARE).max(1)
            || now.saturating_sub(last) >= EVICTION_INTERVAL_NS;
        if !due || self.evicting.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.refused_since_scan.store(0, Ordering::Release);
        self.last_scan_ns.store(now, Ordering::Release);
        self.evict_at(now);
        self.evicting.store(false, Ordering::Release);
        true
    }

    fn evict_at(&self, now: u64) -> usize {
        let mut removed = 0;
        self.keys.retain(|_, state| {
            let active = !self.at_rest(state, now);
            if !active {
                removed += 1;
            }
            active
        });
        self.tracked.fetch_sub(removed, Ordering::AcqRel);
        removed
    }

    /// Whether `state` answers at `now` exactly as a new key would.
    fn at_rest(&self, state: &KeyState, now: u64) -> bool {
        let word = |i: usize| state.words[i].load(Ordering::Acquire);
        let (window, _) = self.params.window_of(now);
        match self.limit.algorithm() {
            Algorithm::Gcra => self.params.gcra_at_rest(word(0), now),
            Algorithm::FixedWindow => !counts_in(word(0), window, 0),
            Algorithm::SlidingWindow => !(0..2).any(|i| counts_in(word(i), window, 1)),
        }
    }

    /// One check against one key's state: a compare-and-swap loop around the
    /// algorithm's arithmetic. A denied check stores nothing.
    #[inline]
    fn apply(&self, state: &KeyState, now: u64, cost: u64) -> Decision {
        match self.limit.algorithm() {
            Algorithm::Gcra => self.apply_gcra(&state.words[0], now, cost),
            Algorithm::FixedWindow => self.apply_fixed_window(&state.words[0], now, cost),
            Algorithm::SlidingWindow => self.apply_sliding_window(&state.words, now, cost),
        }
    }

    #[inline]
    fn apply_gcra(&self, word: &AtomicU64, now: u64, cost: u64) -> Decision {
        let mut current = word.load(Ordering::Acquire);
        loop {
            let (decision, store) = self.params.gcra(current, now, cost);
            let Some(new) = store else {
                return decision;
            };
            match word.compare_exchange_weak(current, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return decision,
                Err(actual) => current = actual,
            }
        }
    }

    fn apply_fixed_window(&self, word: &AtomicU64, now: u64, cost: u64) -> Decision {
        let (clock_window, clock_elapsed) = self.params.window_of(now);
        let mut current = word.load(Ordering::Acquire);
        loop {
            let (window, elapsed) = catch_up(clock_window, clock_elapsed, &[current]);
            let count = count_of(current, window);
            let (decision, store) = self.params.fixed_window(count, elapsed, cost);
            let Some(count) = store else {
                return decision;
            };
            let new = pack(window, count);
            match word.compare_exchange_weak(current, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return decision,
                Err(actual) => current = actual,
            }
        }
    }

    fn apply_sliding_window(&self, words: &[AtomicU64; 2], now: u64, cost: u64) -> Decision {
        let (clock_window, clock_elapsed) = self.params.window_of(now);
        loop {
            let loaded = [
                words[0].load(Ordering::Acquire),
                words[1].load(Ordering::Acquire),
            ];
            let (window, elapsed) = catch_up(clock_window, clock_elapsed, &loaded);
            let slot = usize::from(window % 2 == 1);
            let cur = count_of(loaded[slot], window);
            let prev = count_of(loaded[1 - slot], window.wrapping_sub(1));
            let (decision, store) = self.params.sliding_window(prev, cur, elapsed, cost);
            let Some(cur) = store else {
                return decision;
            };
            let new = pack(window, cur);
            if words[slot]
                .compare_exchange_weak(loaded[slot], new, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return decision;
            }
        }
    }
}

/// Monotonic time as nanoseconds, saturating after 584 years of uptime.
fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

/// A window word: the window's index modulo 2^32 and its count. Counts fit
/// because limits are at most a billion.
fn pack(window: u64, count: u64) -> u64 {
    (window << 32) | (count & 0xFFFF_FFFF)
}

/// The count a window word holds for `window`, or 0 if it holds another.
fn count_of(word: u64, window: u64) -> u64 {
    if word >> 32 == window & 0xFFFF_FFFF {
        word & 0xFFFF_FFFF
    } else {
        0
    }
}

/// How many windows `window` is past the window a word holds: 0 for the
/// same window, 1 for the previous one, and `u32::MAX` for the next one.
fn age(word: u64, window: u64) -> u32 {
    // Both sides are taken modulo 2^32, the packing's modulus.
    (window as u32).wrapping_sub((word >> 32) as u32)
}

/// How many windows a word's window is ahead of `window`, if it holds a
/// count for one of the next two (0 otherwise).
fn windows_ahead(word: u64, window: u64) -> u64 {
    let ahead = age(word, window).wrapping_neg();
    if word & 0xFFFF_FFFF != 0 && ahead <= 2 {
        u64::from(ahead)
    } else {
        0
    }
}

/// Whether a window word holds a count that still matters in `window`: a
/// count of this window, of up to `behind` windows before, or of one of the
/// next two.
fn counts_in(word: u64, window: u64, behind: u32) -> bool {
    word & 0xFFFF_FFFF != 0 && (age(word, window) <= behind || windows_ahead(word, window) > 0)
}

/// The window and elapsed time a check works in. A thread whose clock
/// reading lags a window that another thread has already written (it read
/// the clock just before a window edge and swapped just after) counts its
/// check at the start of that newer window, instead of overwriting the newer
/// count with an older window's.
fn catch_up(window: u64, elapsed: u64, words: &[u64]) -> (u64, u64) {
    let ahead = words
        .iter()
        .map(|word| windows_ahead(*word, window))
        .max()
        .unwrap_or(0);
    if ahead == 0 {
        (window, elapsed)
    } else {
        (window + ahead, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::ManualClock;
    use std::sync::{Arc, Barrier};

    const MS: Duration = Duration::from_millis(1);
    const SEC: Duration = Duration::from_secs(1);

    fn limit(algorithm: Algorithm, limit: u64, period: Duration) -> Limit {
        Limit::new(algorithm, limit, period).unwrap()
    }

    fn new_limiter<K: Hash + Eq + Send + Sync + 'static>(
        limit: Limit,
        max_keys: usize,
    ) -> (LocalLimiter<K>, ManualClock) {
        let clock = ManualClock::new();
        let limiter = LocalLimiter::new(limit, Arc::new(clock.clone()), max_keys);
        (limiter, clock)
    }

    fn allowed(limiter: &LocalLimiter, key: &str, cost: u64, at: Duration) -> bool {
        limiter.check_at(key, cost, at).unwrap().allowed
    }

    /// Checks that a denied check at `at` passes exactly at `at + retry_after`
    /// and not a nanosecond sooner (a denied check consumes nothing, so
    /// probing is harmless).
    fn assert_retry_after_is_exact(limiter: &LocalLimiter, key: &str, cost: u64, at: Duration) {
        let denied = limiter.check_at(key, cost, at).unwrap();
        assert!(!denied.allowed);
        let retry = denied.retry_after;
        assert!(retry > Duration::ZERO);
        let early = limiter.check_at(key, cost, at + retry - Duration::from_nanos(1));
        assert!(
            !early.unwrap().allowed,
            "passed before retry_after {retry:?}"
        );
        assert!(
            allowed(limiter, key, cost, at + retry),
            "still denied after {retry:?}"
        );
    }

    #[test]
    fn gcra_allows_the_burst_then_refills_one_unit_per_interval() {
        let gcra = limit(Algorithm::Gcra, 10, SEC).with_burst(3).unwrap();
        let (limiter, clock) = new_limiter::<CompactString>(gcra, 100);
        let decisions: Vec<Decision> = (0..4).map(|_| limiter.check("a", 1).unwrap()).collect();
        assert_eq!(
            decisions
                .iter()
                .map(|d| (d.allowed, d.remaining))
                .collect::<Vec<_>>(),
            [(true, 2), (true, 1), (true, 0), (false, 0)]
        );
        assert_eq!(decisions[2].reset_after, 300 * MS);
        assert_eq!(decisions[3].retry_after, 100 * MS);
        assert_eq!(decisions[3].limit, 10);
        clock.advance(100 * MS);
        assert!(limiter.check("a", 1).unwrap().allowed);
        assert!(!limiter.check("a", 1).unwrap().allowed);
    }

    #[test]
    fn gcra_retry_after_is_exact() {
        let gcra = limit(Algorithm::Gcra, 7, SEC).with_burst(5).unwrap();
        let (limiter, _) = new_limiter::<CompactString>(gcra, 100);
        assert!(allowed(&limiter, "k", 4, SEC));
        assert_retry_after_is_exact(&limiter, "k", 3, SEC + 10 * MS);
    }

    #[test]
    fn a_denied_check_consumes_nothing() {
        for algorithm in [
            Algorithm::Gcra,
            Algorithm::SlidingWindow,
            Algorithm::FixedWindow,
        ] {
            let (limiter, _) = new_limiter::<CompactString>(limit(algorithm, 5, SEC), 100);
            assert!(allowed(&limiter, "k", 3, SEC));
            for _ in 0..10 {
                assert!(!allowed(&limiter, "k", 3, SEC), "{algorithm:?}");
            }
            let last = limiter.check_at("k", 2, SEC).unwrap();
            assert!(last.allowed, "{algorithm:?}");
            assert_eq!(last.remaining, 0, "{algorithm:?}");
        }
    }

    #[test]
    fn a_cost_above_capacity_is_an_error_and_zero_cost_is_invalid() {
        for algorithm in [
            Algorithm::Gcra,
            Algorithm::SlidingWindow,
            Algorithm::FixedWindow,
        ] {
            let (limiter, _) = new_limiter::<CompactString>(limit(algorithm, 5, SEC), 100);
            assert_eq!(
                limiter.check("k", 6),
                Err(GuardError::CostExceedsCapacity {
                    cost: 6,
                    capacity: 5
                })
            );
            assert!(matches!(
                limiter.check("k", 0),
                Err(GuardError::Invalid { field: "cost", .. })
            ));
            // Errors track nothing.
            assert!(limiter.is_empty());
            assert!(limiter.check("k", 5).unwrap().allowed);
        }
    }

    #[test]
    fn gcra_capacity_is_the_burst() {
        let gcra = limit(Algorithm::Gcra, 10, SEC).with_burst(20).unwrap();
        let (limiter, _) = new_limiter::<CompactString>(gcra, 100);
        assert!(limiter.check("k", 20).unwrap().allowed);
        assert!(matches!(
            limiter.check("k", 21),
            Err(GuardError::CostExceedsCapacity { capacity: 20, .. })
        ));
    }

    #[test]
    fn fixed_window_resets_exactly_at_the_window_edge() {
        let (limiter, _) = new_limiter::<CompactString>(limit(Algorithm::FixedWindow, 3, SEC), 100);
        let start = 5 * SEC + 400 * MS;
        let first = limiter.check_at("k", 2, start).unwrap();
        assert_eq!((first.allowed, first.remaining), (true, 1));
        assert_eq!(first.reset_after, 600 * MS);
        assert!(allowed(&limiter, "k", 1, start));
        assert_retry_after_is_exact(&limiter, "k", 1, start + 100 * MS);
        // The edge itself belongs to the next window, where the probe at
        // exactly retry_after took 1 unit.
        let next = limiter.check_at("k", 2, 6 * SEC).unwrap();
        assert_eq!((next.allowed, next.remaining), (true, 0));
        assert_eq!(next.reset_after, SEC);
    }

    #[test]
    fn fixed_window_lets_twice_the_limit_through_across_an_edge() {
        let (limiter, _) = new_limiter::<CompactString>(limit(Algorithm::FixedWindow, 3, SEC), 100);
        assert!(allowed(&limiter, "k", 3, SEC - Duration::from_nanos(1)));
        assert!(allowed(&limiter, "k", 3, SEC));
    }

    #[test]
    fn sliding_window_counts_the_previous_window_by_its_remaining_share() {
        let (limiter, _) =
            new_limiter::<CompactString>(limit(Algorithm::SlidingWindow, 10, SEC), 100);
        assert!(allowed(&limiter, "k", 10, 900 * MS));
        // At 1.2 s the previous 10 weigh 8: 2 fit, with 0 remaining.
        let d = limiter.check_at("k", 2, SEC + 200 * MS).unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 0));
        assert_eq!(d.reset_after, 1_800 * MS);
        // A third waits until the previous 10 weigh 7 (1.3 s).
        assert_retry_after_is_exact(&limiter, "k", 1, SEC + 200 * MS);
    }

    #[test]
    fn sliding_window_retry_after_is_exact_across_windows() {
        let (limiter, _) =
            new_limiter::<CompactString>(limit(Algorithm::SlidingWindow, 10, SEC), 100);
        // This window is full; the room comes in the next window.
        assert!(allowed(&limiter, "k", 10, 300 * MS));
        assert_retry_after_is_exact(&limiter, "k", 4, 600 * MS);
        // A cost of the whole limit waits until this window's count is gone.
        let (limiter, _) =
            new_limiter::<CompactString>(limit(Algorithm::SlidingWindow, 10, SEC), 100);
        assert!(allowed(&limiter, "k", 1, 300 * MS));
        let denied = limiter.check_at("k", 10, 600 * MS).unwrap();
        assert_eq!(denied.retry_after, 1_400 * MS);
        assert_retry_after_is_exact(&limiter, "k", 10, 600 * MS);
    }

    #[test]
    fn sliding_window_forgets_windows_older_than_the_previous_one() {
        let (limiter, _) =
            new_limiter::<CompactString>(limit(Algorithm::SlidingWindow, 10, SEC), 100);
        assert!(allowed(&limiter, "k", 10, 500 * MS));
        let d = limiter.check_at("k", 10, 2 * SEC).unwrap();
        assert!(d.allowed);
        assert_eq!(d.reset_after, 2 * SEC);
    }

    #[test]
    fn keys_are_limited_independently() {
        for algorithm in [
            Algorithm::Gcra,
            Algorithm::SlidingWindow,
            Algorithm::FixedWindow,
        ] {
            let (limiter, _) = new_limiter::<CompactString>(limit(algorithm, 2, SEC), 100);
            assert!(allowed(&limiter, "a", 2, SEC));
            assert!(!allowed(&limiter, "a", 1, SEC));
            assert!(allowed(&limiter, "b", 2, SEC));
            assert_eq!(limiter.len(), 2);
        }
    }

    #[test]
    fn string_keys_are_looked_up_by_str_and_u64_keys_by_value() {
        let (strings, _) = new_limiter::<String>(limit(Algorithm::Gcra, 1, SEC), 10);
        let owned = String::from("10.1.2.3");
        assert!(strings.check(owned.as_str(), 1).unwrap().allowed);
        assert!(!strings.check("10.1.2.3", 1).unwrap().allowed);
        // The default store: keys up to 24 bytes inline, longer ones on the heap.
        let (compact, _) = new_limiter::<CompactString>(limit(Algorithm::Gcra, 1, SEC), 10);
        let long = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff";
        for key in ["10.1.2.3", long] {
            assert!(compact.check(key, 1).unwrap().allowed, "{key}");
            assert!(!compact.check(key, 1).unwrap().allowed, "{key}");
        }
        assert!(compact.check(&long[..24], 1).unwrap().allowed);
        assert_eq!(compact.len(), 3);
        let (numbers, _) = new_limiter::<u64>(limit(Algorithm::Gcra, 1, SEC), 10);
        assert!(numbers.check(&7, 1).unwrap().allowed);
        assert!(!numbers.check(&7, 1).unwrap().allowed);
        assert!(numbers.check(&8, 1).unwrap().allowed);
    }

    #[test]
    fn evict_idle_removes_keys_at_rest_and_keeps_active_ones() {
        for algorithm in [
            Algorithm::Gcra,
            Algorithm::SlidingWindow,
            Algorithm::FixedWindow,
        ] {
            let (limiter, clock) = new_limiter::<CompactString>(limit(algorithm, 10, SEC), 100);
            limiter.check("old", 1).unwrap();
            clock.advance(2 * SEC);
            limiter.check("new", 1).unwrap();
            assert_eq!(limiter.evict_idle(), 1, "{algorithm:?}");
            assert_eq!(limiter.len(), 1);
            // The survivor still carries its count.
            assert_eq!(
                limiter.check("new", 1).unwrap().remaining,
                8,
                "{algorithm:?}"
            );
        }
    }

    #[test]
    fn an_evicted_key_answers_as_it_would_have() {
        let (limiter, clock) =
            new_limiter::<CompactString>(limit(Algorithm::SlidingWindow, 10, SEC), 100);
        limiter.check("k", 10).unwrap();
        clock.advance(SEC);
        // The previous window still counts: not at rest.
        assert_eq!(limiter.evict_idle(), 0);
        let kept = limiter.check("k", 1).unwrap();
        assert!(!kept.allowed);
        clock.advance(SEC);
        // The count from two windows ago no longer counts for the window
        // after this one... but this window's zero count has nothing to add.
        assert_eq!(limiter.evict_idle(), 1);
        assert!(limiter.check("k", 10).unwrap().allowed);
    }

    #[test]
    fn a_full_limiter_makes_room_by_evicting_idle_keys() {
        let (limiter, clock) = new_limiter::<u64>(limit(Algorithm::Gcra, 10, SEC), 4);
        for key in 0..4u64 {
            limiter.check(&key, 1).unwrap();
        }
        assert_eq!(limiter.len(), 4);
        clock.advance(SEC);
        // All four are at rest now; the fifth key makes room by itself.
        assert!(limiter.check(&4, 1).unwrap().allowed);
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn a_limiter_full_of_active_keys_fails_closed() {
        let (limiter, _) = new_limiter::<u64>(limit(Algorithm::FixedWindow, 10, SEC), 3);
        for key in 0..3u64 {
            limiter.check(&key, 1).unwrap();
        }
        assert_eq!(limiter.check(&3, 1), Err(GuardError::Full(3)));
        assert_eq!(limiter.len(), 3);
        // Known keys are still checked normally.
        assert!(limiter.check(&0, 1).unwrap().allowed);
    }

    #[test]
    fn a_limiter_with_no_room_refuses_every_key() {
        let (limiter, _) = new_limiter::<u64>(limit(Algorithm::Gcra, 10, SEC), 0);
        assert_eq!(limiter.check(&1, 1), Err(GuardError::Full(0)));
    }

    #[test]
    fn a_check_with_a_lagging_clock_does_not_overwrite_a_newer_window() {
        for algorithm in [Algorithm::SlidingWindow, Algorithm::FixedWindow] {
            let (limiter, _) = new_limiter::<CompactString>(limit(algorithm, 4, SEC), 100);
            assert!(allowed(&limiter, "k", 4, SEC + 10 * MS));
            // Read the clock just before the edge, swapped just after: counted
            // in the newer window, where there is no room.
            let lagging = limiter
                .check_at("k", 1, SEC - Duration::from_nanos(5))
                .unwrap();
            assert!(!lagging.allowed, "{algorithm:?}");
            assert!(!allowed(&limiter, "k", 1, SEC + 20 * MS), "{algorithm:?}");
        }
    }

    #[test]
    fn debug_output_does_not_list_keys() {
        let (limiter, _) = new_limiter::<CompactString>(limit(Algorithm::Gcra, 1, SEC), 10);
        limiter.check("secret-user@example.com", 1).unwrap();
        let debug = format!("{limiter:?}");
        assert!(!debug.contains("secret-user"));
        assert!(debug.contains("max_keys: 10"));
    }

    /// Runs `threads` threads that each try `attempts` checks of one key at
    /// the (frozen) clock and returns how many passed in total.
    fn hammer<K>(limiter: &LocalLimiter<K>, key: &K, threads: usize, attempts: usize) -> u64
    where
        K: StoredKey<K>,
    {
        let start = Barrier::new(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        (0..attempts)
                            .filter(|_| limiter.check(key, 1).unwrap().allowed)
                            .count() as u64
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        })
    }

    #[test]
    fn concurrent_gcra_checks_never_admit_more_than_the_burst_plus_refill() {
        // 1000 per second (T = 1 ms), burst 50.
        let gcra = limit(Algorithm::Gcra, 1_000, SEC).with_burst(50).unwrap();
        for threads in [2, 4, 8] {
            let (limiter, clock) = new_limiter::<u64>(gcra, 10);
            let mut admitted = 0;
            let mut elapsed = Duration::ZERO;
            for round in 0..5u32 {
                admitted += hammer(&limiter, &1, threads, 500);
                let bound = 50 + elapsed.as_millis() as u64;
                // Demand far exceeds supply, so every unit is taken: the
                // bound is reached exactly, never passed.
                assert_eq!(admitted, bound, "{threads} threads, round {round}");
                let step = MS * (3 + 7 * round);
                clock.advance(step);
                elapsed += step;
            }
        }
    }

    #[test]
    fn concurrent_fixed_window_checks_never_admit_more_than_the_limit_per_window() {
        for threads in [2, 4, 8] {
            let (limiter, clock) = new_limiter::<u64>(limit(Algorithm::FixedWindow, 100, SEC), 10);
            for window in 0..3 {
                assert_eq!(hammer(&limiter, &1, threads, 200), 100, "window {window}");
                clock.advance(SEC);
            }
        }
    }

    #[test]
    fn concurrent_sliding_window_checks_never_admit_more_than_the_estimate_allows() {
        for threads in [2, 4, 8] {
            let (limiter, clock) =
                new_limiter::<u64>(limit(Algorithm::SlidingWindow, 100, SEC), 10);
            assert_eq!(hammer(&limiter, &1, threads, 200), 100);
            // Half-way through the next window the previous 100 weigh 50.
            clock.advance(SEC + 500 * MS);
            assert_eq!(hammer(&limiter, &1, threads, 200), 50);
        }
    }

    /// The most of `times` (sorted) inside any span of one `period`: what an
    /// exact sliding log would count at its worst moment.
    fn most_in_any_period(times: &[Duration], period: Duration) -> usize {
        let mut first = 0;
        let mut most = 0;
        for (last, t) in times.iter().enumerate() {
            while *t - times[first] >= period {
                first += 1;
            }
            most = most.max(last + 1 - first);
        }
        most
    }

    /// Offers `arrivals` to a sliding-window limiter, one unit each, and
    /// returns the times of those admitted.
    fn admitted(limit: Limit, arrivals: &[Duration]) -> Vec<Duration> {
        let (limiter, _) = new_limiter::<u64>(limit, 1);
        arrivals
            .iter()
            .copied()
            .filter(|t| limiter.check_at(&0, 1, *t).unwrap().allowed)
            .collect()
    }

    /// Poisson arrivals: exponential gaps averaging `mean`, until `end`.
    fn poisson(rng: &mut fastrand::Rng, mean: Duration, end: Duration) -> Vec<Duration> {
        let mean_ns = mean.as_nanos() as f64;
        let mut t = Duration::ZERO;
        let mut times = Vec::new();
        loop {
            let gap = -(1.0 - rng.f64()).ln() * mean_ns;
            t += Duration::from_nanos(gap as u64);
            if t >= end {
                return times;
            }
            times.push(t);
        }
    }

    /// The sliding window's error on random traffic, measured against an
    /// exact sliding log: Poisson traffic offered at half to three times the
    /// limit, and the most admitted within any span of one period. The error
    /// is statistical, so it shrinks as the limit grows: the bound asserted is
    /// 20% over the limit at 100 per period and 10% at 1,000 per period.
    /// Observed worst over seeds 1 to 3 (print with `--nocapture`; recorded
    /// in BENCHMARKS.md): 115 at a limit of 100 and 1,047 at 1,000, both with
    /// traffic offered at exactly the limit; at three times the limit, 104 and
    /// 1,004.
    #[test]
    fn sliding_window_stays_near_an_exact_log_on_random_traffic() {
        for (limit_per_second, windows, bound) in [(100, 1_000, 120), (1_000, 200, 1_100)] {
            let sliding = limit(Algorithm::SlidingWindow, limit_per_second, SEC);
            for seed in 1..=3 {
                let mut rng = fastrand::Rng::with_seed(seed);
                for load in [0.5, 1.0, 1.5, 3.0] {
                    let mean = SEC.div_f64(limit_per_second as f64 * load);
                    let arrivals = poisson(&mut rng, mean, SEC * windows);
                    let most = most_in_any_period(&admitted(sliding, &arrivals), SEC);
                    println!(
                        "limit {limit_per_second}, seed {seed}, load {load}x: \
                         at most {most} in one period"
                    );
                    assert!(
                        most <= bound,
                        "limit {limit_per_second}, seed {seed}, load {load}x: {most}"
                    );
                }
            }
        }
    }

    /// The worst case: the previous window's whole limit arrives in its last
    /// nanosecond, then traffic keeps coming. The estimate weighs those units
    /// as if spread over the window, so a span of one period admits close to
    /// twice the limit, and never more.
    #[test]
    fn sliding_window_admits_under_twice_the_limit_when_traffic_bunches_at_a_window_end() {
        let sliding = limit(Algorithm::SlidingWindow, 100, SEC);
        let mut arrivals = vec![SEC - Duration::from_nanos(1); 100];
        arrivals.extend((0..2_000u32).map(|i| SEC + MS * i));
        let most = most_in_any_period(&admitted(sliding, &arrivals), SEC);
        assert!(most > 190, "{most}");
        assert!(most <= 200, "{most}");
    }
}
