//! Request inspection: SQL injection, cross-site scripting, path traversal
//! and OS command injection in the values an application reads from a
//! request, with a verdict scored like the OWASP Core Rule Set's.
//!
//! The request is split into values with their locations ([`fields`]):
//! path segments, query pairs, headers and cookies, and the body field by
//! field (JSON, form) or whole. Each value is decoded the way a server and a
//! browser would ([`decode`]) and then goes through the detectors:
//! - [`sql`]: a SQL tokenizer whose folded token sequences are matched
//!   against a designed set of fingerprints (not regular expressions over
//!   the text), in the three contexts a value can sit in a query;
//! - [`xss`]: an HTML scanner that parses tags and attributes the way a
//!   browser's tokenizer does, plus the attribute, URL and script contexts;
//! - [`traversal`]: `../` in every encoding, and sensitive file paths;
//! - [`cmdi`]: shell separators and substitutions followed by a command.
//!
//! Work is bounded: every step is one pass over its input, the decoding
//! rounds are fixed, the body is cut at [`Limits::max_body_bytes`], and JSON
//! is walked without recursion. Evidence is cut short and never quotes a
//! header, cookie or field that may hold a secret.

mod config;
pub mod decode;
mod fields;
pub mod sql;
mod verdict;

mod cmdi;
mod prefilter;
mod scratch;
mod steps;
mod traversal;
mod xss;

pub use config::{Exclusion, InspectConfig, Limits, Sensitivity};
pub use verdict::{Action, Category, EVIDENCE_CHARS, Finding, REDACTED, Severity, Verdict};

use crate::GuardError;
use decode::Encoding;
use std::borrow::Cow;
use std::sync::Arc;

/// A request to inspect. Everything is as received: the path and query
/// still percent-encoded, header values and the body as bytes (they need not
/// be UTF-8).
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: &'a str,
    /// Header names (any case) and values.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body.
    pub body: &'a [u8],
    /// The body's media type, when known (`application/json; charset=utf-8`).
    pub content_type: Option<&'a str>,
}

/// What a detector found in one decoded value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub category: Category,
    pub rule: &'static str,
    pub severity: Severity,
    /// Byte range of the evidence in the text the detector saw.
    pub span: (usize, usize),
}

impl Hit {
    pub(crate) fn new(
        category: Category,
        rule: &'static str,
        severity: Severity,
        span: (usize, usize),
    ) -> Self {
        Self {
            category,
            rule,
            severity,
            span,
        }
    }
}

/// Inspects requests with one configuration. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Inspector {
    config: Arc<InspectConfig>,
}

impl Default for Inspector {
    fn default() -> Self {
        Self {
            config: Arc::new(InspectConfig::default()),
        }
    }
}

/// Headers that carry protocol details, not application input.
const SKIPPED_HEADERS: &[&str] = &[
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "connection",
    "content-length",
    "content-type",
    "dnt",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "pragma",
    "priority",
    "te",
    "traceparent",
    "tracestate",
    "upgrade",
    "upgrade-insecure-requests",
    "x-request-id",
];

/// For each length below 32, bit `j` set when [`SKIPPED_HEADERS`]`[j]` has
/// it: a header name is compared only with the names of its length.
static SKIPPED_BY_LENGTH: [u32; 32] = {
    assert!(SKIPPED_HEADERS.len() <= 32);
    let mut table = [0u32; 32];
    let mut j = 0;
    while j < SKIPPED_HEADERS.len() {
        assert!(SKIPPED_HEADERS[j].len() < 32);
        table[SKIPPED_HEADERS[j].len()] |= 1 << j;
        j += 1;
    }
    table
};

/// Whether `name` is one of [`SKIPPED_HEADERS`], in any case.
fn is_skipped_header(name: &str) -> bool {
    let Some(&by_length) = SKIPPED_BY_LENGTH.get(name.len()) else {
        return false;
    };
    let mut pending = by_length;
    while pending != 0 {
        if name.eq_ignore_ascii_case(SKIPPED_HEADERS[pending.trailing_zeros() as usize]) {
            return true;
        }
        pending &= pending - 1;
    }
    false
}

/// Words in a header or field name that say its value may be a secret:
/// its evidence is never quoted.
const SECRET_WORDS: &[&str] = &[
    "auth",
    "pass",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "credential",
    "session",
    "cookie",
    "cvv",
    "ssn",
    "private",
];

fn is_secret(location: &str) -> bool {
    let lower = location.to_ascii_lowercase();
    lower.starts_with("cookie.") || SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// A value as found: bytes, or text already known to be UTF-8 (a JSON
/// string), which is not checked again.
#[derive(Debug, Clone, Copy)]
enum Input<'a> {
    Bytes(&'a [u8]),
    Text(&'a str),
}

impl Input<'_> {
    fn bytes(&self) -> &[u8] {
        match *self {
            Self::Bytes(b) => b,
            Self::Text(t) => t.as_bytes(),
        }
    }
}

impl<'a> From<&'a [u8]> for Input<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Self::Bytes(bytes)
    }
}

impl<'a> From<&'a str> for Input<'a> {
    fn from(text: &'a str) -> Self {
        Self::Text(text)
    }
}

/// Which detectors run on a value.
#[derive(Debug, Clone, Copy)]
struct Detectors {
    sqli: bool,
    xss: bool,
    traversal: bool,
    cmdi: bool,
}

impl Detectors {
    fn any(self) -> bool {
        self.sqli || self.xss || self.traversal || self.cmdi
    }
}

/// Where a value is in the request. Rendered as a string only when needed
/// (an exclusion to check, a finding to report): most values have neither.
#[derive(Debug, Clone, Copy)]
enum Location<'a> {
    /// Already rendered (`path`, `body.user.name`).
    Fixed(&'a str),
    /// `header.<name>`, the name in any case.
    Header(&'a str),
    /// `<prefix>.<key>`, the key still encoded with the encoding given.
    Pair(&'a str, &'a [u8], Encoding),
    /// A field of a JSON body.
    Json(fields::JsonPath<'a>),
}

impl Location<'_> {
    fn render(&self) -> Cow<'_, str> {
        match *self {
            Self::Fixed(s) => Cow::Borrowed(s),
            Self::Header(name) => Cow::Owned(format!(
                "header.{}",
                fields::clean_key(&name.to_ascii_lowercase())
            )),
            Self::Pair(prefix, key, encoding) => {
                let name = decode::decode(key, encoding).text;
                Cow::Owned(format!("{prefix}.{}", fields::clean_key(&name)))
            }
            Self::Json(path) => Cow::Owned(path.render()),
        }
    }
}

const ALL: Detectors = Detectors {
    sqli: true,
    xss: true,
    traversal: true,
    cmdi: true,
};

impl Inspector {
    /// An inspector with `config`, checked first.
    pub fn new(config: InspectConfig) -> Result<Self, GuardError> {
        config.validate()?;
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &InspectConfig {
        &self.config
    }

    /// Inspects `request` at the configured sensitivity.
    pub fn inspect(&self, request: &HttpRequest<'_>) -> Verdict {
        self.inspect_at(request, self.config.sensitivity)
    }

    /// Inspects `request` at `sensitivity`.
    pub fn inspect_at(&self, request: &HttpRequest<'_>, sensitivity: Sensitivity) -> Verdict {
        self.inspect_filtered(request, sensitivity, true)
    }

    /// Inspects `request`, with the prefilter and the decoding fast path
    /// ([`prefilter`]) or without them (for the tests that compare both).
    fn inspect_filtered(
        &self,
        request: &HttpRequest<'_>,
        sensitivity: Sensitivity,
        prefilter: bool,
    ) -> Verdict {
        let mut scan = Scan::new(&self.config, sensitivity, request.method, request.path);
        scan.prefilter = prefilter;
        scan.request(request);
        scan.finish()
    }

    /// Inspects one parameter value as it would arrive in a query string
    /// (still URL-encoded); its location is `value`.
    pub fn inspect_value(&self, raw: &str, sensitivity: Sensitivity) -> Verdict {
        self.inspect_value_filtered(raw, sensitivity, true)
    }

    fn inspect_value_filtered(
        &self,
        raw: &str,
        sensitivity: Sensitivity,
        prefilter: bool,
    ) -> Verdict {
        let mut scan = Scan::new(&self.config, sensitivity, "GET", "/");
        scan.prefilter = prefilter;
        scan.value(
            Location::Fixed("value"),
            raw.as_bytes(),
            Encoding::Form,
            ALL,
        );
        scan.finish()
    }
}

/// One request's inspection in progress.
struct Scan<'c> {
    steps_at_start: u64,
    config: &'c InspectConfig,
    level: u8,
    exclusions: Vec<&'c config::Exclusion>,
    findings: Vec<Finding>,
    score: u32,
    values: usize,
    too_many: bool,
    work: u64,
    hits: Vec<Hit>,
    /// Whether the prefilter and the decoding fast path are on (always, but
    /// for the tests that compare the results without them).
    prefilter: bool,
}

impl<'c> Scan<'c> {
    fn new(config: &'c InspectConfig, sensitivity: Sensitivity, method: &str, path: &str) -> Self {
        Self {
            steps_at_start: steps::now(),
            config,
            level: sensitivity.level(),
            exclusions: config
                .exclusions
                .iter()
                .filter(|e| e.applies_to_route(method, path))
                .collect(),
            findings: Vec::new(),
            score: 0,
            values: 0,
            too_many: false,
            work: 0,
            hits: Vec::new(),
            prefilter: true,
        }
    }

    fn finish(mut self) -> Verdict {
        if self.too_many {
            self.protocol(
                "protocol.too-many-fields",
                "request",
                format!("more than {} values", self.config.limits.max_values),
            );
        }
        Verdict::new(
            self.findings,
            self.score,
            self.config.flag_threshold,
            self.config.block_threshold,
            self.work + steps::now().wrapping_sub(self.steps_at_start),
        )
    }

    fn add(&mut self, finding: Finding) {
        self.score = self.score.saturating_add(finding.severity.points());
        if self.findings.len() < self.config.limits.max_findings {
            self.findings.push(finding);
        }
    }

    fn protocol(&mut self, rule: &'static str, location: &str, evidence: String) {
        if self
            .exclusions
            .iter()
            .any(|e| e.excludes(location, Category::Protocol))
        {
            return;
        }
        self.add(Finding {
            category: Category::Protocol,
            rule,
            location: location.to_owned(),
            evidence,
            severity: Severity::Warning,
        });
    }

    fn request(&mut self, r: &HttpRequest<'_>) {
        self.path(r.path);
        for (key, value) in fields::pairs(r.query.as_bytes()) {
            if !self.pair("query", key, value, Encoding::Form) {
                return;
            }
        }
        for &(name, value) in r.headers {
            if is_skipped_header(name)
                || name
                    .as_bytes()
                    .get(..4)
                    .is_some_and(|p| p.eq_ignore_ascii_case(b"sec-"))
            {
                continue;
            }
            if name.eq_ignore_ascii_case("cookie") {
                for (key, value) in fields::cookies(value) {
                    if !self.pair("cookie", key, value, Encoding::Url) {
                        return;
                    }
                }
                continue;
            }
            if !self.value(Location::Header(name), value, Encoding::Url, ALL) {
                return;
            }
        }
        self.body(r.body, r.content_type.unwrap_or(""));
    }

    fn path(&mut self, path: &str) {
        let only_traversal = Detectors {
            sqli: false,
            xss: false,
            traversal: true,
            cmdi: false,
        };
        let location = Location::Fixed("path");
        if !self.value(location, path.as_bytes(), Encoding::Url, only_traversal) {
            return;
        }
        let others = Detectors {
            traversal: false,
            ..ALL
        };
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            if !self.value(location, segment.as_bytes(), Encoding::Url, others) {
                return;
            }
        }
    }

    /// A `key=value` pair under `prefix`: the key and the value are both
    /// inspected. False once the value limit is reached.
    fn pair(&mut self, prefix: &str, key: &[u8], value: &[u8], encoding: Encoding) -> bool {
        let location = Location::Pair(prefix, key, encoding);
        self.value(location, key, encoding, ALL) && self.value(location, value, encoding, ALL)
    }

    fn body(&mut self, body: &[u8], content_type: &str) {
        if body.is_empty() {
            return;
        }
        let limit = self.config.limits.max_body_bytes;
        let body = if body.len() > limit {
            self.protocol(
                "protocol.body-truncated",
                "body",
                format!("{} bytes, {limit} inspected", body.len()),
            );
            &body[..limit]
        } else {
            body
        };
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media.ends_with("json") || media.ends_with("+json") {
            let max_depth = self.config.limits.max_json_depth;
            let walk = fields::walk_json(body, "body", max_depth, |location, text, _| {
                self.value(Location::Json(location), text, Encoding::Text, ALL)
            });
            if walk.too_deep {
                self.protocol(
                    "protocol.json-depth",
                    "body",
                    format!("nested deeper than {max_depth}"),
                );
            }
            if walk.malformed {
                self.protocol(
                    "protocol.malformed-body",
                    "body",
                    "not well-formed JSON".into(),
                );
                self.value(Location::Fixed("body"), body, Encoding::Text, ALL);
            }
        } else if media == "application/x-www-form-urlencoded" {
            for (key, value) in fields::pairs(body) {
                if !self.pair("body", key, value, Encoding::Form) {
                    return;
                }
            }
        } else {
            self.value(Location::Fixed("body"), body, Encoding::Text, ALL);
        }
    }

    /// Decodes and inspects one value. False once the value limit is reached.
    /// Inlined into its callers (the JSON walk, the pairs, the headers):
    /// most values are plain tokens turned down in a few instructions, and
    /// the call's frame would cost about as much.
    #[inline(always)]
    fn value<'v>(
        &mut self,
        location: Location<'_>,
        raw: impl Into<Input<'v>>,
        encoding: Encoding,
        detectors: Detectors,
    ) -> bool {
        self.input(location, raw.into(), encoding, detectors)
    }

    #[inline]
    fn input(
        &mut self,
        location: Location<'_>,
        input: Input<'_>,
        encoding: Encoding,
        detectors: Detectors,
    ) -> bool {
        let raw = input.bytes();
        if self.values >= self.config.limits.max_values {
            self.too_many = true;
            return false;
        }
        self.values += 1;
        if raw.is_empty() || !detectors.any() {
            return true;
        }
        // Most values of an ordinary request are plain tokens (keys, ids,
        // codes): they are turned down here, in the caller, without the
        // call and frame of the full inspection. The same test, in the same
        // order, as `inspect_input` makes without exclusions (with them,
        // `inspect_input` decides, after the exclusions).
        let mut mask = None;
        if self.prefilter && self.exclusions.is_empty() {
            let classes = prefilter::classes(raw);
            if self.level == 1 && prefilter::is_plain_token(raw, classes) {
                self.work += raw.len() as u64;
                return true;
            }
            mask = Some(classes);
        }
        self.inspect_input(location, input, encoding, detectors, mask)
    }

    /// The rest of [`Self::input`] for a value that is not empty: `mask`
    /// holds the classes of its bytes when [`Self::input`] computed them.
    #[inline(never)]
    fn inspect_input(
        &mut self,
        location: Location<'_>,
        input: Input<'_>,
        encoding: Encoding,
        detectors: Detectors,
        mask: Option<u32>,
    ) -> bool {
        let raw = input.bytes();
        // The location is only needed here when an exclusion may apply.
        let rendered = (!self.exclusions.is_empty()).then(|| location.render());
        let active = match &rendered {
            None => detectors,
            Some(location) => {
                let wanted = |category: Category, on: bool| {
                    on && !self
                        .exclusions
                        .iter()
                        .any(|e| e.excludes(location, category))
                };
                Detectors {
                    sqli: wanted(Category::Sqli, detectors.sqli),
                    xss: wanted(Category::Xss, detectors.xss),
                    traversal: wanted(Category::PathTraversal, detectors.traversal),
                    cmdi: wanted(Category::Cmdi, detectors.cmdi),
                }
            }
        };
        if !active.any() {
            return true;
        }
        // Whether SQL's unquoted context could match (the prefilter may know
        // it cannot: only a quote opened the SQL gate).
        let mut sql_contexts = sql::Contexts::All;
        // The byte classes of the decoded text, when the prefilter has them.
        let (text, had_nul, active, text_mask) = if self.prefilter {
            let mask = match mask {
                // `input` already turned down plain tokens.
                Some(mask) => mask,
                None => {
                    let mask = prefilter::classes(raw);
                    if self.level == 1 && prefilter::is_plain_token(raw, mask) {
                        self.work += raw.len() as u64;
                        return true;
                    }
                    mask
                }
            };
            // ASCII with nothing to decode: `decode` would return it as is.
            let plain = mask & (prefilter::PERCENT | prefilter::HIGH | prefilter::NUL) == 0
                && !(encoding == Encoding::Form && mask & prefilter::PLUS != 0);
            let as_is = match input {
                _ if !plain => None,
                Input::Text(text) => Some(text),
                Input::Bytes(bytes) => std::str::from_utf8(bytes).ok(),
            };
            let (text, had_nul, mask) = match as_is {
                Some(text) => {
                    self.work += raw.len() as u64;
                    (Cow::Borrowed(text), false, mask)
                }
                None => {
                    let decoded = decode::decode(raw, encoding);
                    self.work += decoded.work;
                    let mask = prefilter::classes(decoded.text.as_bytes());
                    (Cow::Owned(decoded.text), decoded.had_nul, mask)
                }
            };
            let gates = prefilter::Gates::of(text.as_bytes(), mask, self.level, active.sqli);
            sql_contexts = sql::Contexts::Prefiltered {
                bare: gates.sqli_bare,
                strong: gates.sqli_strong,
            };
            let active = Detectors {
                sqli: active.sqli && gates.sqli,
                xss: active.xss && gates.xss,
                traversal: active.traversal && gates.traversal,
                cmdi: active.cmdi && gates.cmdi,
            };
            if !active.any() {
                return true;
            }
            (text, had_nul, active, Some(mask))
        } else {
            if self.level == 1 && is_plain_token(raw) {
                self.work += raw.len() as u64;
                return true;
            }
            let decoded = decode::decode(raw, encoding);
            self.work += decoded.work;
            (Cow::Owned(decoded.text), decoded.had_nul, active, None)
        };
        let text = text.as_ref();
        // Exact (a bit per byte class present), so the detectors' first tests
        // read it instead of the bytes.
        let mask = text_mask.unwrap_or_else(|| prefilter::classes(text.as_bytes()));
        let level = self.level;
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        let mut found: Vec<(Hit, String)> = Vec::new();
        let mut collect = |hits: &mut Vec<Hit>, from: usize, text: &str| {
            for hit in &hits[from..] {
                found.push((*hit, verdict::evidence(text, hit.span.0, hit.span.1)));
            }
        };
        if active.sqli {
            self.work += sql::detect_in(text, level, &mut hits, sql_contexts);
            collect(&mut hits, 0, text);
            if mask & prefilter::SLASH != 0 && text.contains("/*") {
                // Comments inside keywords (`UN/**/ION`), for back ends
                // that strip comments before the query reaches the database.
                let stripped = strip_block_comments(text);
                let from = hits.len();
                self.work += sql::detect(&stripped, level, &mut hits);
                collect(&mut hits, from, &stripped);
            }
        }
        if active.xss {
            let from = hits.len();
            self.work += xss::detect_classified(text, mask, level, &mut hits);
            collect(&mut hits, from, text);
            // Without `&` there is nothing to unescape.
            let unescaped = if mask & prefilter::AMP != 0 {
                decode::html_unescape(text)
            } else {
                Cow::Borrowed(text)
            };
            if unescaped != text {
                self.work += text.len() as u64;
                let from = hits.len();
                self.work += xss::detect(&unescaped, level, &mut hits);
                collect(&mut hits, from, &unescaped);
            }
        }
        if active.traversal {
            let from = hits.len();
            self.work += traversal::detect_classified(text, mask, had_nul, level, &mut hits);
            collect(&mut hits, from, text);
        }
        if active.cmdi {
            let from = hits.len();
            self.work += cmdi::detect_classified(text, mask, level, &mut hits);
            collect(&mut hits, from, text);
        }
        self.hits = hits;
        if found.is_empty() {
            return true;
        }
        let location = rendered.unwrap_or_else(|| location.render());
        let secret = is_secret(&location);
        let mut seen: Vec<&'static str> = Vec::new();
        for (hit, evidence) in found {
            if seen.contains(&hit.rule) {
                continue;
            }
            seen.push(hit.rule);
            self.add(Finding {
                category: hit.category,
                rule: hit.rule,
                location: location.clone().into_owned(),
                evidence: if secret {
                    REDACTED.to_owned()
                } else {
                    evidence
                },
                severity: hit.severity,
            });
        }
        true
    }
}

/// A short value of letters, digits, `_`, `.` and single `-` (an id, a
/// code, a name, a number): no level 1 rule can match it, so it is not
/// decoded or scanned. Most keys and many values of ordinary requests are.
fn is_plain_token(raw: &[u8]) -> bool {
    raw.len() <= 256
        && raw
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !raw.windows(2).any(|w| w == b".." || w == b"--")
}

/// `text` without its `/* ... */` comments (an unterminated one runs to the end).
fn strip_block_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find("*/") {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_block_comments_including_an_open_one() {
        assert_eq!(
            strip_block_comments("UN/**/ION SEL/*x*/ECT"),
            "UNION SELECT"
        );
        assert_eq!(strip_block_comments("a/*b"), "a");
    }

    /// The same verdict, findings and all, with the prefilter and without.
    fn same(a: &Verdict, b: &Verdict) -> bool {
        a.action == b.action && a.score == b.score && a.findings == b.findings
    }

    const LEVELS: [Sensitivity; 3] = [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High];

    /// Every value of the labelled corpus, at every level: the prefilter and
    /// the decoding fast path change no finding.
    #[test]
    fn the_prefilter_agrees_with_the_full_scan_on_the_corpus() {
        let inspector = Inspector::default();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/attacks");
        let mut checked = 0;
        for label in ["sqli", "xss", "path_traversal", "cmdi", "benign"] {
            let path = dir.join(format!("{label}.jsonl"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
                let sample = v["input"].as_str().expect("input");
                for level in LEVELS {
                    let fast = inspector.inspect_value_filtered(sample, level, true);
                    let full = inspector.inspect_value_filtered(sample, level, false);
                    assert!(
                        same(&fast, &full),
                        "{label} level {level:?}: {sample:?}\n{fast:?}\n{full:?}"
                    );
                    // As decoded text in a JSON body too (no URL decoding first).
                    let body = serde_json::json!({ "v": sample }).to_string();
                    let request = HttpRequest {
                        method: "POST",
                        path: "/",
                        query: "",
                        headers: &[],
                        body: body.as_bytes(),
                        content_type: Some("application/json"),
                    };
                    let fast = inspector.inspect_filtered(&request, level, true);
                    let full = inspector.inspect_filtered(&request, level, false);
                    assert!(
                        same(&fast, &full),
                        "{label} level {level:?} in JSON: {sample:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 50_000, "{checked}");
    }

    /// Pieces of attacks and of ordinary text, for random values close to
    /// every gate's edge.
    const PIECES: &[&str] = &[
        "'",
        "\"",
        ";",
        "(",
        ")",
        "#",
        "--",
        "-",
        "/*",
        "*/",
        "/",
        "\\",
        "|",
        "||",
        "&",
        "&&",
        "<",
        ">",
        ":",
        "=",
        "`",
        "{",
        "$",
        "$(",
        "..",
        ".",
        "%",
        "%25",
        "%2e",
        "%27",
        "+",
        "\n",
        "é",
        "\u{ff1c}",
        "\u{200b}",
        "\0",
        "&lt;",
        "&#x3c;",
        " ",
        "1",
        "0x",
        "a",
        "or",
        "and",
        "union",
        "select",
        "sleep",
        "order by",
        "script",
        "onload",
        "alert",
        "javascript",
        "etc/passwd",
        "id",
        "cat",
        "ls",
        "php://",
        "x.",
        "_",
        "bin/",
        "/bin/sh",
        "/usr/BIN/id",
        "cmd",
        "CMD.exe",
        "cmd /c",
        "powershell -",
        "%comspec%",
        "%COMSPEC%",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Random values, in the query, a header, a cookie and a JSON body, at
        /// every level: the same verdict with the prefilter and without.
        #[test]
        fn the_prefilter_agrees_with_the_full_scan_on_random_requests(
            parts in proptest::collection::vec(0..PIECES.len(), 0..14),
            level in 0..3usize,
        ) {
            let value: String = parts.iter().map(|&i| PIECES[i]).collect();
            let inspector = Inspector::default();
            let level = LEVELS[level];
            let fast = inspector.inspect_value_filtered(&value, level, true);
            let full = inspector.inspect_value_filtered(&value, level, false);
            proptest::prop_assert!(same(&fast, &full), "{:?}\n{:?}\n{:?}", value, fast, full);
            let body = serde_json::json!({ "k": value, &value: [value] }).to_string();
            let query = format!("q={value}&{value}");
            let headers: [(&str, &[u8]); 3] = [
                ("User-Agent", value.as_bytes()),
                ("Cookie", value.as_bytes()),
                ("X-Custom", value.as_bytes()),
            ];
            let request = HttpRequest {
                method: "POST",
                path: &format!("/a/{value}"),
                query: &query,
                headers: &headers,
                body: body.as_bytes(),
                content_type: Some("application/json"),
            };
            let fast = inspector.inspect_filtered(&request, level, true);
            let full = inspector.inspect_filtered(&request, level, false);
            proptest::prop_assert!(same(&fast, &full), "{:?}\n{:?}\n{:?}", value, fast, full);
        }
    }

    proptest::proptest! {
        /// The length-indexed test against the list it indexes.
        #[test]
        fn skipped_headers_are_found_by_length(
            pick in 0..SKIPPED_HEADERS.len(),
            upper: bool,
            other in "[a-zA-Z-]{0,40}",
        ) {
            let listed = if upper {
                SKIPPED_HEADERS[pick].to_ascii_uppercase()
            } else {
                SKIPPED_HEADERS[pick].to_owned()
            };
            for name in [listed.as_str(), other.as_str()] {
                proptest::prop_assert_eq!(
                    is_skipped_header(name),
                    SKIPPED_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h))
                );
            }
        }
    }

    #[test]
    fn secret_locations_are_recognised() {
        for l in [
            "header.authorization",
            "cookie.theme",
            "body.user.password",
            "query.access_token",
        ] {
            assert!(is_secret(l), "{l}");
        }
        assert!(!is_secret("query.q"));
    }
}
