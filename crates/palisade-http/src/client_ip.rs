//! The client's address: the socket peer, unless that peer is a proxy we were
//! told to trust, and only then what the proxies recorded in `Forwarded`
//! (RFC 7239) or `X-Forwarded-For`.
//!
//! The walk goes from the right, the hop appended by the proxy nearest to us,
//! and skips trusted proxies until the first address that is not one: that is
//! the client as our own proxies saw it. Anything left of it was written by the
//! client itself and is ignored, so a forged header cannot move a rate limit
//! or an audit record onto someone else's address. An entry that cannot be
//! read (`unknown`, an obfuscated `_name`, garbage) stops the walk at the last
//! trusted hop: an address we cannot parse is never believed.

use crate::problem::Problem;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// The proxies whose forwarding headers are believed (`server.trusted_proxies`).
/// Empty by default: then the socket peer is always the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trusts these networks.
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// Parses CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses
    /// (`192.0.2.7`, taken as /32 or /128). Fails with the first entry that is
    /// neither.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                IpNet::from_str(entry)
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .map_err(|_| entry.to_owned())
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `ip` is one of the trusted proxies. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.0.0.1`, as a dual-stack socket reports IPv4 peers) count
    /// as their IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The client address of a request that arrived from `peer`.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = peer.ip().to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    // `Forwarded` is the standard; when a proxy sends it, `X-Forwarded-For`
    // (possibly left over from a client) is not consulted.
    let hops = if headers.contains_key(axum::http::header::FORWARDED) {
        forwarded_hops(headers)
    } else {
        x_forwarded_for_hops(headers)
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        let Some(ip) = hop else {
            break;
        };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    client
}

/// The `for=` node of each `Forwarded` element, left to right across all the
/// header's lines; `None` where it cannot be read.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for line in headers.get_all(axum::http::header::FORWARDED) {
        let Ok(line) = line.to_str() else {
            hops.push(None);
            continue;
        };
        for element in split_outside_quotes(line, ',') {
            let node = split_outside_quotes(element, ';')
                .into_iter()
                .find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("for")
                        .then_some(value.trim())
                });
            hops.push(node.and_then(|v| parse_node(&unquote(v)?)));
        }
    }
    hops
}

/// Each `X-Forwarded-For` entry, left to right across all the header's lines.
fn x_forwarded_for_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for line in headers.get_all("x-forwarded-for") {
        match line.to_str() {
            Ok(line) => hops.extend(line.split(',').map(|e| parse_node(e.trim()))),
            Err(_) => hops.push(None),
        }
    }
    hops
}

/// An address, optionally with a port: `192.0.2.1`, `192.0.2.1:80`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711`. `unknown`, obfuscated
/// identifiers and anything else are `None`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(node) {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return std::net::Ipv6Addr::from_str(v6)
            .ok()
            .map(|ip| IpAddr::V6(ip).to_canonical());
    }
    SocketAddr::from_str(node)
        .ok()
        .map(|s| s.ip().to_canonical())
}

/// The value of a token or quoted-string (RFC 7230): quotes removed and
/// backslash escapes resolved; `None` for an unterminated string.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return Some(value.to_owned());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return chars.as_str().is_empty().then_some(out),
            c => out.push(c),
        }
    }
    None
}

/// Splits on `sep` except inside quoted strings, which may contain it.
fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Extractor for the client address, by the rules of [`client_ip`]. Needs the
/// server to be run with `ConnectInfo<SocketAddr>`; reads [`TrustedProxies`]
/// from the request extensions (the router adds them as an `Extension`) and
/// trusts no proxy when there are none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            tracing::error!(
                "no ConnectInfo<SocketAddr>: serve with into_make_service_with_connect_info"
            );
            return Err(Problem::internal());
        };
        let ip = match parts.extensions.get::<TrustedProxies>() {
            Some(trusted) => client_ip(*peer, &parts.headers, trusted),
            None => peer.ip().to_canonical(),
        };
        Ok(Self(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn trusted() -> TrustedProxies {
        TrustedProxies::parse(&["10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.7"])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap_or_else(|e| panic!("{e}")), 443)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn ignores_forged_x_forwarded_for_from_an_untrusted_peer() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=1.2.3.4")]);
        assert_eq!(
            client_ip(peer("203.0.113.9"), &h, &trusted()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn with_no_trusted_proxies_the_peer_is_the_client() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        let none = TrustedProxies::default();
        assert_eq!(client_ip(peer("10.0.0.1"), &h, &none), ip("10.0.0.1"));
    }

    #[test]
    fn takes_the_right_most_untrusted_x_forwarded_for_hop() {
        // The client prepended 6.6.6.6 itself; our proxies appended the rest.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.20, 10.1.1.1")]);
        assert_eq!(
            client_ip(peer("10.0.0.1"), &h, &trusted()),
            ip("198.51.100.20")
        );
    }

    #[test]
    fn joins_several_x_forwarded_for_lines_in_order() {
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.20"),
            ("x-forwarded-for", "192.0.2.7"),
        ]);
        assert_eq!(
            client_ip(peer("10.0.0.1"), &h, &trusted()),
            ip("198.51.100.20")
        );
    }

    #[test]
    fn reads_rfc_7239_forwarded_with_quoted_ipv6_and_ports() {
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.2.3.4:8080;by=10.0.0.1",
        )]);
        assert_eq!(
            client_ip(peer("10.0.0.1"), &h, &trusted()),
            ip("2001:db8:cafe::17")
        );
    }

    #[test]
    fn forwarded_takes_precedence_over_x_forwarded_for() {
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=198.51.100.1"),
        ]);
        assert_eq!(
            client_ip(peer("10.0.0.1"), &h, &trusted()),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn unreadable_hops_stop_the_walk_at_the_last_trusted_one() {
        let t = trusted();
        for forwarded in [
            "for=unknown",
            "for=_hidden, for=10.9.9.9",
            "for=\"[::1",
            "proto=https",
        ] {
            let h = headers(&[("forwarded", forwarded)]);
            let got = client_ip(peer("10.0.0.1"), &h, &t);
            let expected = if forwarded.contains("10.9.9.9") {
                "10.9.9.9"
            } else {
                "10.0.0.1"
            };
            assert_eq!(got, ip(expected), "{forwarded}");
        }
        let h = headers(&[("x-forwarded-for", "198.51.100.1, garbage")]);
        assert_eq!(client_ip(peer("10.0.0.1"), &h, &t), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_ipv6_proxy_and_mapped_ipv4_peers() {
        let h = headers(&[("x-forwarded-for", "[2001:db8::5]:1234")]);
        assert_eq!(
            client_ip(peer("2001:db8:ffff::1"), &h, &trusted()),
            ip("2001:db8::5")
        );
        // A dual-stack socket reports 10.0.0.1 as ::ffff:10.0.0.1.
        let h = headers(&[("x-forwarded-for", "198.51.100.3")]);
        assert_eq!(
            client_ip(peer("::ffff:10.0.0.1"), &h, &trusted()),
            ip("198.51.100.3")
        );
        assert_eq!(
            client_ip(peer("::ffff:203.0.113.1"), &h, &trusted()),
            ip("203.0.113.1")
        );
    }

    #[test]
    fn all_hops_trusted_yields_the_left_most() {
        let h = headers(&[("x-forwarded-for", "10.5.5.5, 10.6.6.6")]);
        assert_eq!(client_ip(peer("10.0.0.1"), &h, &trusted()), ip("10.5.5.5"));
    }

    #[test]
    fn parse_rejects_entries_that_are_not_networks() {
        assert_eq!(
            TrustedProxies::parse(&["10.0.0.0/8", "10.0.0.0/33"]),
            Err("10.0.0.0/33".into())
        );
        assert_eq!(
            TrustedProxies::parse(&["proxy.internal"]),
            Err("proxy.internal".into())
        );
        assert!(TrustedProxies::parse(&["::1"]).is_ok_and(|t| t.contains(ip("::1"))));
    }
}
