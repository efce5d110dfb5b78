//! Tightened keys: for a while, an offending client address (or network) or
//! subject pays `factor` units per request under every rule keyed by it, so
//! its effective quota is `1 / factor` of everyone else's. Threat detection
//! puts entries here (its `tighten_rate_limit` response) and shares them
//! across instances the way it shares blocks; [`super::RateLimiter::check`]
//! reads them.
//!
//! A cost multiplier rather than a second, stricter rule keeps one count per
//! key: the offender's earlier requests still count against it, the shared
//! Redis counters need no second namespace, and when the entry expires the
//! key is back on its normal quota without any state to reset.
//!
//! Which rules an entry concerns follows the rule's key: an address or
//! network entry concerns `ip` rules; a subject entry concerns `subject` and
//! `api_key` rules (an API key's id is its subject, as for blocks). Like
//! those rules, a subject entry does not tell tenants apart.

use crate::GuardError;
use crate::reputation::BlockTarget;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The largest factor accepted: beyond it the key is as good as blocked,
/// which is what blocks are for.
pub const MAX_TIGHTEN_FACTOR: u32 = 1_000;

/// One tightened key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tightening {
    /// The address, network or subject.
    pub target: BlockTarget,
    /// Each request costs this many units (2 to 1000).
    pub factor: u32,
    /// The detector that asked for it.
    pub detector: String,
    /// Why, in a few words.
    pub reason: String,
    /// When it was made (Unix ms).
    pub created_at_ms: i64,
    /// When it ends (Unix ms).
    pub expires_at_ms: i64,
    /// The incident it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// Offences of the target within the escalation window (the TTL grew with it).
    pub offense: u32,
}

impl Tightening {
    /// Whether it is in force at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at_ms
    }
}

#[derive(Debug, Default)]
struct Table {
    by_key: HashMap<String, Tightening>,
    /// Prefix lengths of the address entries, per family (v4, v6), so an
    /// address is looked up with one probe per length in use.
    v4_prefixes: BTreeSet<u8>,
    v6_prefixes: BTreeSet<u8>,
}

impl Table {
    fn reindex(&mut self) {
        self.v4_prefixes.clear();
        self.v6_prefixes.clear();
        for t in self.by_key.values() {
            match &t.target {
                BlockTarget::Ip(IpNet::V4(n)) => {
                    self.v4_prefixes.insert(n.prefix_len());
                }
                BlockTarget::Ip(IpNet::V6(n)) => {
                    self.v6_prefixes.insert(n.prefix_len());
                }
                BlockTarget::Subject(_) => {}
            }
        }
    }
}

/// The tightened keys of one instance. Bounded: beyond `max` entries a new
/// one is refused (the detector reports the action as skipped).
#[derive(Debug)]
pub struct Tightenings {
    table: RwLock<Table>,
    /// Entries held, read without the lock: the common case is none.
    len: AtomicUsize,
    max: usize,
}

impl Default for Tightenings {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl Tightenings {
    /// An empty set holding at most `max` entries.
    pub fn new(max: usize) -> Self {
        Self {
            table: RwLock::new(Table::default()),
            len: AtomicUsize::new(0),
            max: max.max(1),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds or replaces the entry of its target.
    pub fn insert(&self, tightening: Tightening, now_ms: i64) -> Result<(), GuardError> {
        if !(2..=MAX_TIGHTEN_FACTOR).contains(&tightening.factor) {
            return Err(GuardError::invalid(
                "tighten_factor",
                format!("must be between 2 and {MAX_TIGHTEN_FACTOR}"),
            ));
        }
        let mut table = self.write();
        let key = tightening.target.key();
        if !table.by_key.contains_key(&key) && table.by_key.len() >= self.max {
            table.by_key.retain(|_, t| t.is_active(now_ms));
            if table.by_key.len() >= self.max {
                return Err(GuardError::Full(self.max));
            }
        }
        table.by_key.insert(key, tightening);
        table.reindex();
        self.len.store(table.by_key.len(), Ordering::Release);
        Ok(())
    }

    /// Replaces every entry (with those read from the shared store).
    pub fn replace_all(&self, entries: Vec<Tightening>) {
        let mut table = self.write();
        table.by_key = entries.into_iter().map(|t| (t.target.key(), t)).collect();
        table.reindex();
        self.len.store(table.by_key.len(), Ordering::Release);
    }

    /// Drops expired entries; how many.
    pub fn purge_expired(&self, now_ms: i64) -> usize {
        let mut table = self.write();
        let before = table.by_key.len();
        table.by_key.retain(|_, t| t.is_active(now_ms));
        table.reindex();
        self.len.store(table.by_key.len(), Ordering::Release);
        before - table.by_key.len()
    }

    /// The entry in force for exactly `target`.
    pub fn get(&self, target: &BlockTarget, now_ms: i64) -> Option<Tightening> {
        if self.is_empty() {
            return None;
        }
        self.read()
            .by_key
            .get(&target.key())
            .filter(|t| t.is_active(now_ms))
            .cloned()
    }

    /// The factor in force for address `ip`: the largest of the entries of
    /// networks holding it; 1 when none.
    pub fn factor_for_ip(&self, ip: IpAddr, now_ms: i64) -> u32 {
        if self.is_empty() {
            return 1;
        }
        let ip = ip.to_canonical();
        let table = self.read();
        let prefixes = match ip {
            IpAddr::V4(_) => &table.v4_prefixes,
            IpAddr::V6(_) => &table.v6_prefixes,
        };
        prefixes
            .iter()
            .filter_map(|&len| IpNet::new(ip, len).ok())
            .filter_map(|net| table.by_key.get(&BlockTarget::Ip(net.trunc()).key()))
            .filter(|t| t.is_active(now_ms))
            .map(|t| t.factor)
            .max()
            .unwrap_or(1)
    }

    /// The factor in force for `subject`; 1 when none.
    pub fn factor_for_subject(&self, subject: &str, now_ms: i64) -> u32 {
        if self.is_empty() {
            return 1;
        }
        self.read()
            .by_key
            .get(&BlockTarget::Subject(subject.to_owned()).key())
            .filter(|t| t.is_active(now_ms))
            .map_or(1, |t| t.factor)
    }

    /// The entries in force, newest first.
    pub fn list(&self, now_ms: i64) -> Vec<Tightening> {
        let mut all: Vec<Tightening> = self
            .read()
            .by_key
            .values()
            .filter(|t| t.is_active(now_ms))
            .cloned()
            .collect();
        all.sort_by_key(|t| std::cmp::Reverse(t.created_at_ms));
        all
    }

    /// Entries held (expired ones included until purged).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(target: BlockTarget, factor: u32, expires_at_ms: i64) -> Tightening {
        Tightening {
            target,
            factor,
            detector: "brute_force_ip".into(),
            reason: "test".into(),
            created_at_ms: 0,
            expires_at_ms,
            incident: None,
            offense: 1,
        }
    }

    #[test]
    fn addresses_match_their_networks_and_the_largest_factor_wins() {
        let set = Tightenings::new(10);
        assert_eq!(set.factor_for_ip("192.0.2.1".parse().unwrap(), 0), 1);
        set.insert(
            entry(BlockTarget::ip("192.0.2.0/24".parse().unwrap()), 4, 1_000),
            0,
        )
        .unwrap();
        set.insert(
            entry(BlockTarget::ip("192.0.2.7/32".parse().unwrap()), 10, 1_000),
            0,
        )
        .unwrap();
        assert_eq!(set.factor_for_ip("192.0.2.7".parse().unwrap(), 10), 10);
        assert_eq!(set.factor_for_ip("192.0.2.8".parse().unwrap(), 10), 4);
        assert_eq!(
            set.factor_for_ip("::ffff:192.0.2.8".parse().unwrap(), 10),
            4,
            "IPv4-mapped addresses are the IPv4 address"
        );
        assert_eq!(set.factor_for_ip("192.0.3.1".parse().unwrap(), 10), 1);
        assert_eq!(set.factor_for_ip("2001:db8::1".parse().unwrap(), 10), 1);
        // Expired entries no longer apply, and purging drops them.
        assert_eq!(set.factor_for_ip("192.0.2.7".parse().unwrap(), 1_000), 1);
        assert_eq!(set.purge_expired(1_000), 2);
        assert!(set.is_empty());
    }

    #[test]
    fn subjects_bad_factors_and_the_bound() {
        let set = Tightenings::new(1);
        set.insert(entry(BlockTarget::Subject("alice".into()), 5, 100), 0)
            .unwrap();
        assert_eq!(set.factor_for_subject("alice", 50), 5);
        assert_eq!(set.factor_for_subject("bob", 50), 1);
        assert!(matches!(
            set.insert(entry(BlockTarget::Subject("bob".into()), 5, 100), 0),
            Err(GuardError::Full(_))
        ));
        // A full set makes room by dropping expired entries.
        set.insert(entry(BlockTarget::Subject("bob".into()), 5, 300), 200)
            .unwrap();
        assert_eq!(set.factor_for_subject("bob", 250), 5);
        assert!(matches!(
            set.insert(entry(BlockTarget::Subject("carol".into()), 1, 100), 0),
            Err(GuardError::Invalid { .. })
        ));
        set.replace_all(vec![]);
        assert_eq!(set.factor_for_subject("bob", 250), 1);
    }
}
