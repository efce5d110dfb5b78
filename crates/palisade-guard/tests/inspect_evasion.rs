//! Evasion: the same payloads encoded the ways attackers hide them must
//! still be found, at the default level, in the right category.

use palisade_guard::inspect::{Action, Category, HttpRequest, Inspector, Sensitivity};

fn blocked_as(raw: &str, category: Category) -> bool {
    let verdict = Inspector::default().inspect_value(raw, Sensitivity::Low);
    verdict.action == Action::Block && verdict.has(category)
}

fn url_encode_all(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

fn full_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c),
            ' ' => '\u{3000}',
            c => c,
        })
        .collect()
}

fn mixed_case(s: &str) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

const PAYLOADS: &[(&str, Category)] = &[
    ("1' or '1'='1' -- ", Category::Sqli),
    (
        "-1 union select username, password from users",
        Category::Sqli,
    ),
    ("1; drop table users", Category::Sqli),
    ("<script>alert(1)</script>", Category::Xss),
    ("<img src=x onerror=alert(document.cookie)>", Category::Xss),
    ("../../../../etc/passwd", Category::PathTraversal),
    ("..\\..\\windows\\win.ini", Category::PathTraversal),
    ("; cat /etc/passwd", Category::Cmdi),
    ("| id", Category::Cmdi),
];

#[test]
fn plain_payloads_are_blocked() {
    for &(p, c) in PAYLOADS {
        assert!(blocked_as(p, c), "{p}");
    }
}

#[test]
fn url_encoded_once_twice_and_three_times() {
    for &(p, c) in PAYLOADS {
        let once = url_encode_all(p);
        let twice = once.replace('%', "%25");
        let thrice = twice.replace('%', "%25");
        for encoded in [&once, &twice, &thrice] {
            assert!(blocked_as(encoded, c), "{p} as {encoded}");
        }
    }
}

#[test]
fn mixed_case_payloads() {
    for &(p, c) in PAYLOADS {
        let mixed = mixed_case(p);
        assert!(blocked_as(&mixed, c), "{mixed}");
    }
}

#[test]
fn full_width_unicode_forms() {
    for &(p, c) in PAYLOADS {
        let wide = full_width(p);
        assert!(blocked_as(&wide, c), "{wide}");
        // And percent-encoded as UTF-8, as a browser sends them.
        let encoded: String = wide
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        assert!(blocked_as(&encoded, c), "{encoded}");
    }
}

#[test]
fn sql_comments_between_and_inside_keywords() {
    for p in [
        "1/**/UNION/**/SELECT/**/password/**/FROM/**/users",
        "1 UN/**/ION SEL/**/ECT password FROM users",
        "1'/**/OR/**/'a'='a",
        "1 /*!50000UNION*/ /*!50000SELECT*/ 1,2",
        "admin'/*",
        "1' OR 1=1#",
        "1'--+-",
    ] {
        assert!(blocked_as(p, Category::Sqli), "{p}");
    }
}

#[test]
fn html_character_references() {
    for p in [
        "<a href=\"&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)\">x</a>",
        "<a href=\"javascript&colon;alert(1)\">x</a>",
        "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "&#x3C;img src=x onerror=alert(1)&#x3E;",
        "<img src=x onerror=&#97;lert(1)>",
    ] {
        assert!(blocked_as(p, Category::Xss), "{p}");
    }
}

#[test]
fn overlong_utf8_and_iis_unicode_in_paths() {
    for p in [
        "..%c0%af..%c0%af..%c0%afetc%c0%afpasswd",
        "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
        "..%u2215..%u2215etc%u2215passwd",
        "%uff0e%uff0e/%uff0e%uff0e/etc/passwd",
    ] {
        assert!(blocked_as(p, Category::PathTraversal), "{p}");
    }
}

/// A payload split across JSON fields is found in the field that carries
/// the structure, and the location names that field.
#[test]
fn payload_split_across_json_fields() {
    let inspector = Inspector::default();
    let cases = [
        (
            r#"{"user":"admin","pass":"x' OR '1'='1"}"#,
            Category::Sqli,
            "body.pass",
        ),
        (
            r#"{"first":"<img src=x","last":"onerror=alert(1)>"}"#,
            Category::Xss,
            "body.last",
        ),
        (
            r#"{"a":{"b":["ok","1 UNION SELECT 1,2"]}}"#,
            Category::Sqli,
            "body.a.b[1]",
        ),
        (
            r#"{"dir":"../../","file":"etc/passwd"}"#,
            Category::PathTraversal,
            "body.dir",
        ),
        (
            r#"{"host":"127.0.0.1","opt":"; cat /etc/passwd"}"#,
            Category::Cmdi,
            "body.opt",
        ),
    ];
    for (body, category, location) in cases {
        let request = HttpRequest {
            method: "POST",
            path: "/api/login",
            body: body.as_bytes(),
            content_type: Some("application/json"),
            ..HttpRequest::default()
        };
        let verdict = inspector.inspect(&request);
        assert_ne!(verdict.action, Action::Allow, "{body}");
        assert!(
            verdict
                .findings
                .iter()
                .any(|f| f.category == category && f.location == location),
            "{body}: {:?}",
            verdict.findings
        );
    }
    // Unicode escapes in JSON strings are decoded before inspection.
    let request = HttpRequest {
        method: "POST",
        path: "/x",
        body: br#"{"q":"\u003cscript\u003ealert(1)\u003c/script\u003e"}"#,
        content_type: Some("application/json"),
        ..HttpRequest::default()
    };
    assert_eq!(inspector.inspect(&request).action, Action::Block);
}
