//! The syntax of names, actions and resources, and how patterns match them.
//!
//! Action patterns: `document:read` (exact), `document:*` (every action on a
//! resource type), `*:read` (one verb on every type), `*` or `*:*` (anything).
//! A plain name without `:` (`read`, as in Casbin policies) is matched exactly.
//!
//! Resource patterns: `*` (anything), `project/42` (exactly that resource),
//! `project/42/*` (everything below it, at any depth, not `project/42` itself).
//! A `*` anywhere else is rejected rather than guessed at.

use crate::error::{AuthzError, Result, excerpt};
use serde::{Deserialize, Serialize};

/// Validates a name (tenant, subject, role, binding id): non-empty, at most
/// `max_bytes` long, no control characters.
pub(crate) fn validate_name(what: &'static str, value: &str, max_bytes: usize) -> Result<()> {
    if value.is_empty() {
        return Err(AuthzError::EmptyName { what });
    }
    if value.len() > max_bytes {
        return Err(AuthzError::InvalidName {
            what,
            value: excerpt(value),
            reason: "longer than the configured maximum",
        });
    }
    if value.chars().any(char::is_control) {
        return Err(AuthzError::InvalidName {
            what,
            value: excerpt(value),
            reason: "contains control characters",
        });
    }
    Ok(())
}

/// Validates a concrete action or resource in a request: a valid name with no
/// `*`, since a request names one thing and a wildcard there is a caller bug.
pub(crate) fn validate_concrete(what: &'static str, value: &str, max_bytes: usize) -> Result<()> {
    validate_name(what, value, max_bytes)?;
    if value.contains('*') {
        return Err(AuthzError::InvalidName {
            what,
            value: excerpt(value),
            reason: "a request names one concrete value; `*` is only allowed in policies",
        });
    }
    Ok(())
}

/// A parsed action pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ActionPattern {
    /// `*` or `*:*`.
    Any,
    /// `type:*`: every action on one resource type.
    Type(Box<str>),
    /// `*:verb`: one verb on every resource type.
    Verb(Box<str>),
    /// One exact action.
    Exact(Box<str>),
}

impl ActionPattern {
    /// Parses an action pattern, rejecting `*` in any position other than a
    /// whole side of the `type:verb` split.
    pub fn parse(pattern: &str, max_bytes: usize) -> Result<Self> {
        validate_name("action", pattern, max_bytes)?;
        let malformed = |reason| AuthzError::MalformedPattern {
            what: "action",
            pattern: excerpt(pattern),
            reason,
        };
        if pattern == "*" || pattern == "*:*" {
            return Ok(Self::Any);
        }
        match pattern.split_once(':') {
            Some((ty, verb)) => {
                if ty.is_empty() || verb.is_empty() {
                    return Err(malformed("both sides of `:` must be non-empty"));
                }
                match (ty == "*", verb == "*") {
                    (false, true) if !ty.contains('*') => Ok(Self::Type(ty.into())),
                    (true, false) if !verb.contains('*') => Ok(Self::Verb(verb.into())),
                    (false, false) if !pattern.contains('*') => Ok(Self::Exact(pattern.into())),
                    _ => Err(malformed("`*` must be a whole side of `type:action`")),
                }
            }
            None if pattern.contains('*') => Err(malformed("`*` must be the whole pattern")),
            None => Ok(Self::Exact(pattern.into())),
        }
    }

    /// Whether a concrete action matches.
    pub fn matches(&self, action: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(exact) => **exact == *action,
            Self::Type(ty) => action.split_once(':').is_some_and(|(t, _)| t == &**ty),
            Self::Verb(verb) => action.split_once(':').is_some_and(|(_, v)| v == &**verb),
        }
    }
}

impl std::fmt::Display for ActionPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Type(ty) => write!(f, "{ty}:*"),
            Self::Verb(verb) => write!(f, "*:{verb}"),
            Self::Exact(exact) => f.write_str(exact),
        }
    }
}

/// A parsed resource pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ResourcePattern {
    /// `*`: every resource in the tenant.
    Any,
    /// One exact resource.
    Exact(Box<str>),
    /// `prefix/*`: everything strictly below `prefix`. Stored with the
    /// trailing `/` so matching is one `starts_with`.
    Subtree(Box<str>),
}

impl ResourcePattern {
    /// Parses a resource pattern.
    pub fn parse(pattern: &str, max_bytes: usize) -> Result<Self> {
        validate_name("resource", pattern, max_bytes)?;
        if pattern == "*" {
            return Ok(Self::Any);
        }
        let malformed = |reason| AuthzError::MalformedPattern {
            what: "resource",
            pattern: excerpt(pattern),
            reason,
        };
        match pattern.strip_suffix("/*") {
            Some("") => Err(malformed("`/*` needs a prefix; use `*` for everything")),
            Some(prefix) if prefix.contains('*') => {
                Err(malformed("`*` is only allowed as the last segment"))
            }
            Some(prefix) => Ok(Self::Subtree(format!("{prefix}/").into())),
            None if pattern.contains('*') => {
                Err(malformed("`*` is only allowed as the last segment"))
            }
            None => Ok(Self::Exact(pattern.into())),
        }
    }

    /// Whether a concrete resource matches.
    #[inline]
    pub fn matches(&self, resource: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(exact) => **exact == *resource,
            Self::Subtree(prefix) => {
                resource.len() > prefix.len() && resource.starts_with(&**prefix)
            }
        }
    }

    /// The resources matched by both patterns, if any: used to say where an
    /// effective permission applies (binding scope ∩ grant resource).
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        match (self, other) {
            (Self::Any, p) | (p, Self::Any) => Some(p.clone()),
            (Self::Exact(a), p) | (p, Self::Exact(a)) => {
                p.matches(a).then(|| Self::Exact(a.clone()))
            }
            (Self::Subtree(a), Self::Subtree(b)) => {
                if a.starts_with(&**b) {
                    Some(self.clone())
                } else if b.starts_with(&**a) {
                    Some(other.clone())
                } else {
                    None
                }
            }
        }
    }
}

impl std::fmt::Display for ResourcePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Exact(exact) => f.write_str(exact),
            Self::Subtree(prefix) => write!(f, "{prefix}*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1024;

    #[test]
    fn action_wildcards_match_by_type_or_verb() {
        let by_type = ActionPattern::parse("document:*", MAX).unwrap();
        assert!(by_type.matches("document:read"));
        assert!(!by_type.matches("project:read"));
        assert!(!by_type.matches("document"));
        let by_verb = ActionPattern::parse("*:read", MAX).unwrap();
        assert!(by_verb.matches("project:read"));
        assert!(!by_verb.matches("read"));
        assert_eq!(
            ActionPattern::parse("*:*", MAX).unwrap(),
            ActionPattern::Any
        );
        assert!(ActionPattern::parse("read", MAX).unwrap().matches("read"));
    }

    #[test]
    fn rejects_malformed_action_patterns() {
        for bad in [
            "doc*:read",
            "document:re*",
            ":read",
            "document:",
            "re*d",
            "**",
        ] {
            assert!(
                matches!(
                    ActionPattern::parse(bad, MAX),
                    Err(AuthzError::MalformedPattern { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            ActionPattern::parse("", MAX),
            Err(AuthzError::EmptyName { what: "action" })
        );
    }

    #[test]
    fn subtree_pattern_matches_descendants_only() {
        let tree = ResourcePattern::parse("project/42/*", MAX).unwrap();
        assert!(tree.matches("project/42/doc/7"));
        assert!(tree.matches("project/42/x"));
        assert!(!tree.matches("project/42"));
        assert!(!tree.matches("project/42/"));
        assert!(!tree.matches("project/420/x"));
    }

    #[test]
    fn rejects_malformed_resource_patterns() {
        for bad in ["/*", "project/*/doc", "proj*", "a/*/*"] {
            assert!(
                matches!(
                    ResourcePattern::parse(bad, MAX),
                    Err(AuthzError::MalformedPattern { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            ResourcePattern::parse(&"x".repeat(MAX + 1), MAX),
            Err(AuthzError::InvalidName { .. })
        ));
        assert!(matches!(
            ResourcePattern::parse("a\nb", MAX),
            Err(AuthzError::InvalidName { .. })
        ));
    }

    #[test]
    fn intersection_of_scope_and_grant_resource() {
        let p = |s| ResourcePattern::parse(s, MAX).unwrap();
        assert_eq!(
            p("project/42/*").intersect(&p("*")),
            Some(p("project/42/*"))
        );
        assert_eq!(
            p("project/*").intersect(&p("project/42/*")),
            Some(p("project/42/*"))
        );
        assert_eq!(
            p("project/42/*").intersect(&p("project/42/doc")),
            Some(p("project/42/doc"))
        );
        assert_eq!(p("project/42/*").intersect(&p("project/7/*")), None);
        assert_eq!(p("project/42").intersect(&p("project/42/*")), None);
    }
}
