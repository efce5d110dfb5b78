//! How an [`Inspector`](super::Inspector) is set up: the sensitivity level,
//! the score thresholds, exclusions for fields that legitimately carry code
//! or markup, and the limits that bound the work per request.

use super::Category;
use crate::GuardError;
use serde::{Deserialize, Serialize};

/// How much the inspector looks for, like the Core Rule Set's paranoia
/// levels: each level runs the rules of the levels below it and adds its own.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "u8", into = "u8")]
pub enum Sensitivity {
    /// Level 1, the default: shapes that are attacks and nothing else.
    /// Built for about no false positives on ordinary traffic.
    #[default]
    Low = 1,
    /// Level 2: shorter, more ambiguous shapes. Finds more obfuscated
    /// attacks; expect a few false positives on free text.
    Medium = 2,
    /// Level 3: bare probes and fragments. For sensitive routes where a false
    /// positive costs less than a miss.
    High = 3,
}

impl Sensitivity {
    /// The level number, 1 to 3.
    pub fn level(self) -> u8 {
        self as u8
    }
}

impl TryFrom<u8> for Sensitivity {
    type Error = GuardError;

    fn try_from(level: u8) -> Result<Self, GuardError> {
        match level {
            1 => Ok(Self::Low),
            2 => Ok(Self::Medium),
            3 => Ok(Self::High),
            _ => Err(GuardError::invalid("sensitivity", "must be 1, 2 or 3")),
        }
    }
}

impl From<Sensitivity> for u8 {
    fn from(s: Sensitivity) -> u8 {
        s.level()
    }
}

/// Fields an inspector leaves alone, for some or all categories: a CMS's
/// HTML body, a code snippet field, a SQL console's query.
///
/// Patterns are globs where `*` matches any run of characters:
/// `route = "/api/posts/*"`, `locations = ["body.content", "body.blocks*.html"]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    /// The request paths this applies to (glob); `*` for every path.
    pub route: String,
    /// The methods it applies to; empty for all.
    #[serde(default)]
    pub methods: Vec<String>,
    /// The locations (`query.q`, `body.content`, `header.user-agent`,
    /// `cookie.prefs`, globs allowed); empty for the whole request.
    #[serde(default)]
    pub locations: Vec<String>,
    /// The categories not looked for there; empty for all.
    #[serde(default)]
    pub categories: Vec<Category>,
}

impl Exclusion {
    pub(crate) fn applies_to_route(&self, method: &str, path: &str) -> bool {
        glob(&self.route, path)
            && (self.methods.is_empty()
                || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
    }

    pub(crate) fn excludes(&self, location: &str, category: Category) -> bool {
        (self.locations.is_empty() || self.locations.iter().any(|l| glob(l, location)))
            && (self.categories.is_empty() || self.categories.contains(&category))
    }
}

/// Bounds on the work one request can cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Bytes of the body inspected; the rest is not looked at and the
    /// request gets a `protocol.body-truncated` finding (a flag).
    pub max_body_bytes: usize,
    /// Values (query parameters, fields, headers, cookies) inspected; past it
    /// a `protocol.too-many-fields` finding.
    pub max_values: usize,
    /// JSON nesting followed with field paths; deeper values are still
    /// inspected, under the path at the limit, with a `protocol.json-depth`
    /// finding.
    pub max_json_depth: usize,
    /// Findings reported; the score still counts every finding.
    pub max_findings: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_values: 10_000,
            max_json_depth: 64,
            max_findings: 32,
        }
    }
}

/// An inspector's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InspectConfig {
    /// Which rules run.
    pub sensitivity: Sensitivity,
    /// Score at which a request is flagged (3: one warning).
    pub flag_threshold: u32,
    /// Score at which a request is blocked (5: one critical finding, the
    /// Core Rule Set's default).
    pub block_threshold: u32,
    /// Fields left alone.
    pub exclusions: Vec<Exclusion>,
    /// Work bounds.
    pub limits: Limits,
}

impl Default for InspectConfig {
    fn default() -> Self {
        Self {
            sensitivity: Sensitivity::default(),
            flag_threshold: 3,
            block_threshold: 5,
            exclusions: Vec::new(),
            limits: Limits::default(),
        }
    }
}

impl InspectConfig {
    /// Checks thresholds, limits and exclusions; errors name the field.
    pub fn validate(&self) -> Result<(), GuardError> {
        if self.flag_threshold == 0 {
            return Err(GuardError::invalid("flag_threshold", "must be at least 1"));
        }
        if self.block_threshold < self.flag_threshold {
            return Err(GuardError::invalid(
                "block_threshold",
                "must be at least flag_threshold",
            ));
        }
        let l = &self.limits;
        for (field, value, max) in [
            ("limits.max_body_bytes", l.max_body_bytes, 64 * 1024 * 1024),
            ("limits.max_values", l.max_values, 1_000_000),
            ("limits.max_json_depth", l.max_json_depth, 10_000),
            ("limits.max_findings", l.max_findings, 10_000),
        ] {
            if value == 0 || value > max {
                return Err(GuardError::invalid(field, format!("must be 1 to {max}")));
            }
        }
        for e in &self.exclusions {
            if e.route.is_empty() {
                return Err(GuardError::invalid(
                    "exclusions.route",
                    "must not be empty (use \"*\" for every route)",
                ));
            }
            if e.locations.iter().any(String::is_empty) {
                return Err(GuardError::invalid(
                    "exclusions.locations",
                    "must not contain an empty pattern",
                ));
            }
        }
        Ok(())
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of
/// characters. Linear in practice: the classic greedy matcher with one
/// backtrack point.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shell_patterns_without_classes() {
        assert!(glob("*", ""));
        assert!(glob("/api/posts/*", "/api/posts/12/edit"));
        assert!(!glob("/api/posts/*", "/api/users/1"));
        assert!(glob("body.blocks*.html", "body.blocks[3].html"));
        assert!(glob("query.q", "query.q"));
        assert!(!glob("query.q", "query.qq"));
    }

    #[test]
    fn sensitivity_is_a_level_from_one_to_three() {
        assert_eq!(Sensitivity::try_from(2).ok(), Some(Sensitivity::Medium));
        assert!(Sensitivity::try_from(0).is_err());
        assert!(Sensitivity::try_from(4).is_err());
        assert_eq!(Sensitivity::default().level(), 1);
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = InspectConfig::default();
        assert!(c.validate().is_ok());
        c.block_threshold = 1;
        assert!(matches!(
            c.validate(),
            Err(GuardError::Invalid {
                field: "block_threshold",
                ..
            })
        ));
        let mut c = InspectConfig::default();
        c.limits.max_json_depth = 0;
        assert!(matches!(
            c.validate(),
            Err(GuardError::Invalid {
                field: "limits.max_json_depth",
                ..
            })
        ));
    }
}
