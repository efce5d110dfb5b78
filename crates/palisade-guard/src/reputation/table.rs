//! The lookup structure of the reputation lists: the address space cut into
//! disjoint ranges sorted by their first address, each range carrying the value
//! of the most specific listed network that covers it (or none).
//!
//! With a million networks the structure is tens of MiB, so what a lookup
//! costs is its dependent reads that miss the caches (110-150 ns each on the
//! benchmark VM) and the TLB (as much again with 4 KiB pages); a lookup makes
//! one such read, after an index read that mostly hits the L3 cache:
//!
//! - Index and ranges live in one buffer of `u32` words on 2 MiB pages where
//!   the kernel gives them (`words.rs`): 42 MiB for a million IPv6 networks
//!   is 21 TLB entries, so the reads rarely also miss the TLB.
//! - A direct index (at most 2 MiB, one huge page) maps the span from the
//!   first to the last listed address linearly onto about one bucket per four
//!   ranges (`(addr - base) >> shift`), so it adapts to where the networks
//!   are: IPv6 lists all sit in 2000::/3, where a fixed top-16-bit index used
//!   8,192 of its buckets. Small buckets keep the read that follows to two or
//!   three cache lines; on 2 MiB pages that beat a 1 MiB index with eight
//!   ranges a bucket (IPv6 throughput 175 against 220 ns, latency 255
//!   against 260 ns, in interleaved runs on loaded cores; two ranges a bucket
//!   with a 4 MiB index: 150 and 270 ns).
//! - Each range stores its first address and its value side by side, so the
//!   read that finds the range brings the answer; IPv6 addresses are stored as
//!   two `u64` halves compared high half first, in five `u32` words (20 bytes
//!   a range, where a `u128` would be 16-byte aligned and padded to 32); an
//!   IPv4 range is two words.
//! - The bucket is scanned by counting the ranges that start at or before the
//!   address, with no branch on the comparisons: its cache lines are loaded
//!   at once, where each step of a binary search waits for the last.
//!   Clustered data makes some buckets larger; beyond 32 ranges they are
//!   binary-searched.
//!
//! `benches/reputation.rs` measures it against a tree-bitmap trie
//! (`ip_network_table`) and a plain sorted `Vec`.
//!
//! Nested networks resolve to the longest prefix: `10.0.0.0/8` and
//! `10.1.0.0/16` make three ranges, and `10.1.2.3` finds the /16. A range lies
//! inside the network it reports, so a caller that keeps the prefix length in
//! the value gets the network back by masking the range's first address.

mod words;

use words::Words;

/// "No network covers this range."
pub(crate) const NONE: u32 = u32::MAX;

/// Ranges per index bucket the index aims at.
const RANGES_PER_BUCKET: usize = 4;

/// Largest index: 2^19 buckets (2 MiB), one huge page, small enough to stay
/// in the L3 cache.
const MAX_BUCKET_BITS: u32 = 19;

/// Buckets up to this many ranges are scanned, larger ones binary-searched.
const LINEAR_SEARCH_MAX: usize = 32;

/// An address as an unsigned integer: `u32` for IPv4, `u128` for IPv6.
pub(crate) trait Address: Copy + Ord + Default + std::fmt::Debug {
    /// How a range's first address is stored: `u32`, or the `(high, low)`
    /// halves of an IPv6 address, which order like the address and need no
    /// 16-byte alignment.
    type Key: Copy + Ord + std::fmt::Debug;
    /// A range as stored: its first address and its value, in `u32` words
    /// (no padding, 4-byte aligned, so a buffer of words views as records).
    type Record: bytemuck::Pod;
    fn record(start: Self, value: u32) -> Self::Record;
    fn record_start(record: &Self::Record) -> Self::Key;
    fn record_value(record: &Self::Record) -> u32;
    fn key(self) -> Self::Key;
    fn from_key(key: Self::Key) -> Self;
    /// `start <= key`, computed without branches.
    fn key_at_or_before(start: Self::Key, key: Self::Key) -> bool;
    /// `self - base`, 0 below `base`.
    fn offset_from(self, base: Self) -> Self;
    /// Bits needed to write `self` (0 for 0).
    fn bit_length(self) -> u32;
    /// `self >> shift`, saturating at `usize::MAX`.
    fn shifted(self, shift: u32) -> usize;
    /// The next address, `None` after the last one.
    fn successor(self) -> Option<Self>;
    /// The address before, `None` before the first one.
    #[cfg(test)]
    fn predecessor(self) -> Option<Self>;
    /// The last address of the network `self/len` (`self` already masked).
    fn last_of(self, len: u8) -> Self;
    /// `self` with the bits after the first `len` cleared.
    fn masked(self, len: u8) -> Self;
}

impl Address for u32 {
    type Key = u32;
    type Record = [u32; 2];
    fn record(start: u32, value: u32) -> [u32; 2] {
        [start, value]
    }
    #[inline]
    fn record_start(record: &[u32; 2]) -> u32 {
        record[0]
    }
    #[inline]
    fn record_value(record: &[u32; 2]) -> u32 {
        record[1]
    }
    fn key(self) -> u32 {
        self
    }
    fn from_key(key: u32) -> Self {
        key
    }
    #[inline]
    fn key_at_or_before(start: u32, key: u32) -> bool {
        start <= key
    }
    #[inline]
    fn offset_from(self, base: Self) -> Self {
        self.saturating_sub(base)
    }
    fn bit_length(self) -> u32 {
        u32::BITS - self.leading_zeros()
    }
    #[inline]
    fn shifted(self, shift: u32) -> usize {
        usize::try_from(self.checked_shr(shift).unwrap_or(0)).unwrap_or(usize::MAX)
    }
    fn successor(self) -> Option<Self> {
        self.checked_add(1)
    }
    #[cfg(test)]
    fn predecessor(self) -> Option<Self> {
        self.checked_sub(1)
    }
    fn last_of(self, len: u8) -> Self {
        self | u32::MAX.checked_shr(u32::from(len)).unwrap_or(0)
    }
    fn masked(self, len: u8) -> Self {
        self & !u32::MAX.checked_shr(u32::from(len)).unwrap_or(0)
    }
}

impl Address for u128 {
    type Key = (u64, u64);
    /// The high half, the low half (each low word first, so on a
    /// little-endian CPU a half is one 8-byte load), then the value: 20
    /// bytes, where `(u64, u64, u32)` pads to 24.
    type Record = [u32; 5];
    fn record(start: u128, value: u32) -> [u32; 5] {
        let (high, low) = start.key();
        [
            high as u32,
            (high >> 32) as u32,
            low as u32,
            (low >> 32) as u32,
            value,
        ]
    }
    #[inline]
    fn record_start(record: &[u32; 5]) -> (u64, u64) {
        let half = |low: u32, high: u32| u64::from(low) | (u64::from(high) << 32);
        (half(record[0], record[1]), half(record[2], record[3]))
    }
    #[inline]
    fn record_value(record: &[u32; 5]) -> u32 {
        record[4]
    }
    fn key(self) -> (u64, u64) {
        ((self >> 64) as u64, self as u64)
    }
    fn from_key((high, low): (u64, u64)) -> Self {
        (u128::from(high) << 64) | u128::from(low)
    }
    #[inline]
    fn key_at_or_before(start: (u64, u64), key: (u64, u64)) -> bool {
        // The high halves decide unless equal (most networks are /64 or
        // shorter); `&` and `|` rather than `&&` and `||` keep it branchless.
        (start.0 < key.0) | ((start.0 == key.0) & (start.1 <= key.1))
    }
    #[inline]
    fn offset_from(self, base: Self) -> Self {
        self.saturating_sub(base)
    }
    fn bit_length(self) -> u32 {
        u128::BITS - self.leading_zeros()
    }
    #[inline]
    fn shifted(self, shift: u32) -> usize {
        usize::try_from(self.checked_shr(shift).unwrap_or(0)).unwrap_or(usize::MAX)
    }
    fn successor(self) -> Option<Self> {
        self.checked_add(1)
    }
    #[cfg(test)]
    fn predecessor(self) -> Option<Self> {
        self.checked_sub(1)
    }
    fn last_of(self, len: u8) -> Self {
        self | u128::MAX.checked_shr(u32::from(len)).unwrap_or(0)
    }
    fn masked(self, len: u8) -> Self {
        self & !u128::MAX.checked_shr(u32::from(len)).unwrap_or(0)
    }
}

/// Disjoint ranges covering the whole address space, each with a value or
/// [`NONE`].
#[derive(Debug, Clone)]
pub(crate) struct RangeTable<A: Address> {
    /// The index's `index_len` words, then the ranges as [`Address::Record`]s
    /// ascending by start (the first starts at 0). `index[b]`: the first
    /// range in bucket `b` or a later one; one longer than the number of
    /// buckets.
    words: Words,
    index_len: usize,
    /// Where bucket 0 ends its span: the second range's start (the first
    /// listed address), so the index covers only the listed span.
    base: A,
    /// A bucket spans `2^shift` addresses.
    shift: u32,
    /// The last bucket; addresses past the listed span land in it.
    last_bucket: usize,
}

impl<A: Address> RangeTable<A> {
    /// Builds the table from `(network, prefix length, value)` triples; the
    /// networks must be masked. When the same network is given twice the
    /// first one's value wins. Values must be below [`NONE`]. Distinct
    /// networks keep distinct ranges even when their values are equal, so the
    /// range found always lies in the network whose value it carries.
    pub(crate) fn build(networks: Vec<(A, u8, u32)>) -> Self {
        let values: Vec<u32> = networks.iter().map(|n| n.2).collect();
        let identified = networks
            .into_iter()
            .enumerate()
            .map(|(id, (start, len, _))| (start, len, u32::try_from(id).unwrap_or(NONE - 1)))
            .collect();
        let ranges = ranges_of(identified)
            .into_iter()
            .map(|(start, id)| (start, values.get(id as usize).copied().unwrap_or(NONE)))
            .collect();
        Self::indexed(ranges)
    }

    /// Adds the direct index to `ranges` (first address, value).
    fn indexed(ranges: Vec<(A, u32)>) -> Self {
        let start = |i: usize| ranges.get(i).map(|r| r.0);
        let base = start(1).unwrap_or_default();
        let span = start(ranges.len().saturating_sub(1))
            .unwrap_or_default()
            .offset_from(base);
        let wanted = (ranges.len() / RANGES_PER_BUCKET)
            .max(1)
            .next_power_of_two();
        let bucket_bits = wanted.trailing_zeros().min(MAX_BUCKET_BITS);
        // The smallest shift that fits the listed span in 2^bucket_bits buckets.
        let shift = span.bit_length().saturating_sub(bucket_bits);
        let last_bucket = span.shifted(shift);
        let bucket_of = |addr: A| addr.offset_from(base).shifted(shift);
        let mut index = Vec::with_capacity(last_bucket + 2);
        let mut range = 0usize;
        for bucket in 0..=last_bucket + 1 {
            while start(range).is_some_and(|s| bucket_of(s) < bucket) {
                range += 1;
            }
            index.push(u32::try_from(range).unwrap_or(u32::MAX));
        }
        let index_len = index.len();
        let record_words = std::mem::size_of::<A::Record>() / std::mem::size_of::<u32>();
        let mut words = index;
        words.reserve_exact(ranges.len() * record_words);
        for (start, value) in ranges {
            words.extend_from_slice(bytemuck::cast_slice(&[A::record(start, value)]));
        }
        Self {
            words: Words::new(words),
            index_len,
            base,
            shift,
            last_bucket,
        }
    }

    /// The value of the most specific network containing `addr`, if any.
    #[inline]
    pub(crate) fn get(&self, addr: A) -> Option<u32> {
        self.find(addr).map(|(_, value)| value)
    }

    /// The range holding `addr`: its first address and the value of the
    /// most specific network containing `addr`; `None` when none does.
    #[inline]
    pub(crate) fn find(&self, addr: A) -> Option<(A, u32)> {
        let bucket = addr
            .offset_from(self.base)
            .shifted(self.shift)
            .min(self.last_bucket);
        // From the last range of the buckets before (it holds `addr` when no
        // range of this bucket starts at or before it; `ranges[0]` starts at
        // 0) to the end of this bucket: the answer is the last range of those
        // starting at or before `addr`.
        let (index, ranges) = self.parts();
        let first = index.get(bucket).copied().unwrap_or(0) as usize;
        let end = index.get(bucket + 1).copied().unwrap_or(0) as usize;
        let from = first.saturating_sub(1);
        let candidates = ranges.get(from..end).unwrap_or(&[]);
        let key = addr.key();
        let at_or_before = if candidates.len() <= LINEAR_SEARCH_MAX {
            // Counting with no branch on the comparisons lets the CPU issue
            // every load of the bucket at once: one memory latency, where a
            // binary search waits for each step.
            candidates
                .iter()
                .map(|r| usize::from(A::key_at_or_before(A::record_start(r), key)))
                .sum()
        } else {
            candidates.partition_point(|r| A::key_at_or_before(A::record_start(r), key))
        };
        match ranges.get((from + at_or_before).wrapping_sub(1)) {
            Some(range) if A::record_value(range) != NONE => {
                Some((A::from_key(A::record_start(range)), A::record_value(range)))
            }
            _ => None,
        }
    }

    /// The index and the ranges.
    #[inline]
    fn parts(&self) -> (&[u32], &[A::Record]) {
        let words = self.words.as_slice();
        let (index, ranges) = words.split_at(self.index_len.min(words.len()));
        // `indexed` wrote whole records after the index, so the view holds.
        (index, bytemuck::try_cast_slice(ranges).unwrap_or_default())
    }

    /// Ranges in the table (including unlisted gaps).
    #[cfg(test)]
    pub(crate) fn ranges(&self) -> usize {
        self.parts().1.len()
    }

    /// Bytes held, on the heap or mapped.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.words.memory_bytes()
    }
}

/// The disjoint ranges `(first address, value)` of `networks`, ascending and
/// covering the whole space, the first starting at 0; values equal on both
/// sides of a bound are merged.
fn ranges_of<A: Address>(mut networks: Vec<(A, u8, u32)>) -> Vec<(A, u32)> {
    // Broader networks first among those starting at one address, so a
    // network always comes after every network containing it.
    networks.sort_by_key(|n| (n.0, n.1));
    let mut bounds: Vec<(A, u32)> = vec![(A::default(), NONE)];
    // The networks containing the current position: (last address, value).
    let mut open: Vec<(A, u32)> = Vec::new();
    let mut previous: Option<(A, u8)> = None;
    for (start, len, value) in networks {
        if previous == Some((start, len)) {
            continue;
        }
        previous = Some((start, len));
        close_before(&mut bounds, &mut open, Some(start));
        push_bound(&mut bounds, start, value);
        open.push((start.last_of(len), value));
    }
    close_before(&mut bounds, &mut open, None);
    bounds
}

/// Closes every open network that ends before `next` (all of them when
/// `next` is `None`), starting a range of the enclosing network after each.
fn close_before<A: Address>(bounds: &mut Vec<(A, u32)>, open: &mut Vec<(A, u32)>, next: Option<A>) {
    while let Some(&(last, _)) = open.last() {
        if next.is_some_and(|n| last >= n) {
            break;
        }
        open.pop();
        if let Some(after) = last.successor() {
            let value = open.last().map_or(NONE, |o| o.1);
            push_bound(bounds, after, value);
        }
    }
}

/// Starts a range at `start`, replacing one that starts there already and
/// merging it into the previous range when their values are equal.
fn push_bound<A: Address>(bounds: &mut Vec<(A, u32)>, start: A, value: u32) {
    if let Some(last) = bounds.last_mut()
        && last.0 == start
    {
        last.1 = value;
        let len = bounds.len();
        if len >= 2 && bounds.get(len - 2).map(|b| b.1) == Some(value) {
            bounds.pop();
        }
        return;
    }
    if bounds.last().map(|b| b.1) != Some(value) {
        bounds.push((start, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(text: &str) -> u32 {
        u32::from(text.parse::<Ipv4Addr>().unwrap())
    }

    fn net4(text: &str, value: u32) -> (u32, u8, u32) {
        let (addr, len) = text.split_once('/').unwrap();
        let len: u8 = len.parse().unwrap();
        (v4(addr).masked(len), len, value)
    }

    /// The reference answer: the longest matching prefix by brute force.
    fn naive<A: Address>(networks: &[(A, u8, u32)], addr: A) -> Option<u32> {
        networks
            .iter()
            .filter(|(n, len, _)| addr.masked(*len) == *n)
            .max_by_key(|(_, len, _)| *len)
            .map(|(_, _, v)| *v)
    }

    #[test]
    fn nested_networks_resolve_to_the_longest_prefix() {
        let table = RangeTable::build(vec![
            net4("10.0.0.0/8", 1),
            net4("10.1.0.0/16", 2),
            net4("10.1.2.3/32", 3),
        ]);
        assert_eq!(table.get(v4("10.0.0.0")), Some(1));
        assert_eq!(table.get(v4("10.1.0.0")), Some(2));
        assert_eq!(table.get(v4("10.1.2.2")), Some(2));
        assert_eq!(table.get(v4("10.1.2.3")), Some(3));
        assert_eq!(table.get(v4("10.1.2.4")), Some(2));
        assert_eq!(table.get(v4("10.1.255.255")), Some(2));
        assert_eq!(table.get(v4("10.2.0.0")), Some(1));
        assert_eq!(table.get(v4("10.255.255.255")), Some(1));
        assert_eq!(table.get(v4("11.0.0.0")), None);
        assert_eq!(table.get(v4("9.255.255.255")), None);
    }

    #[test]
    fn edges_of_the_address_space() {
        let table = RangeTable::build(vec![net4("0.0.0.0/32", 1), net4("255.255.255.255/32", 2)]);
        assert_eq!(table.get(0), Some(1));
        assert_eq!(table.get(1), None);
        assert_eq!(table.get(u32::MAX - 1), None);
        assert_eq!(table.get(u32::MAX), Some(2));
        let everything = RangeTable::build(vec![net4("0.0.0.0/0", 7)]);
        assert_eq!(everything.get(0), Some(7));
        assert_eq!(everything.get(u32::MAX), Some(7));
        assert_eq!(everything.ranges(), 1);
        let empty = RangeTable::<u32>::build(Vec::new());
        assert_eq!(empty.get(12345), None);
        let all6 = RangeTable::build(vec![(0u128, 0, 3), (u128::MAX, 128, 4)]);
        assert_eq!(all6.get(0), Some(3));
        assert_eq!(all6.get(u128::MAX), Some(4));
        assert_eq!(all6.get(u128::MAX - 1), Some(3));
    }

    #[test]
    fn the_first_of_duplicate_networks_wins() {
        let table = RangeTable::build(vec![net4("192.0.2.0/24", 5), net4("192.0.2.0/24", 6)]);
        assert_eq!(table.get(v4("192.0.2.9")), Some(5));
    }

    #[test]
    fn adjacent_networks_and_children_at_a_parent_edge() {
        let table = RangeTable::build(vec![
            net4("10.0.0.0/24", 1),
            net4("10.0.1.0/24", 2),
            net4("10.0.0.0/25", 3),
            net4("10.0.1.128/25", 4),
        ]);
        assert_eq!(table.get(v4("10.0.0.0")), Some(3));
        assert_eq!(table.get(v4("10.0.0.127")), Some(3));
        assert_eq!(table.get(v4("10.0.0.128")), Some(1));
        assert_eq!(table.get(v4("10.0.1.0")), Some(2));
        assert_eq!(table.get(v4("10.0.1.128")), Some(4));
        assert_eq!(table.get(v4("10.0.2.0")), None);
    }

    #[test]
    fn ipv6_networks_across_index_buckets() {
        let addr = |t: &str| u128::from(t.parse::<Ipv6Addr>().unwrap());
        let table = RangeTable::build(vec![
            (addr("2001:db8::"), 32, 1),
            (addr("2001:db8:1::"), 48, 2),
            (addr("2000::"), 3, 3),
        ]);
        assert_eq!(table.get(addr("2001:db8::1")), Some(1));
        assert_eq!(table.get(addr("2001:db8:1::1")), Some(2));
        assert_eq!(table.get(addr("2001:db9::")), Some(3));
        assert_eq!(table.get(addr("3fff:ffff::")), Some(3));
        assert_eq!(table.get(addr("4000::")), None);
        assert_eq!(table.get(addr("::1")), None);
    }

    #[test]
    fn agrees_with_a_brute_force_longest_prefix_match_on_random_networks() {
        let mut rng = fastrand::Rng::with_seed(42);
        for round in 0..50 {
            // Few distinct top bits, so networks nest and collide often.
            let mask = 0x0F0F_FFFF;
            let networks: Vec<(u32, u8, u32)> = (0..rng.usize(1..200))
                .map(|i| {
                    let len = rng.u8(0..=32);
                    ((rng.u32(..) & mask).masked(len), len, i as u32)
                })
                .collect();
            let table = RangeTable::build(networks.clone());
            let mut random = || rng.u32(..) & mask;
            assert_agrees(&table, &networks, &mut random, &format!("round {round}"));
        }
    }

    #[test]
    fn ipv6_agrees_with_a_brute_force_longest_prefix_match_on_random_networks() {
        let mut rng = fastrand::Rng::with_seed(6);
        for round in 0..50 {
            // Bits set only in the top 12, around bit 64 and in the last 8,
            // so networks nest, collide, and tie on their high halves.
            let mask: u128 = (0xFFF << 116) | (0xFF << 60) | 0xFF;
            let networks: Vec<(u128, u8, u32)> = (0..rng.usize(1..300))
                .map(|i| {
                    let len = match rng.u8(0..4) {
                        0 => rng.u8(0..=128),
                        1 => 128,
                        2 => rng.u8(56..=72),
                        _ => rng.u8(0..=16),
                    };
                    ((rng.u128(..) & mask).masked(len), len, i as u32)
                })
                .collect();
            let table = RangeTable::build(networks.clone());
            let mut random = || rng.u128(..) & mask;
            assert_agrees(&table, &networks, &mut random, &format!("round {round}"));
        }
    }

    #[test]
    fn clustered_networks_fill_a_bucket_past_the_scan_and_are_binary_searched() {
        // A thousand /128s in one /120 and two far networks: the index spans
        // the whole space, so the cluster shares one bucket of 2,000 ranges.
        let base: u128 = 0x2001_0db8 << 96;
        let mut networks: Vec<(u128, u8, u32)> = (0..1_000u32)
            .map(|i| (base + u128::from(i % 250) + 3 * u128::from(i), 128, i))
            .collect();
        networks.push((1 << 124, 4, 1_000));
        networks.push((0xfe80 << 112, 10, 1_001));
        networks.push((base, 100, 1_002));
        let table = RangeTable::build(networks.clone());
        let largest = largest_bucket(&table);
        assert!(
            largest as usize > LINEAR_SEARCH_MAX,
            "largest bucket {largest}"
        );
        let mut rng = fastrand::Rng::with_seed(7);
        let mut random = || {
            if rng.bool() {
                base + rng.u128(..5_000)
            } else {
                rng.u128(..)
            }
        };
        assert_agrees(&table, &networks, &mut random, "clustered");
    }

    /// Ranges in the fullest bucket of `table`'s index.
    fn largest_bucket<A: Address>(table: &RangeTable<A>) -> u32 {
        table
            .parts()
            .0
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn the_index_adapts_to_the_listed_span() {
        // An IPv6 table of 200,001 ranges keeps its index within the cap and
        // its buckets small on evenly spread networks.
        let mut rng = fastrand::Rng::with_seed(9);
        let networks: Vec<(u128, u8, u32)> = (0..100_000u32)
            .map(|i| ((rng.u128(..) >> 3) | (1 << 125), 128, i))
            .collect();
        let table = RangeTable::build(networks);
        assert_eq!(table.ranges(), 200_001);
        // 2^16 buckets (200,001 ranges / 4, rounded up to a power of two);
        // the last listed address may fall just short of the last one.
        let index = table.parts().0.len();
        assert!(((1 << 16)..=(1 << 16) + 1).contains(&index), "{index}");
        let largest = largest_bucket(&table);
        assert!(
            (largest as usize) < LINEAR_SEARCH_MAX,
            "largest bucket {largest}"
        );
    }

    #[test]
    fn a_table_on_huge_pages_agrees_with_a_plain_search_of_its_ranges() {
        // 300,000 /128s in 2000::/3: 600,001 ranges, 12 MiB, so the table
        // is mapped (on Linux) rather than on the heap.
        let mut rng = fastrand::Rng::with_seed(12);
        let networks: Vec<(u128, u8, u32)> = (0..300_000u32)
            .map(|i| {
                let len = if i % 10 == 0 { rng.u8(20..=64) } else { 128 };
                (((rng.u128(..) >> 3) | (1 << 125)).masked(len), len, i)
            })
            .collect();
        let plain = ranges_of(
            networks
                .iter()
                .enumerate()
                .map(|(id, n)| (n.0, n.1, id as u32))
                .collect(),
        );
        let table = RangeTable::build(networks.clone());
        #[cfg(target_os = "linux")]
        {
            assert!(table.words.is_mapped(), "{:?}", table.words);
            let huge = table
                .words
                .mapping_address()
                .and_then(anon_huge_pages_at)
                .expect("the mapping is in /proc/self/smaps");
            // Only where the kernel has transparent huge pages at all.
            let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
            if thp.is_ok_and(|t| !t.contains("[never]")) {
                assert!(huge > 0, "no 2 MiB page in the table's mapping");
            }
        }
        let mut probes: Vec<u128> = plain
            .iter()
            .flat_map(|r| [r.0, r.0.wrapping_sub(1)])
            .collect();
        probes.extend((0..200_000).map(|_| (rng.u128(..) >> 3) | (1 << 125)));
        for probe in probes {
            // The plain search: the last range starting at or before it.
            let at = plain.partition_point(|r| r.0 <= probe) - 1;
            let (start, id) = plain[at];
            let expected = (id != NONE).then(|| (start, networks[id as usize].2));
            assert_eq!(table.find(probe), expected, "probe {probe:x}");
        }
    }

    /// `AnonHugePages` of the mapping holding `address`, from
    /// `/proc/self/smaps`, in bytes; `None` where it cannot be read.
    fn anon_huge_pages_at(address: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            let range = line
                .split_whitespace()
                .next()
                .and_then(|r| r.split_once('-'));
            if let Some((from, to)) = range
                && let (Ok(from), Ok(to)) = (
                    usize::from_str_radix(from, 16),
                    usize::from_str_radix(to, 16),
                )
            {
                inside = (from..to).contains(&address);
            } else if inside && let Some(kib) = line.strip_prefix("AnonHugePages:") {
                return kib
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .map(|k| k * 1024);
            }
        }
        None
    }

    /// Checks `table` against the brute-force reference on probes at every
    /// network's edges (first, last, one before, one after) and at random.
    fn assert_agrees<A: Address>(
        table: &RangeTable<A>,
        networks: &[(A, u8, u32)],
        random: &mut dyn FnMut() -> A,
        context: &str,
    ) {
        // Duplicates: the first wins in both the table and the reference.
        let mut seen = std::collections::BTreeSet::new();
        let unique: Vec<_> = networks
            .iter()
            .copied()
            .filter(|(a, l, _)| seen.insert((*a, *l)))
            .collect();
        let mut probes = Vec::new();
        for (start, len, _) in networks {
            let last = start.last_of(*len);
            probes.extend([*start, last]);
            probes.extend(last.successor());
            probes.extend(start.predecessor());
        }
        for _ in 0..2_000 {
            probes.push(random());
        }
        for probe in probes {
            let expected = naive(&unique, probe);
            assert_eq!(table.get(probe), expected, "{context}, probe {probe:?}");
            // The range found lies inside the network it reports.
            if let Some((start, value)) = table.find(probe) {
                let (network, len, _) = unique.iter().find(|n| n.2 == value).copied().unwrap();
                assert!(
                    start <= probe && start.masked(len) == network,
                    "{context}, probe {probe:?}"
                );
            }
        }
    }
}
