//! Named lists compiled into one lookup structure per address family.

use super::table::{Address, RangeTable};
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;

/// The listed network that matched a lookup, for evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListMatch {
    /// The list's name.
    pub list: Arc<str>,
    /// The most specific network of that list containing the address.
    pub network: IpNet,
}

/// An IPv4 entry: 8 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry4 {
    network: u32,
    len: u8,
    list: u16,
}

/// An IPv6 entry.
#[derive(Debug, Clone, Copy)]
struct Entry6 {
    network: u128,
    len: u8,
    list: u16,
}

/// Several named lists in one structure: a lookup finds the most specific
/// network of any of them (the first list given wins on an exact tie).
#[derive(Debug, Clone)]
pub struct CompiledLists {
    names: Vec<Arc<str>>,
    v4: RangeTable<u32>,
    v6: RangeTable<u128>,
    entries4: Vec<Entry4>,
    entries6: Vec<Entry6>,
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
        let mut entries4 = Vec::new();
        let mut entries6 = Vec::new();
        for (index, (name, networks)) in lists.into_iter().enumerate().take(usize::from(u16::MAX)) {
            names.push(name);
            let list = u16::try_from(index).unwrap_or(u16::MAX);
            for net in networks {
                match super::parse::canonical(*net) {
                    IpNet::V4(n) => entries4.push(Entry4 {
                        network: u32::from(n.network()),
                        len: n.prefix_len(),
                        list,
                    }),
                    IpNet::V6(n) => entries6.push(Entry6 {
                        network: u128::from(n.network()),
                        len: n.prefix_len(),
                        list,
                    }),
                }
            }
        }
        entries4.shrink_to_fit();
        entries6.shrink_to_fit();
        let v4 = RangeTable::build(
            entries4
                .iter()
                .enumerate()
                .map(|(i, e)| (e.network.masked(e.len), e.len, value(i)))
                .collect(),
        );
        let v6 = RangeTable::build(
            entries6
                .iter()
                .enumerate()
                .map(|(i, e)| (e.network.masked(e.len), e.len, value(i)))
                .collect(),
        );
        Self {
            names,
            v4,
            v6,
            entries4,
            entries6,
        }
    }

    /// Whether any list contains `ip`, and which network matched. A mapped
    /// IPv6 address (`::ffff:192.0.2.1`) is looked up as its IPv4 address.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<ListMatch> {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let e = self.entries4.get(self.v4.get(u32::from(v4))? as usize)?;
                let net = ipnet::Ipv4Net::new(e.network.into(), e.len).ok()?;
                Some(self.found(e.list, IpNet::V4(net)))
            }
            IpAddr::V6(v6) => {
                let e = self.entries6.get(self.v6.get(u128::from(v6))? as usize)?;
                let net = ipnet::Ipv6Net::new(e.network.into(), e.len).ok()?;
                Some(self.found(e.list, IpNet::V6(net)))
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
            list: self
                .names
                .get(usize::from(list))
                .cloned()
                .unwrap_or_else(|| Arc::from("?")),
            network,
        }
    }

    /// Networks held (IPv4 and IPv6).
    pub fn len(&self) -> usize {
        self.entries4.len() + self.entries6.len()
    }

    /// Whether no network is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held by the lookup structure and its entries.
    pub fn memory_bytes(&self) -> usize {
        self.v4.memory_bytes()
            + self.v6.memory_bytes()
            + self.entries4.capacity() * std::mem::size_of::<Entry4>()
            + self.entries6.capacity() * std::mem::size_of::<Entry6>()
    }
}

fn value(index: usize) -> u32 {
    // `build` holds fewer than u32::MAX entries in practice (lists are capped).
    u32::try_from(index).unwrap_or(super::table::NONE - 1)
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
        assert_eq!((&*hit.list, hit.network), ("drop", n("192.0.2.0/24")));
        let hit = lists.lookup("::ffff:192.0.2.200".parse().unwrap()).unwrap();
        assert_eq!((&*hit.list, hit.network), ("local", n("192.0.2.128/25")));
        let hit = lists.lookup("2001:db8:ffff::1".parse().unwrap()).unwrap();
        assert_eq!(hit.network, n("2001:db8::/32"));
        assert!(lists.lookup("198.51.100.1".parse().unwrap()).is_none());
        assert!(!lists.contains("2001:db9::1".parse().unwrap()));
        assert_eq!(lists.len(), 3);
        assert!(lists.memory_bytes() > 0);
    }
}
