//! Findings, their scores, and the verdict they add up to, as in the OWASP
//! Core Rule Set's anomaly scoring: every finding adds the points of its
//! severity, and the total decides. One weak signal flags a request; a
//! strong one, or several weak ones together, block it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What kind of attack a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// SQL injection.
    Sqli,
    /// Cross-site scripting.
    Xss,
    /// Path traversal and local file inclusion.
    PathTraversal,
    /// OS command injection (and code evaluation that runs commands).
    Cmdi,
    /// The request itself is abnormal: a body too large or too deeply nested
    /// to inspect whole, more fields than the limit.
    Protocol,
}

impl Category {
    /// The name used in findings and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqli => "sqli",
            Self::Xss => "xss",
            Self::PathTraversal => "path_traversal",
            Self::Cmdi => "cmdi",
            Self::Protocol => "protocol",
        }
    }

    /// Every category.
    pub const ALL: [Category; 5] = [
        Self::Sqli,
        Self::Xss,
        Self::PathTraversal,
        Self::Cmdi,
        Self::Protocol,
    ];
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much a finding weighs, with the Core Rule Set's points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// 2 points: worth recording, not acting on alone.
    Notice,
    /// 3 points: flags a request alone.
    Warning,
    /// 4 points: flags alone; blocks with any other finding.
    Error,
    /// 5 points: blocks alone.
    Critical,
}

impl Severity {
    /// The points this severity adds to the score.
    pub fn points(self) -> u32 {
        match self {
            Self::Notice => 2,
            Self::Warning => 3,
            Self::Error => 4,
            Self::Critical => 5,
        }
    }
}

/// What to do with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing found, or too little to act on.
    Allow,
    /// Let it through, but record it and watch the sender.
    Flag,
    /// Refuse it.
    Block,
}

impl Action {
    /// `allow`, `flag` or `block`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Flag => "flag",
            Self::Block => "block",
        }
    }
}

/// One thing a detector found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The kind of attack.
    pub category: Category,
    /// The rule that matched, stable across versions (`sqli.union-select`).
    pub rule: &'static str,
    /// Where in the request: `query.id`, `body.user.name`, `header.user-agent`,
    /// `cookie.session`, `path`.
    pub location: String,
    /// The decoded text that matched, at most [`EVIDENCE_CHARS`] characters,
    /// or `[redacted]` where the value may be a secret.
    pub evidence: String,
    /// Its weight.
    pub severity: Severity,
}

/// The most characters of a value quoted as evidence.
pub const EVIDENCE_CHARS: usize = 64;

/// What replaces the evidence of values that may be secrets.
pub const REDACTED: &str = "[redacted]";

/// The outcome of inspecting a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// What to do.
    pub action: Action,
    /// The sum of the findings' points.
    pub score: u32,
    /// What was found, strongest first.
    pub findings: Vec<Finding>,
    /// Units of work done (bytes passed over by decoders and detectors): a
    /// measure that grows linearly with the request, for tests and metrics.
    #[serde(skip)]
    pub work: u64,
}

impl Verdict {
    /// The verdict for `score` (the points of every finding, including any
    /// left out of `findings` by the limit) against the thresholds.
    pub(crate) fn new(
        mut findings: Vec<Finding>,
        score: u32,
        flag_threshold: u32,
        block_threshold: u32,
        work: u64,
    ) -> Self {
        let action = if score >= block_threshold {
            Action::Block
        } else if score >= flag_threshold {
            Action::Flag
        } else {
            Action::Allow
        };
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        Self {
            action,
            score,
            findings,
            work,
        }
    }

    /// Whether any finding is of `category`.
    pub fn has(&self, category: Category) -> bool {
        self.findings.iter().any(|f| f.category == category)
    }
}

/// The evidence for `text[start..end]`: at most [`EVIDENCE_CHARS`]
/// characters from the start of the match, control characters shown as `?`,
/// an ellipsis when cut.
pub(crate) fn evidence(text: &str, start: usize, end: usize) -> String {
    let start = floor_char_boundary(text, start.min(text.len()));
    let end = floor_char_boundary(text, end.min(text.len())).max(start);
    let matched = &text[start..end];
    let mut out: String = matched
        .chars()
        .take(EVIDENCE_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if matched.chars().nth(EVIDENCE_CHARS).is_some() {
        out.push('…');
    }
    out
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(severity: Severity) -> Finding {
        Finding {
            category: Category::Sqli,
            rule: "test",
            location: "query.q".into(),
            evidence: String::new(),
            severity,
        }
    }

    #[test]
    fn scores_add_up_to_the_action() {
        let v = |s: Vec<Severity>| {
            let findings: Vec<Finding> = s.into_iter().map(finding).collect();
            let score = findings.iter().map(|f| f.severity.points()).sum();
            Verdict::new(findings, score, 3, 5, 0).action
        };
        assert_eq!(v(vec![]), Action::Allow);
        assert_eq!(v(vec![Severity::Notice]), Action::Allow);
        assert_eq!(v(vec![Severity::Warning]), Action::Flag);
        assert_eq!(v(vec![Severity::Error]), Action::Flag);
        assert_eq!(v(vec![Severity::Critical]), Action::Block);
        assert_eq!(v(vec![Severity::Notice, Severity::Warning]), Action::Block);
    }

    #[test]
    fn evidence_is_cut_on_character_boundaries_and_hides_controls() {
        let long = "é".repeat(100);
        let e = evidence(&long, 1, long.len());
        assert_eq!(e.chars().count(), EVIDENCE_CHARS + 1);
        assert!(e.ends_with('…'));
        assert_eq!(evidence("a\nb\u{0}c", 0, 5), "a?b?c");
        assert_eq!(evidence("abc", 5, 9), "");
    }
}
