//! Named lists compiled into one lookup structure per address family.

use super::table::{Address, RangeTable};
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The listed network that matched a lookup, for evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListMatch {
    /// The list's name.
    pub list: &'static str,
    /// The most specific network of that list containing the address.
    pub network: IpNet,
}

/// Several named lists in one structure: a lookup finds the most specific
/// network of any of them (the first list given wins on an exact tie).
///
/// Each range of the tables carries its network's list and prefix length
/// (see [`tag`]); the network is the range's first address masked to that
/// length, so the evidence costs no read beyond the one that finds the range.
#[derive(Debug, Clone)]
pub struct CompiledLists {
    names: Vec<&'static str>,
    v4: RangeTable<u32>,
    v6: RangeTable<u128>,
    networks: usize,
}

impl Default for CompiledLists {
    fn default() -> Self {
        Self::build(Vec::new())
    }
}

impl CompiledLists {
    /// Compiles `lists` of `(name, networks)`. At most 65,535 lists.
    pub fn build(lists: Vec<(Arc<str>, &[IpNet])>) -> Self {
        let mut names = Vec::with_capacity(lists.len());
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (index, (name, networks)) in lists.into_iter().enumerate().take(usize::from(u16::MAX)) {
            names.push(intern(&name));
            let list = u16::try_from(index).unwrap_or(u16::MAX);
            for net in networks {
                match super::parse::canonical(*net) {
                    IpNet::V4(n) => {
                        let len = n.prefix_len();
                        v4.push((u32::from(n.network()).masked(len), len, tag(list, len)));
                    }
                    IpNet::V6(n) => {
                        let len = n.prefix_len();
                        v6.push((u128::from(n.network()).masked(len), len, tag(list, len)));
                    }
                }
            }
        }
        let networks = v4.len() + v6.len();
        Self {
            names,
            v4: RangeTable::build(v4),
            v6: RangeTable::build(v6),
            networks,
        }
    }

    /// Whether any list contains `ip`, and which network matched. A mapped
    /// IPv6 address (`::ffff:192.0.2.1`) is looked up as its IPv4 address.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<ListMatch> {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let (start, tag) = self.v4.find(u32::from(v4))?;
                let (list, len) = untag(tag);
                let net = ipnet::Ipv4Net::new(start.masked(len).into(), len).ok()?;
                Some(self.found(list, IpNet::V4(net)))
            }
            IpAddr::V6(v6) => {
                let (start, tag) = self.v6.find(u128::from(v6))?;
                let (list, len) = untag(tag);
                let net = ipnet::Ipv6Net::new(start.masked(len).into(), len).ok()?;
                Some(self.found(list, IpNet::V6(net)))
            }
        }
    }

    /// Whether any list contains `ip`, without building the evidence.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(v4) => self.v4.get(u32::from(v4)).is_some(),
            IpAddr::V6(v6) => self.v6.get(u128::from(v6)).is_some(),
        }
    }

    fn found(&self, list: u16, network: IpNet) -> ListMatch {
        ListMatch {
            list: self.names.get(usize::from(list)).copied().unwrap_or("?"),
            network,
        }
    }

    /// Networks held (IPv4 and IPv6, duplicates included).
    pub fn len(&self) -> usize {
        self.networks
    }

    /// Whether no network is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held by the lookup structures.
    pub fn memory_bytes(&self) -> usize {
        self.v4.memory_bytes()
            + self.v6.memory_bytes()
            + self.names.capacity() * std::mem::size_of::<&str>()
    }
}

/// A list name as a `&'static str`, leaked once per distinct name for the
/// life of the process. Evidence then names its list without a reference
/// count: cloning and dropping an `Arc` per hit took two locked instructions,
/// which also kept the CPU from overlapping one lookup's memory read with
/// the next. Names come from the configuration, so there are few of them.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    // A poisoned lock means a panic elsewhere; the set is still consistent.
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.into());
    names.insert(leaked);
    leaked
}

/// A range's value: the list (below 65,535) and the prefix length of the
/// network covering it; at most 0xFFFE_FF80, so never `table::NONE`.
fn tag(list: u16, len: u8) -> u32 {
    (u32::from(list) << 8) | u32::from(len)
}

/// The list and prefix length of a [`tag`].
fn untag(tag: u32) -> (u16, u8) {
    ((tag >> 8) as u16, tag as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    #[test]
    fn finds_the_list_and_network_and_maps_ipv4_in_ipv6() {
        let drop = [n("192.0.2.0/24"), n("2001:db8::/32")];
        let local = [n("192.0.2.128/25")];
        let lists = CompiledLists::build(vec![
            (Arc::from("drop"), &drop),
            (Arc::from("local"), &local),
        ]);
        let hit = lists.lookup("192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!((hit.list, hit.network), ("drop", n("192.0.2.0/24")));
        let hit = lists.lookup("::ffff:192.0.2.200".parse().unwrap()).unwrap();
        assert_eq!((hit.list, hit.network), ("local", n("192.0.2.128/25")));
        let hit = lists.lookup("2001:db8:ffff::1".parse().unwrap()).unwrap();
        assert_eq!(hit.network, n("2001:db8::/32"));
        assert!(lists.lookup("198.51.100.1".parse().unwrap()).is_none());
        assert!(!lists.contains("2001:db9::1".parse().unwrap()));
        assert_eq!(lists.len(), 3);
        assert!(lists.memory_bytes() > 0);
    }

    /// The reference: the longest listed prefix holding `ip`, the first
    /// list winning a tie, by brute force.
    fn naive(lists: &[(&str, Vec<IpNet>)], ip: IpAddr) -> Option<(String, IpNet)> {
        let mut best: Option<(String, IpNet)> = None;
        for (name, networks) in lists {
            for net in networks.iter().map(|n| n.trunc()) {
                if net.contains(&ip)
                    && best
                        .as_ref()
                        .is_none_or(|b| net.prefix_len() > b.1.prefix_len())
                {
                    best = Some((name.to_string(), net));
                }
            }
        }
        best
    }

    #[test]
    fn a_name_is_leaked_once_however_often_lists_are_built() {
        let first = intern("interned-once");
        let again = intern(&String::from("interned-once"));
        assert!(std::ptr::eq(first, again));
        assert_eq!(again, "interned-once");
    }

    #[test]
    fn evidence_agrees_with_a_brute_force_match_for_both_families() {
        let mut rng = fastrand::Rng::with_seed(11);
        // Few distinct bits, so networks of one list sit side by side with
        // equal prefix lengths (which must stay distinct evidence) and nest
        // across lists.
        let v4 = |rng: &mut fastrand::Rng| IpAddr::from((rng.u32(..) & 0x0300_0F0F).to_be_bytes());
        let v6 = |rng: &mut fastrand::Rng| {
            IpAddr::from(
                ((rng.u128(..) & ((0x3 << 120) | (0xF << 64) | 0xF)) | (1 << 125)).to_be_bytes(),
            )
        };
        for round in 0..30 {
            let lists: Vec<(&str, Vec<IpNet>)> = ["drop", "edrop", "local"]
                .into_iter()
                .map(|name| {
                    let networks = (0..rng.usize(0..60))
                        .map(|_| {
                            let ip = if rng.bool() {
                                v4(&mut rng)
                            } else {
                                v6(&mut rng)
                            };
                            let max = if ip.is_ipv4() { 32 } else { 128 };
                            let len = if rng.bool() {
                                max - rng.u8(0..8)
                            } else {
                                rng.u8(0..=max)
                            };
                            IpNet::new(ip, len).unwrap()
                        })
                        .collect();
                    (name, networks)
                })
                .collect();
            let compiled = CompiledLists::build(
                lists
                    .iter()
                    .map(|(name, nets)| (Arc::from(*name), nets.as_slice()))
                    .collect(),
            );
            let mut probes: Vec<IpAddr> = lists
                .iter()
                .flat_map(|(_, nets)| nets.iter().flat_map(|n| [n.network(), n.broadcast()]))
                .collect();
            probes.extend((0..500).map(|_| v4(&mut rng)));
            probes.extend((0..500).map(|_| v6(&mut rng)));
            for ip in probes {
                let expected = naive(&lists, ip);
                let found = compiled.lookup(ip).map(|m| (m.list.to_string(), m.network));
                assert_eq!(found, expected, "round {round}, {ip}");
                assert_eq!(
                    compiled.contains(ip),
                    expected.is_some(),
                    "round {round}, {ip}"
                );
            }
        }
    }
}
