//! Reading IP lists: one address or CIDR per line, as in plain lists, FireHOL
//! `.netset`/`.ipset` files and Spamhaus DROP (`1.10.16.0/20 ; SBL256894`),
//! plus the NDJSON form of DROP (`{"cidr":"1.10.16.0/20","sblid":...}`).
//!
//! Comments start with `#` or `;`, at the start of a line or after an entry.
//! A line that is not an address or network is reported with its number and
//! skipped; the rest of the list still loads, so one bad line never empties a
//! block list. A network written with host bits set (`10.1.2.3/8`) is kept as
//! its network (`10.0.0.0/8`, as ipset and iptables read it) and reported.
//! IPv4-mapped IPv6 networks (`::ffff:192.0.2.0/120`) become IPv4 networks,
//! since lookups see a mapped client as its IPv4 address.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Serialize;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

/// Lines longer than this are reported and skipped, so a list cannot make
/// one line cost unbounded work.
pub const MAX_LINE_BYTES: usize = 1024;

/// Issues kept per list; more are only counted.
pub const MAX_ISSUES_KEPT: usize = 100;

/// What is wrong with a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueKind {
    /// Neither an address nor a network: skipped.
    Malformed,
    /// Not UTF-8: skipped.
    NotUtf8,
    /// Longer than [`MAX_LINE_BYTES`]: skipped.
    TooLong,
    /// A network with host bits set: kept as its network.
    HostBitsSet,
    /// The list holds its maximum of entries: this and later lines skipped.
    TooManyEntries,
}

impl IssueKind {
    /// Whether the line's entry was skipped (rather than kept in another form).
    pub fn skipped(self) -> bool {
        !matches!(self, Self::HostBitsSet)
    }
}

/// One reported line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListIssue {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: IssueKind,
    /// The start of the line (at most 80 characters), for the operator.
    pub text: String,
}

/// A parsed list: its networks (masked, in file order) and what was reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedList {
    /// The networks; single addresses are /32 or /128.
    pub networks: Vec<IpNet>,
    /// The first [`MAX_ISSUES_KEPT`] issues.
    pub issues: Vec<ListIssue>,
    /// Every issue, including those not kept.
    pub issue_count: usize,
    /// Lines whose entry was skipped.
    pub skipped: usize,
}

impl ParsedList {
    fn report(&mut self, line: usize, kind: IssueKind, text: &[u8]) {
        self.issue_count += 1;
        if kind.skipped() {
            self.skipped += 1;
        }
        if self.issues.len() < MAX_ISSUES_KEPT {
            let text: String = String::from_utf8_lossy(&text[..text.len().min(320)])
                .chars()
                .take(80)
                .collect();
            self.issues.push(ListIssue { line, kind, text });
        }
    }
}

/// Parses a list of at most `max_entries` networks from `bytes`.
pub fn parse_list(bytes: &[u8], max_entries: usize) -> ParsedList {
    let mut list = ParsedList::default();
    for (number, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = number + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > MAX_LINE_BYTES {
            list.report(line, IssueKind::TooLong, raw);
            continue;
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            list.report(line, IssueKind::NotUtf8, raw);
            continue;
        };
        let entry = match entry_of(text) {
            Entry::Empty => continue,
            Entry::Malformed => {
                list.report(line, IssueKind::Malformed, raw);
                continue;
            }
            Entry::Network(net, host_bits) => {
                if host_bits {
                    list.report(line, IssueKind::HostBitsSet, raw);
                }
                net
            }
        };
        if list.networks.len() >= max_entries {
            list.report(line, IssueKind::TooManyEntries, raw);
            continue;
        }
        list.networks.push(entry);
    }
    list
}

enum Entry {
    Empty,
    Malformed,
    /// The network, and whether host bits were set.
    Network(IpNet, bool),
}

fn entry_of(line: &str) -> Entry {
    let line = line.trim();
    if line.starts_with('{') {
        return json_entry(line);
    }
    // The entry is what comes before a comment; DROP puts `; SBL...` after it.
    let body = line.split(['#', ';']).next().unwrap_or_default().trim();
    if body.is_empty() {
        return Entry::Empty;
    }
    // One token: anything after whitespace is not an entry we know.
    if body.split_whitespace().nth(1).is_some() {
        return Entry::Malformed;
    }
    network_of(body)
}

/// A DROP NDJSON line: `{"cidr": "..."}`; other objects (the trailing
/// metadata record) carry no entry.
fn json_entry(line: &str) -> Entry {
    let Ok(serde_json::Value::Object(object)) = serde_json::from_str::<serde_json::Value>(line)
    else {
        return Entry::Malformed;
    };
    match object.get("cidr") {
        Some(serde_json::Value::String(cidr)) => network_of(cidr.trim()),
        Some(_) => Entry::Malformed,
        None => Entry::Empty,
    }
}

fn network_of(text: &str) -> Entry {
    let (net, host_bits) = if let Some((addr, len)) = text.split_once('/') {
        // Digits only: `+8`, ` 8` and `08x` are not prefix lengths.
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Entry::Malformed;
        }
        let Ok(len) = len.parse::<u8>() else {
            return Entry::Malformed;
        };
        let Ok(addr) = IpAddr::from_str(addr) else {
            return Entry::Malformed;
        };
        let net = match addr {
            IpAddr::V4(a) => Ipv4Net::new(a, len).map(IpNet::V4),
            IpAddr::V6(a) => Ipv6Net::new(a, len).map(IpNet::V6),
        };
        let Ok(net) = net else {
            return Entry::Malformed;
        };
        (net.trunc(), net.trunc().addr() != addr)
    } else {
        match IpAddr::from_str(text) {
            Ok(addr) => (IpNet::from(addr), false),
            Err(_) => return Entry::Malformed,
        }
    };
    Entry::Network(canonical(net), host_bits)
}

/// An IPv4-mapped IPv6 network of at least /96 as the IPv4 network it maps.
pub(crate) fn canonical(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = mapped_v4(v6.network())
        && let Ok(net) = Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(net);
    }
    net
}

fn mapped_v4(addr: Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    addr.to_ipv4_mapped()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &ParsedList) -> Vec<String> {
        list.networks.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn reads_a_firehol_netset_with_its_header_comments() {
        let text = b"#\n# firehol_level1\n#\n# Maintainer: FireHOL\n#\n0.0.0.0/8\n1.10.16.0/20\n192.0.2.7\n";
        let list = parse_list(text, 100);
        assert_eq!(nets(&list), ["0.0.0.0/8", "1.10.16.0/20", "192.0.2.7/32"]);
        assert_eq!(list.issue_count, 0);
    }

    #[test]
    fn reads_spamhaus_drop_with_trailing_sbl_comments_and_crlf() {
        let text = b"; Spamhaus DROP List 2024/01/01\r\n; Last-Modified: x\r\n1.10.16.0/20 ; SBL256894\r\n2001:db8::/32 ; SBL1\r\n";
        let list = parse_list(text, 100);
        assert_eq!(nets(&list), ["1.10.16.0/20", "2001:db8::/32"]);
        assert!(list.issues.is_empty());
    }

    #[test]
    fn reads_the_ndjson_drop_format_and_ignores_its_metadata_record() {
        let text = br#"{"cidr":"1.10.16.0/20","sblid":"SBL256894","rir":"apnic"}
{"type":"metadata","timestamp":1700000000,"size":1,"records":1}
{"cidr":42}
"#;
        let list = parse_list(text, 100);
        assert_eq!(nets(&list), ["1.10.16.0/20"]);
        assert_eq!(list.issues.len(), 1);
        assert_eq!(list.issues[0].line, 3);
    }

    #[test]
    fn malformed_lines_are_reported_with_their_numbers_and_skipped() {
        let text = "10.0.0.0/8\n10.0.0.0/33\n300.1.1.1\n::/129\nnot an ip\n10.0.0.1/\n10.0.0.0/+8\n\
                    fe80::1%eth0\n1.2.3.4-1.2.3.9\n010.1.1.1\n192.0.2.1 extra\n2001:db8::/64\n";
        let list = parse_list(text.as_bytes(), 100);
        assert_eq!(nets(&list), ["10.0.0.0/8", "2001:db8::/64"]);
        let lines: Vec<usize> = list.issues.iter().map(|i| i.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert!(list.issues.iter().all(|i| i.kind == IssueKind::Malformed));
        assert_eq!(list.skipped, 10);
        assert_eq!(list.issues[0].text, "10.0.0.0/33");
    }

    #[test]
    fn host_bits_are_masked_and_reported_but_the_entry_kept() {
        let list = parse_list(b"10.1.2.3/8\n2001:db8::1/32\n192.0.2.0/24\n", 100);
        assert_eq!(nets(&list), ["10.0.0.0/8", "2001:db8::/32", "192.0.2.0/24"]);
        let kinds: Vec<_> = list.issues.iter().map(|i| (i.line, i.kind)).collect();
        assert_eq!(
            kinds,
            [(1, IssueKind::HostBitsSet), (2, IssueKind::HostBitsSet)]
        );
        assert_eq!(list.skipped, 0);
    }

    #[test]
    fn edges_of_prefix_lengths_and_mapped_addresses() {
        let list = parse_list(
            b"0.0.0.0/0\n255.255.255.255/32\n::/0\n::ffff:192.0.2.0/120\n::ffff:198.51.100.9\n::1\n",
            100,
        );
        assert_eq!(
            nets(&list),
            [
                "0.0.0.0/0",
                "255.255.255.255/32",
                "::/0",
                "192.0.2.0/24",
                "198.51.100.9/32",
                "::1/128"
            ]
        );
    }

    #[test]
    fn invalid_utf8_long_lines_and_the_entry_cap_are_reported() {
        let mut text = b"\xff\xfe1.2.3.4\n".to_vec();
        text.extend(std::iter::repeat_n(b'1', MAX_LINE_BYTES + 1));
        text.extend(b"\n1.1.1.1\n2.2.2.2\n3.3.3.3\n");
        let list = parse_list(&text, 2);
        assert_eq!(nets(&list), ["1.1.1.1/32", "2.2.2.2/32"]);
        let kinds: Vec<_> = list.issues.iter().map(|i| (i.line, i.kind)).collect();
        assert_eq!(
            kinds,
            [
                (1, IssueKind::NotUtf8),
                (2, IssueKind::TooLong),
                (5, IssueKind::TooManyEntries)
            ]
        );
        assert!(list.issues[1].text.chars().count() <= 80);
    }

    #[test]
    fn only_the_first_issues_are_kept_but_all_are_counted() {
        let text = "x\n".repeat(MAX_ISSUES_KEPT + 5);
        let list = parse_list(text.as_bytes(), 10);
        assert_eq!(list.issues.len(), MAX_ISSUES_KEPT);
        assert_eq!(list.issue_count, MAX_ISSUES_KEPT + 5);
    }
}
