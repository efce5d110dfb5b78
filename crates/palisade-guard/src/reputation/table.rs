//! The lookup structure of the reputation lists: the address space cut into
//! disjoint ranges sorted by their first address, each range carrying the most
//! specific listed network that covers it (or none).
//!
//! A lookup reads a direct index on the address's top 16 bits, which narrows
//! the search to the ranges starting in that /16 (IPv4) or /16 (IPv6), then
//! binary-searches those few. With a million random networks that is two or
//! three cache misses, where a binary trie walks up to 32 (IPv4) or 128 (IPv6)
//! dependent pointers. `benches/reputation.rs` measures it against a
//! tree-bitmap trie (`ip_network_table`) and a plain sorted `Vec`.
//!
//! Nested networks resolve to the longest prefix: `10.0.0.0/8` and
//! `10.1.0.0/16` make three ranges, and `10.1.2.3` finds the /16.

/// "No network covers this range."
pub(crate) const NONE: u32 = u32::MAX;

/// Buckets of the direct index: one per value of the top 16 bits.
const BUCKETS: usize = 1 << 16;

/// An address as an unsigned integer: `u32` for IPv4, `u128` for IPv6.
pub(crate) trait Address: Copy + Ord + Default + std::fmt::Debug {
    /// The index bucket: the top 16 bits.
    fn bucket(self) -> usize;
    /// The next address, `None` after the last one.
    fn successor(self) -> Option<Self>;
    /// The last address of the network `self/len` (`self` already masked).
    fn last_of(self, len: u8) -> Self;
    /// `self` with the bits after the first `len` cleared.
    fn masked(self, len: u8) -> Self;
}

impl Address for u32 {
    fn bucket(self) -> usize {
        (self >> 16) as usize
    }
    fn successor(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn last_of(self, len: u8) -> Self {
        self | u32::MAX.checked_shr(u32::from(len)).unwrap_or(0)
    }
    fn masked(self, len: u8) -> Self {
        self & !u32::MAX.checked_shr(u32::from(len)).unwrap_or(0)
    }
}

impl Address for u128 {
    fn bucket(self) -> usize {
        (self >> 112) as usize
    }
    fn successor(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn last_of(self, len: u8) -> Self {
        self | u128::MAX.checked_shr(u32::from(len)).unwrap_or(0)
    }
    fn masked(self, len: u8) -> Self {
        self & !u128::MAX.checked_shr(u32::from(len)).unwrap_or(0)
    }
}

/// Disjoint ranges covering the whole address space, each with a value (an
/// index into the caller's entries) or [`NONE`].
#[derive(Debug, Clone)]
pub(crate) struct RangeTable<A> {
    /// First address of each range, ascending; `starts[0]` is 0.
    starts: Vec<A>,
    /// The value of each range.
    values: Vec<u32>,
    /// `index[b]`: the first range starting in bucket `b` or later; `BUCKETS + 1` long.
    index: Vec<u32>,
}

impl<A: Address> RangeTable<A> {
    /// Builds the table from `(network, prefix length, value)` triples; the
    /// networks must be masked. When the same network is given twice the
    /// first one's value wins. Values must be below [`NONE`].
    pub(crate) fn build(mut networks: Vec<(A, u8, u32)>) -> Self {
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
        let (starts, values): (Vec<A>, Vec<u32>) = bounds.into_iter().unzip();
        let mut index = Vec::with_capacity(BUCKETS + 1);
        let mut range = 0usize;
        for bucket in 0..=BUCKETS {
            while starts.get(range).is_some_and(|s| s.bucket() < bucket) {
                range += 1;
            }
            index.push(u32::try_from(range).unwrap_or(u32::MAX));
        }
        Self {
            starts,
            values,
            index,
        }
    }

    /// The value of the most specific network containing `addr`, if any.
    #[inline]
    pub(crate) fn get(&self, addr: A) -> Option<u32> {
        let bucket = addr.bucket();
        let lo = self.index.get(bucket).copied().unwrap_or(0) as usize;
        let hi = self.index.get(bucket + 1).copied().unwrap_or(0) as usize;
        let in_bucket = self.starts.get(lo..hi).unwrap_or(&[]);
        // Ranges before `lo` start in an earlier bucket; the last of them
        // covers `addr` when no range of its own bucket starts at or before it.
        let at = lo + in_bucket.partition_point(|s| *s <= addr);
        match self.values.get(at.wrapping_sub(1)) {
            Some(&value) if value != NONE => Some(value),
            _ => None,
        }
    }

    /// Ranges in the table (including unlisted gaps).
    #[cfg(test)]
    pub(crate) fn ranges(&self) -> usize {
        self.starts.len()
    }

    /// Heap bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.starts.capacity() * std::mem::size_of::<A>()
            + self.values.capacity() * 4
            + self.index.capacity() * 4
    }
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
    fn naive(networks: &[(u32, u8, u32)], addr: u32) -> Option<u32> {
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
            let networks: Vec<(u32, u8, u32)> = (0..rng.usize(1..200))
                .map(|i| {
                    // Few distinct top bits, so networks nest and collide often.
                    let len = rng.u8(0..=32);
                    let addr = (rng.u32(..) & 0x0F0F_FFFF).masked(len);
                    (addr, len, i as u32)
                })
                .collect();
            // Duplicates: the first wins in both the table and the reference.
            let mut seen = std::collections::HashSet::new();
            let unique: Vec<_> = networks
                .iter()
                .copied()
                .filter(|(a, l, _)| seen.insert((*a, *l)))
                .collect();
            let table = RangeTable::build(networks.clone());
            for _ in 0..2_000 {
                let probe = if rng.bool() {
                    let (a, l, _) = networks[rng.usize(..networks.len())];
                    if rng.bool() { a } else { a.last_of(l) }
                } else {
                    rng.u32(..) & 0x0F0F_FFFF
                };
                assert_eq!(
                    table.get(probe),
                    naive(&unique, probe),
                    "round {round}, probe {probe:#x}"
                );
            }
        }
    }
}
