//! Origins as plain strings: the serialized `scheme://host[:port]` form that
//! browsers send in `Origin`, extracted from a `Referer`, or written in
//! configuration, normalized so one comparison of strings decides.

/// The normalized origin (`https://app.example`, `http://[::1]:8080`) of an
/// `Origin` value or a configured origin, or `None` if it is not one.
///
/// Only `http` and `https` are origins here; scheme and host are lowercased and
/// the scheme's default port is dropped, so `HTTPS://App.Example:443` and
/// `https://app.example` compare equal. Anything beyond the authority (a path,
/// even a lone `/`, a query, user information) makes it not an origin: a value
/// this function cannot read is never trusted.
pub fn normalize_origin(value: &str) -> Option<String> {
    let (scheme, authority) = value.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let (host, port) = split_host_port(authority)?;
    let port = match port {
        Some(p) if p != default_port => format!(":{p}"),
        _ => String::new(),
    };
    Some(format!("{scheme}://{}{port}", host.to_ascii_lowercase()))
}

/// The normalized origin of a `Referer` URL, or `None` if it is not an
/// absolute `http`/`https` URL with a readable authority.
pub fn referer_origin(referer: &str) -> Option<String> {
    let (scheme, rest) = referer.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    normalize_origin(&format!("{scheme}://{}", &rest[..end]))
}

/// Host and optional port of an authority; `None` for anything unexpected
/// (user information, a path, an empty host, port 0 or out of range).
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6.find(']')?;
        let literal = &v6[..close];
        if literal.is_empty()
            || !literal
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return None;
        }
        let after = &v6[close + 1..];
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (&authority[..close + 2], port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let host_ok = host.starts_with('[')
        || (!host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')));
    if !host_ok {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok().filter(|&p| p != 0)?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_default_ports() {
        assert_eq!(
            normalize_origin("HTTPS://App.Example:443").as_deref(),
            Some("https://app.example")
        );
        assert_eq!(
            normalize_origin("http://app.example:80").as_deref(),
            Some("http://app.example")
        );
        assert_eq!(
            normalize_origin("http://app.example:8080").as_deref(),
            Some("http://app.example:8080")
        );
        assert_eq!(
            normalize_origin("http://[::1]:8080").as_deref(),
            Some("http://[::1]:8080")
        );
        assert_eq!(
            normalize_origin("https://[2001:DB8::1]").as_deref(),
            Some("https://[2001:db8::1]")
        );
    }

    #[test]
    fn rejects_what_is_not_an_origin() {
        for bad in [
            "null",
            "",
            "app.example",
            "ftp://app.example",
            "https://",
            "https://app.example/",
            "https://app.example/path",
            "https://user@app.example",
            "https://app.example:0",
            "https://app.example:99999",
            "https://app.example:",
            "https://app example",
            "https://[::1",
            "https://[]",
            "*",
        ] {
            assert_eq!(normalize_origin(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn takes_the_origin_of_a_referer() {
        assert_eq!(
            referer_origin("https://app.example/a/b?c=d#e").as_deref(),
            Some("https://app.example")
        );
        assert_eq!(
            referer_origin("https://app.example:8443?x").as_deref(),
            Some("https://app.example:8443")
        );
        assert_eq!(referer_origin("/relative/path"), None);
        assert_eq!(referer_origin("https://evil@app.example/"), None);
    }
}
