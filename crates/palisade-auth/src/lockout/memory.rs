//! The in-process backend: counts in one bounded map, under one mutex.
//!
//! It is the whole of brute-force protection in the embedded default (no
//! Redis), and with Redis it is each instance's fallback: it mirrors what
//! Redis answered for the keys this instance saw, so a lockout it has seen
//! still holds here when Redis becomes unreachable.
//!
//! Time is monotonic milliseconds passed in by the caller. Operations are a
//! hash lookup and a few comparisons: far below the cost of the password hash
//! they guard, so one mutex is enough.
//!
//! **Bounded memory.** At most `max_entries` keys, each with at most
//! [`MAX_PAIRS`] per-account counts. When the map is full, expired keys go
//! first; if none have expired, the 1/64 of keys that would expire soonest
//! go (those without a block, with the oldest last failure). Evicting a key
//! forgets its failures, so an attacker who can fill the map could reset a
//! count: filling it takes `max_entries` distinct failures, each paid for with
//! a password hash, and blocked keys are the last to go.

use super::policy::{LockoutPolicy, Penalty, Thresholds, ms};
use super::{Clear, KeyState, MAX_PAIRS, Recorded, Reset, attempt::KeyDigest};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// One counted key.
#[derive(Debug, Default)]
struct Entry {
    failures: u32,
    /// Monotonic ms until which attempts are refused (in the past when none).
    blocked_until: u64,
    /// Monotonic ms after which the entry is forgotten.
    expires_at: u64,
    /// For client keys: failures per account, so a success on one account
    /// takes back only that account's failures.
    pairs: Vec<(KeyDigest, u32)>,
}

impl Entry {
    fn state(&self, now: u64) -> KeyState {
        KeyState {
            failures: self.failures,
            blocked_for: Duration::from_millis(self.blocked_until.saturating_sub(now)),
        }
    }

    fn count_pair(&mut self, pair: KeyDigest) {
        if let Some((_, n)) = self.pairs.iter_mut().find(|(p, _)| *p == pair) {
            *n = n.saturating_add(1);
        } else if self.pairs.len() < MAX_PAIRS {
            self.pairs.push((pair, 1));
        }
        // Past the cap a success no longer takes back that account's
        // failures: stricter, never looser.
    }

    /// Takes back the failures counted for `pair`.
    fn clear_pair(&mut self, pair: KeyDigest) {
        if let Some(i) = self.pairs.iter().position(|(p, _)| *p == pair) {
            let (_, n) = self.pairs.swap_remove(i);
            self.failures = self.failures.saturating_sub(n);
        }
    }
}

/// Counts of failures per key, in this process.
#[derive(Debug)]
pub(crate) struct MemoryLockout {
    entries: Mutex<HashMap<KeyDigest, Entry>>,
    max_entries: usize,
}

impl MemoryLockout {
    /// A map of at most `max_entries` keys (at least 1).
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_entries: max_entries.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<KeyDigest, Entry>> {
        // A panic while holding the lock leaves counts that are still counts.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key's count and block.
    pub(crate) fn check(&self, key: KeyDigest, now: u64) -> KeyState {
        self.lock()
            .get(&key)
            .filter(|e| e.expires_at > now)
            .map_or(KeyState::default(), |e| e.state(now))
    }

    /// Counts one failure of `key` (and of `pair` within it).
    pub(crate) fn fail(
        &self,
        key: KeyDigest,
        thresholds: Thresholds,
        policy: &LockoutPolicy,
        pair: Option<KeyDigest>,
        now: u64,
    ) -> Recorded {
        let mut entries = self.lock();
        let entry = live_entry(&mut entries, self.max_entries, key, now);
        let blocked_before = entry.blocked_until.saturating_sub(now);
        let was_lockout = blocked_before > 0 && entry.failures >= thresholds.lockout_after;
        entry.failures = entry.failures.saturating_add(1);
        let penalty = policy.penalty(thresholds, entry.failures);
        // A new delay never shortens one already in force.
        entry.blocked_until = entry
            .blocked_until
            .max(now.saturating_add(ms(penalty.duration())));
        entry.expires_at = entry.blocked_until.saturating_add(ms(policy.window));
        if let Some(pair) = pair {
            entry.count_pair(pair);
        }
        Recorded {
            failures: entry.failures,
            blocked_before: Duration::from_millis(blocked_before),
            blocked_for: Duration::from_millis(entry.blocked_until - now),
            caused_lockout: matches!(penalty, Penalty::Lockout(_)) && !was_lockout,
        }
    }

    /// A success on `key`: refused while it is blocked, otherwise clears what
    /// `clear` names.
    pub(crate) fn succeed(&self, key: KeyDigest, clear: Clear, now: u64) -> Reset {
        let mut entries = self.lock();
        if let Some(entry) = entries.get(&key)
            && entry.expires_at > now
            && entry.blocked_until > now
        {
            return Reset::Blocked(entry.state(now));
        }
        clear_entry(&mut entries, key, clear, now);
        Reset::Done
    }

    /// Clears what `clear` names whatever the block: the shared store has
    /// accepted a success, and this copy follows it.
    pub(crate) fn force_clear(&self, key: KeyDigest, clear: Clear, now: u64) {
        clear_entry(&mut self.lock(), key, clear, now);
    }

    /// Remembers what the shared store said about `key` (counting one failure
    /// of `pair` when given): counts and blocks only ever go up here, so a
    /// lockout seen on Redis holds in this process if Redis goes away.
    pub(crate) fn raise(
        &self,
        key: KeyDigest,
        state: KeyState,
        pair: Option<KeyDigest>,
        window: Duration,
        now: u64,
    ) {
        if state.failures == 0 && pair.is_none() {
            return;
        }
        let mut entries = self.lock();
        let entry = live_entry(&mut entries, self.max_entries, key, now);
        entry.failures = entry.failures.max(state.failures);
        entry.blocked_until = entry
            .blocked_until
            .max(now.saturating_add(ms(state.blocked_for)));
        entry.expires_at = entry
            .expires_at
            .max(entry.blocked_until.saturating_add(ms(window)));
        if let Some(pair) = pair {
            entry.count_pair(pair);
        }
    }

    /// Keys held now (expired ones included until they are swept).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The live entry of `key`, made (with room made for it) when absent, reset
/// when expired.
fn live_entry(
    entries: &mut HashMap<KeyDigest, Entry>,
    max_entries: usize,
    key: KeyDigest,
    now: u64,
) -> &mut Entry {
    if !entries.contains_key(&key) && entries.len() >= max_entries {
        make_room(entries, max_entries, now);
    }
    let entry = entries.entry(key).or_default();
    if entry.expires_at <= now {
        *entry = Entry::default();
    }
    entry
}

fn clear_entry(entries: &mut HashMap<KeyDigest, Entry>, key: KeyDigest, clear: Clear, now: u64) {
    let Some(entry) = entries.get_mut(&key) else {
        return;
    };
    if entry.expires_at <= now {
        entries.remove(&key);
        return;
    }
    match clear {
        Clear::All => {
            entries.remove(&key);
        }
        Clear::Pair(pair) => {
            entry.clear_pair(pair);
            if entry.failures == 0 && entry.pairs.is_empty() && entry.blocked_until <= now {
                entries.remove(&key);
            }
        }
        Clear::Nothing => {}
    }
}

/// Drops expired entries; when none had expired, drops the 1/64 that expire
/// soonest, so a full map pays this O(n) pass once per n/64 new keys.
fn make_room(entries: &mut HashMap<KeyDigest, Entry>, max_entries: usize, now: u64) {
    entries.retain(|_, e| e.expires_at > now);
    if entries.len() < max_entries {
        return;
    }
    let batch = (max_entries / 64).max(1);
    let mut by_expiry: Vec<(u64, KeyDigest)> =
        entries.iter().map(|(k, e)| (e.expires_at, *k)).collect();
    let cut = batch.min(by_expiry.len()) - 1;
    by_expiry.select_nth_unstable(cut);
    for (_, key) in &by_expiry[..=cut] {
        entries.remove(key);
    }
    metrics::counter!("palisade_lockout_evictions_total").increment(batch as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        free_failures: 2,
        lockout_after: 5,
    };

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            account: T,
            client: T,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_millis(400),
            lockout_duration: Duration::from_secs(10),
            window: Duration::from_secs(60),
        }
    }

    fn key(n: u8) -> KeyDigest {
        KeyDigest([n; 16])
    }

    #[test]
    fn failures_block_with_growing_delays_then_lock_once() {
        let (m, p) = (MemoryLockout::new(10), policy());
        let now = 1_000;
        let got: Vec<(u32, u64, bool)> = (0..7)
            .map(|_| {
                let r = m.fail(key(1), T, &p, None, now);
                (r.failures, ms(r.blocked_for), r.caused_lockout)
            })
            .collect();
        assert_eq!(
            got,
            [
                (1, 0, false),
                (2, 0, false),
                (3, 100, false),
                (4, 200, false),
                (5, 10_000, true),
                // Already locked: renewing it is not a new lockout.
                (6, 10_000, false),
                (7, 10_000, false),
            ]
        );
        assert_eq!(
            m.check(key(1), now + 9_999).blocked_for,
            Duration::from_millis(1)
        );
        assert_eq!(m.check(key(1), now + 10_000).blocked_for, Duration::ZERO);
        // After the lockout, one more failure locks again, and that is a new lockout.
        let again = m.fail(key(1), T, &p, None, now + 10_000);
        assert!(again.caused_lockout);
        assert_eq!(again.blocked_before, Duration::ZERO);
    }

    #[test]
    fn a_failure_recorded_while_blocked_reports_the_block_it_met() {
        let (m, p) = (MemoryLockout::new(10), policy());
        for _ in 0..3 {
            m.fail(key(1), T, &p, None, 0);
        }
        let late = m.fail(key(1), T, &p, None, 40);
        assert_eq!(late.blocked_before, Duration::from_millis(60));
        // Its own delay (200 ms from now) replaces the shorter one in force.
        assert_eq!(late.blocked_for, Duration::from_millis(200));
    }

    #[test]
    fn counts_are_forgotten_a_window_after_the_last_block_ends() {
        let (m, p) = (MemoryLockout::new(10), policy());
        for _ in 0..3 {
            m.fail(key(1), T, &p, None, 0);
        }
        // Blocked until 100, forgotten at 100 + 60 000.
        assert_eq!(m.check(key(1), 60_099).failures, 3);
        assert_eq!(m.check(key(1), 60_100).failures, 0);
        assert_eq!(m.fail(key(1), T, &p, None, 60_100).failures, 1);
    }

    #[test]
    fn a_success_is_refused_while_blocked_and_otherwise_clears_the_key() {
        let (m, p) = (MemoryLockout::new(10), policy());
        for _ in 0..3 {
            m.fail(key(1), T, &p, None, 0);
        }
        assert!(matches!(
            m.succeed(key(1), Clear::All, 50),
            Reset::Blocked(KeyState { failures: 3, .. })
        ));
        assert_eq!(m.succeed(key(1), Clear::All, 100), Reset::Done);
        assert_eq!(m.check(key(1), 100), KeyState::default());
        assert_eq!(m.len(), 0);
    }

    #[test]
    fn a_client_success_takes_back_only_that_accounts_failures() {
        let (m, p) = (MemoryLockout::new(10), policy());
        let client = key(9);
        m.fail(client, T, &p, Some(key(1)), 0);
        m.fail(client, T, &p, Some(key(2)), 0);
        m.fail(client, T, &p, Some(key(2)), 10_000);
        // The third failure blocks for 100 ms; a success waits it out.
        let now = 10_100;
        assert_eq!(m.check(client, now).failures, 3);
        // The owner of account 1 logs in: its one failure is taken back.
        assert_eq!(m.succeed(client, Clear::Pair(key(1)), now), Reset::Done);
        assert_eq!(m.check(client, now).failures, 2);
        // Again: nothing left to take back for account 1.
        assert_eq!(m.succeed(client, Clear::Pair(key(1)), now), Reset::Done);
        assert_eq!(m.check(client, now).failures, 2);
        assert_eq!(m.succeed(client, Clear::Pair(key(2)), now), Reset::Done);
        assert_eq!(m.check(client, now).failures, 0);
    }

    #[test]
    fn per_account_counts_of_a_client_are_capped() {
        let (m, p) = (MemoryLockout::new(10), policy());
        let lenient = Thresholds {
            free_failures: 1_000,
            lockout_after: 2_000,
        };
        let client = key(200);
        for n in 0..=u8::try_from(MAX_PAIRS).unwrap_or(u8::MAX) {
            m.fail(client, lenient, &p, Some(key(n)), 0);
        }
        let last = key(u8::try_from(MAX_PAIRS).unwrap_or(u8::MAX));
        assert_eq!(
            m.check(client, 0).failures,
            u32::try_from(MAX_PAIRS).unwrap_or(0) + 1
        );
        // The account past the cap keeps its failure even after its success;
        // the tracked ones are taken back.
        for n in 0..=u8::try_from(MAX_PAIRS).unwrap_or(u8::MAX) {
            assert_eq!(m.succeed(client, Clear::Pair(key(n)), 0), Reset::Done);
        }
        assert_eq!(m.check(client, 0).failures, 1);
        assert_eq!(m.succeed(client, Clear::Pair(last), 0), Reset::Done);
        assert_eq!(m.check(client, 0).failures, 1);
    }

    #[test]
    fn a_full_map_evicts_expired_keys_then_the_soonest_to_expire_not_blocked_ones() {
        let (m, p) = (MemoryLockout::new(64), policy());
        // Key 0 is locked out (expires last); the others have one failure each.
        for _ in 0..5 {
            m.fail(key(0), T, &p, None, 0);
        }
        for n in 1..64u8 {
            m.fail(key(n), T, &p, None, u64::from(n));
        }
        assert_eq!(m.len(), 64);
        m.fail(key(100), T, &p, None, 100);
        assert_eq!(m.len(), 64);
        // Key 1 expired soonest and went; the locked key stays.
        assert_eq!(m.check(key(1), 100).failures, 0);
        assert_eq!(m.check(key(2), 100).failures, 1);
        assert!(m.check(key(0), 100).blocked_for > Duration::ZERO);
        // Once everything but the lockout has expired, a new key sweeps them.
        m.fail(key(101), T, &p, None, 69_999);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn raising_mirrors_the_shared_store_and_never_lowers() {
        let (m, p) = (MemoryLockout::new(10), policy());
        let state = KeyState {
            failures: 7,
            blocked_for: Duration::from_secs(5),
        };
        m.raise(key(1), state, None, p.window, 0);
        assert_eq!(m.check(key(1), 0), state);
        m.raise(
            key(1),
            KeyState {
                failures: 1,
                blocked_for: Duration::ZERO,
            },
            None,
            p.window,
            1_000,
        );
        assert_eq!(
            m.check(key(1), 1_000),
            KeyState {
                failures: 7,
                blocked_for: Duration::from_secs(4),
            }
        );
        // Nothing to remember: no entry is made.
        m.raise(key(2), KeyState::default(), None, p.window, 0);
        assert_eq!(m.len(), 1);
        m.force_clear(key(1), Clear::All, 1_000);
        assert_eq!(m.len(), 0);
    }
}
