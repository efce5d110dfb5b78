//! Blocks with an expiry: of an address or network (manual, over the API, or
//! automatic, by a detector) and of a subject (an account). Looked up on every
//! request, so a lookup with no blocks at all is one atomic read, and one
//! with blocks is a read lock and a hash probe per prefix length in use.

use crate::GuardError;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What is blocked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockTarget {
    /// An address (`/32`, `/128`) or network.
    Ip(IpNet),
    /// An account or token subject.
    Subject(String),
}

impl BlockTarget {
    /// The target of one address or network, IPv4-mapped IPv6 as IPv4 and
    /// host bits cleared.
    pub fn ip(net: IpNet) -> Self {
        Self::Ip(super::parse::canonical(net.trunc()))
    }

    /// A stable text form (`ip:192.0.2.0/24`, `subject:alice`), the key in Redis.
    pub fn key(&self) -> String {
        match self {
            Self::Ip(net) => format!("ip:{net}"),
            Self::Subject(subject) => format!("subject:{subject}"),
        }
    }
}

/// What a block does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockMode {
    /// Requests are refused.
    Block,
    /// Requests pass, marked as suspicious for what handles them.
    Flag,
}

/// Who made a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum BlockOrigin {
    /// An operator, over the API.
    Manual {
        /// The API key id that made it.
        actor: String,
    },
    /// A detector's response policy.
    Detector {
        /// The detector (`brute_force_ip`, `credential_stuffing`, ...).
        detector: String,
    },
}

/// One block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// What is blocked.
    pub target: BlockTarget,
    /// Refuse or flag.
    pub mode: BlockMode,
    /// Who made it.
    pub origin: BlockOrigin,
    /// Why, in a few words.
    pub reason: String,
    /// When it was made (Unix ms).
    pub created_at_ms: i64,
    /// When it ends (Unix ms).
    pub expires_at_ms: i64,
    /// The incident it belongs to, for automatic blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// How many times this target has offended within the escalation window
    /// (1 for a first offence); the TTL grew with it.
    #[serde(default = "one")]
    pub offense: u32,
}

fn one() -> u32 {
    1
}

impl Block {
    /// Whether the block is in force at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at_ms
    }

    /// Whether an operator made it.
    pub fn is_manual(&self) -> bool {
        matches!(self.origin, BlockOrigin::Manual { .. })
    }
}

#[derive(Debug)]
struct Inner {
    nets: HashMap<IpNet, Block>,
    /// Blocks per prefix length, so a lookup probes only lengths in use.
    lens4: [u32; 33],
    lens6: [u32; 129],
    subjects: HashMap<String, Block>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            nets: HashMap::new(),
            lens4: [0; 33],
            lens6: [0; 129],
            subjects: HashMap::new(),
        }
    }
}

impl Inner {
    fn count_len(&mut self, net: &IpNet, add: bool) {
        let slot = match net {
            IpNet::V4(n) => self.lens4.get_mut(usize::from(n.prefix_len())),
            IpNet::V6(n) => self.lens6.get_mut(usize::from(n.prefix_len())),
        };
        if let Some(slot) = slot {
            *slot = if add {
                slot.saturating_add(1)
            } else {
                slot.saturating_sub(1)
            };
        }
    }

    fn insert(&mut self, block: Block) -> Option<Block> {
        match &block.target {
            BlockTarget::Ip(net) => {
                let net = *net;
                let old = self.nets.insert(net, block);
                if old.is_none() {
                    self.count_len(&net, true);
                }
                old
            }
            BlockTarget::Subject(s) => self.subjects.insert(s.clone(), block),
        }
    }

    fn remove(&mut self, target: &BlockTarget) -> Option<Block> {
        match target {
            BlockTarget::Ip(net) => {
                let old = self.nets.remove(net);
                if old.is_some() {
                    self.count_len(net, false);
                }
                old
            }
            BlockTarget::Subject(s) => self.subjects.remove(s),
        }
    }

    fn len(&self) -> usize {
        self.nets.len() + self.subjects.len()
    }
}

/// Blocks in force on this instance, bounded in number. Expired blocks stop
/// applying at once and are dropped by [`BlockTable::purge_expired`].
#[derive(Debug)]
pub struct BlockTable {
    inner: RwLock<Inner>,
    len: AtomicUsize,
    max: usize,
}

impl BlockTable {
    /// A table of at most `max` blocks.
    pub fn new(max: usize) -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            len: AtomicUsize::new(0),
            max: max.max(1),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A poisoned lock means a writer panicked between two plain inserts;
        // the maps are still consistent.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The most specific block in force for `ip`, if any.
    #[inline]
    pub fn lookup_ip(&self, ip: IpAddr, now_ms: i64) -> Option<Block> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let inner = self.read();
        let ip = ip.to_canonical();
        let found = |net: Option<IpNet>| {
            net.and_then(|n| inner.nets.get(&n))
                .filter(|b| b.is_active(now_ms))
        };
        match ip {
            IpAddr::V4(v4) => (0..=32u8)
                .rev()
                .filter(|len| inner.lens4.get(usize::from(*len)).is_some_and(|c| *c > 0))
                .find_map(|len| {
                    found(
                        ipnet::Ipv4Net::new(v4, len)
                            .ok()
                            .map(|n| IpNet::V4(n.trunc())),
                    )
                })
                .cloned(),
            IpAddr::V6(v6) => (0..=128u8)
                .rev()
                .filter(|len| inner.lens6.get(usize::from(*len)).is_some_and(|c| *c > 0))
                .find_map(|len| {
                    found(
                        ipnet::Ipv6Net::new(v6, len)
                            .ok()
                            .map(|n| IpNet::V6(n.trunc())),
                    )
                })
                .cloned(),
        }
    }

    /// The block in force for `subject`, if any.
    pub fn lookup_subject(&self, subject: &str, now_ms: i64) -> Option<Block> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.read()
            .subjects
            .get(subject)
            .filter(|b| b.is_active(now_ms))
            .cloned()
    }

    /// The block of exactly `target`, if in force.
    pub fn get(&self, target: &BlockTarget, now_ms: i64) -> Option<Block> {
        let inner = self.read();
        match target {
            BlockTarget::Ip(net) => inner.nets.get(net),
            BlockTarget::Subject(s) => inner.subjects.get(s),
        }
        .filter(|b| b.is_active(now_ms))
        .cloned()
    }

    /// Adds or replaces the block of `block.target`, returning the one it
    /// replaced. Fails when the table is full of blocks still in force.
    pub fn insert(&self, block: Block, now_ms: i64) -> Result<Option<Block>, GuardError> {
        let mut inner = self.write();
        let replacing = match &block.target {
            BlockTarget::Ip(net) => inner.nets.contains_key(net),
            BlockTarget::Subject(s) => inner.subjects.contains_key(s),
        };
        if !replacing && inner.len() >= self.max {
            purge(&mut inner, now_ms);
            if inner.len() >= self.max {
                return Err(GuardError::invalid(
                    "blocks",
                    format!(
                        "{} blocks are in force, the most this instance holds",
                        self.max
                    ),
                ));
            }
        }
        let old = inner.insert(block);
        self.len.store(inner.len(), Ordering::Release);
        Ok(old)
    }

    /// Removes the block of `target`, returning it.
    pub fn remove(&self, target: &BlockTarget) -> Option<Block> {
        let mut inner = self.write();
        let old = inner.remove(target);
        self.len.store(inner.len(), Ordering::Release);
        old
    }

    /// Every block in force, most recent first.
    pub fn list(&self, now_ms: i64) -> Vec<Block> {
        let inner = self.read();
        let mut blocks: Vec<Block> = inner
            .nets
            .values()
            .chain(inner.subjects.values())
            .filter(|b| b.is_active(now_ms))
            .cloned()
            .collect();
        blocks.sort_by(|a, b| {
            b.created_at_ms
                .cmp(&a.created_at_ms)
                .then_with(|| a.target.cmp(&b.target))
        });
        blocks
    }

    /// Drops expired blocks; returns how many.
    pub fn purge_expired(&self, now_ms: i64) -> usize {
        let mut inner = self.write();
        let removed = purge(&mut inner, now_ms);
        self.len.store(inner.len(), Ordering::Release);
        removed
    }

    /// Replaces every block with `blocks` (a copy of the shared table).
    pub fn replace_all(&self, blocks: Vec<Block>) {
        let mut fresh = Inner::default();
        for block in blocks.into_iter().take(self.max) {
            fresh.insert(block);
        }
        let mut inner = self.write();
        *inner = fresh;
        self.len.store(inner.len(), Ordering::Release);
    }

    /// Blocks held, including expired ones not yet purged.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether no block is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn purge(inner: &mut Inner, now_ms: i64) -> usize {
    let expired: Vec<BlockTarget> = inner
        .nets
        .values()
        .chain(inner.subjects.values())
        .filter(|b| !b.is_active(now_ms))
        .map(|b| b.target.clone())
        .collect();
    for target in &expired {
        inner.remove(target);
    }
    expired.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(target: BlockTarget, expires_at_ms: i64) -> Block {
        Block {
            target,
            mode: BlockMode::Block,
            origin: BlockOrigin::Manual {
                actor: "key-1".into(),
            },
            reason: "test".into(),
            created_at_ms: 0,
            expires_at_ms,
            incident: None,
            offense: 1,
        }
    }

    fn ip_target(text: &str) -> BlockTarget {
        BlockTarget::ip(text.parse().unwrap())
    }

    #[test]
    fn blocks_addresses_networks_and_subjects_until_they_expire() {
        let table = BlockTable::new(10);
        assert!(table.lookup_ip("192.0.2.1".parse().unwrap(), 0).is_none());
        table
            .insert(block(ip_target("192.0.2.0/24"), 100), 0)
            .unwrap();
        table
            .insert(block(ip_target("192.0.2.7/32"), 50), 0)
            .unwrap();
        table
            .insert(block(ip_target("2001:db8::/48"), 100), 0)
            .unwrap();
        table
            .insert(block(BlockTarget::Subject("alice".into()), 100), 0)
            .unwrap();
        let hit = table.lookup_ip("192.0.2.7".parse().unwrap(), 10).unwrap();
        assert_eq!(
            hit.target,
            ip_target("192.0.2.7/32"),
            "the most specific wins"
        );
        let hit = table.lookup_ip("192.0.2.7".parse().unwrap(), 60).unwrap();
        assert_eq!(hit.target, ip_target("192.0.2.0/24"), "the /32 expired");
        assert!(
            table
                .lookup_ip("::ffff:192.0.2.9".parse().unwrap(), 10)
                .is_some()
        );
        assert!(
            table
                .lookup_ip("2001:db8:0:1::1".parse().unwrap(), 10)
                .is_some()
        );
        assert!(
            table
                .lookup_ip("2001:db8:1::1".parse().unwrap(), 10)
                .is_none()
        );
        assert!(table.lookup_subject("alice", 99).is_some());
        assert!(table.lookup_subject("alice", 100).is_none());
        assert_eq!(table.list(60).len(), 3);
        assert_eq!(table.purge_expired(60), 1);
        assert_eq!(table.len(), 3);
        assert!(table.remove(&ip_target("192.0.2.0/24")).is_some());
        assert!(table.lookup_ip("192.0.2.7".parse().unwrap(), 60).is_none());
    }

    #[test]
    fn targets_are_canonical_networks() {
        assert_eq!(ip_target("192.0.2.9/24"), ip_target("192.0.2.0/24"));
        assert_eq!(ip_target("::ffff:192.0.2.9/128"), ip_target("192.0.2.9/32"));
        assert_eq!(ip_target("192.0.2.0/24").key(), "ip:192.0.2.0/24");
    }

    #[test]
    fn a_full_table_refuses_new_blocks_after_dropping_expired_ones() {
        let table = BlockTable::new(2);
        table
            .insert(block(ip_target("192.0.2.1/32"), 10), 0)
            .unwrap();
        table
            .insert(block(ip_target("192.0.2.2/32"), 100), 0)
            .unwrap();
        assert!(
            table
                .insert(block(ip_target("192.0.2.3/32"), 100), 20)
                .is_ok()
        );
        assert!(
            table
                .insert(block(ip_target("192.0.2.4/32"), 100), 20)
                .is_err()
        );
        // Replacing an existing block is always possible.
        assert!(
            table
                .insert(block(ip_target("192.0.2.3/32"), 200), 20)
                .is_ok()
        );
    }
}
