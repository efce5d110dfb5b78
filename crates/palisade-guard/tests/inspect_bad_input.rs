//! Bad input: huge bodies, invalid UTF-8 and deep nesting get a clear
//! verdict, never a panic, and the work grows linearly with the size.
//! Work is counted in steps (bytes passed over by decoders, the SQL
//! tokenizer and substring searches), not timed.

use palisade_guard::inspect::{Action, HttpRequest, InspectConfig, Inspector, Limits};
use proptest::prelude::*;

/// Fragments that make detectors look ahead: open tags and quotes, dot
/// runs, separators, comments, escapes, handler names, deep brackets.
const FRAGMENTS: &[&str] = &[
    "<",
    "<a ",
    "<img src=",
    "\"",
    "'",
    "`",
    " onload=",
    "on",
    "..",
    "../",
    "/*",
    "*/",
    "--",
    "#",
    ";",
    "|",
    "&",
    "$(",
    "%",
    "%25",
    "%c0",
    "&#",
    "&#x",
    "&lt;",
    "javascript",
    "script",
    "union",
    "select",
    "(",
    ")",
    "[",
    "{",
    "\\",
    "\n",
    "é",
    "\u{ff1c}",
    "a",
    "1",
    " ",
    "=",
];

fn request<'a>(body: &'a [u8], content_type: &'a str) -> HttpRequest<'a> {
    HttpRequest {
        method: "POST",
        path: "/upload",
        query: "",
        headers: &[],
        body,
        content_type: Some(content_type),
    }
}

fn build(parts: &[usize], target: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(target + 16);
    let mut i = 0;
    while out.len() < target && !parts.is_empty() {
        out.extend_from_slice(FRAGMENTS[parts[i % parts.len()] % FRAGMENTS.len()].as_bytes());
        i += 1;
    }
    out
}

fn work(body: &[u8], content_type: &str) -> u64 {
    Inspector::default()
        .inspect(&request(body, content_type))
        .work
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Up to 1 MiB of adversarial fragments: no panic, and the steps per
    /// byte stay under a constant, so doubling the input at most about
    /// doubles the work.
    #[test]
    fn huge_bodies_cost_linear_work(
        parts in proptest::collection::vec(0usize..FRAGMENTS.len(), 1..12),
        kib in 1usize..=512,
        content_type in prop_oneof![Just("text/plain"), Just("application/json"), Just("application/x-www-form-urlencoded")],
    ) {
        let small = build(&parts, kib * 1024);
        let large = build(&parts, kib * 2048);
        let (w1, w2) = (work(&small, content_type), work(&large, content_type));
        prop_assert!(w2 <= 400 * large.len() as u64, "{w2} steps for {} bytes", large.len());
        prop_assert!(w2 <= 3 * w1 + 100_000, "doubling the input: {w1} -> {w2} steps");
    }

    /// Arbitrary bytes anywhere in a request never panic.
    #[test]
    fn arbitrary_bytes_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..4096),
        header in proptest::collection::vec(any::<u8>(), 0..256),
        query in "\\PC{0,200}",
    ) {
        let headers = [("user-agent", header.as_slice()), ("cookie", header.as_slice())];
        for content_type in ["application/json", "application/x-www-form-urlencoded", "text/html"] {
            let r = HttpRequest { method: "GET", path: &query, query: &query, headers: &headers, body: &body, content_type: Some(content_type) };
            let verdict = Inspector::default().inspect(&r);
            prop_assert!(verdict.findings.len() <= Limits::default().max_findings);
        }
    }
}

#[test]
fn a_one_mebibyte_body_is_inspected_whole_and_a_larger_one_is_cut() {
    let mut body = vec![b'a'; 1024 * 1024 - 64];
    body.extend_from_slice(b" 1' OR '1'='1");
    let verdict = Inspector::default().inspect(&request(&body, "text/plain"));
    assert_eq!(
        verdict.action,
        Action::Block,
        "the end of a 1 MiB body is inspected"
    );

    body.extend(std::iter::repeat_n(b'b', 64 * 1024));
    let verdict = Inspector::default().inspect(&request(&body, "text/plain"));
    assert!(
        verdict
            .findings
            .iter()
            .any(|f| f.rule == "protocol.body-truncated")
    );
    assert_ne!(
        verdict.action,
        Action::Allow,
        "what is not inspected is flagged"
    );
}

#[test]
fn invalid_utf8_is_inspected_not_rejected() {
    let body = b"q=\xff\xfe%ff%fe' OR 1=1--&x=\xc0\xaf";
    let verdict = Inspector::default().inspect(&request(body, "application/x-www-form-urlencoded"));
    assert_eq!(verdict.action, Action::Block);
    let headers = [("user-agent", &b"\xff\xff<script>alert(1)</script>"[..])];
    let r = HttpRequest {
        method: "GET",
        path: "/%ff%fe",
        headers: &headers,
        ..HttpRequest::default()
    };
    assert_eq!(Inspector::default().inspect(&r).action, Action::Block);
    let json = b"{\"a\":\"\xff\xfe\",\"b\":\"<svg onload=alert(1)>\"}";
    assert_eq!(
        Inspector::default()
            .inspect(&request(json, "application/json"))
            .action,
        Action::Block
    );
}

#[test]
fn deeply_nested_json_gets_a_depth_finding_and_its_values_are_still_inspected() {
    let depth = 500_000;
    let mut body = "[".repeat(depth);
    body.push_str("\"1 UNION SELECT password FROM users\"");
    body.push_str(&"]".repeat(depth));
    let verdict = Inspector::default().inspect(&request(body.as_bytes(), "application/json"));
    assert!(
        verdict
            .findings
            .iter()
            .any(|f| f.rule == "protocol.json-depth")
    );
    assert!(
        verdict
            .findings
            .iter()
            .any(|f| f.rule == "sqli.union-select")
    );
    assert_eq!(verdict.action, Action::Block);

    // Unterminated and deep: malformed and deep, both said, no overflow.
    let body = "[".repeat(200_000);
    let verdict = Inspector::default().inspect(&request(body.as_bytes(), "application/json"));
    let rules: Vec<_> = verdict.findings.iter().map(|f| f.rule).collect();
    assert!(
        rules.contains(&"protocol.json-depth") && rules.contains(&"protocol.malformed-body"),
        "{rules:?}"
    );
    assert_eq!(
        verdict.action,
        Action::Block,
        "two protocol warnings add up"
    );

    // Deep objects: every key is a value, so the value limit ends the walk.
    let body = "{\"a\":".repeat(200_000);
    let verdict = Inspector::default().inspect(&request(body.as_bytes(), "application/json"));
    let rules: Vec<_> = verdict.findings.iter().map(|f| f.rule).collect();
    assert!(
        rules.contains(&"protocol.json-depth") && rules.contains(&"protocol.too-many-fields"),
        "{rules:?}"
    );
    assert_eq!(verdict.action, Action::Block);
}

#[test]
fn too_many_fields_stop_at_the_limit_with_a_finding() {
    let config = InspectConfig {
        limits: Limits {
            max_values: 100,
            ..Limits::default()
        },
        ..InspectConfig::default()
    };
    let inspector = Inspector::new(config).expect("config");
    let body: String = (0..1000).map(|i| format!("k{i}=v&")).collect();
    let verdict = inspector.inspect(&request(
        body.as_bytes(),
        "application/x-www-form-urlencoded",
    ));
    assert!(
        verdict
            .findings
            .iter()
            .any(|f| f.rule == "protocol.too-many-fields")
    );
    assert_eq!(verdict.action, Action::Flag);
}
