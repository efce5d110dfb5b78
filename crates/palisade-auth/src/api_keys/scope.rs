//! What an API key may do.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// One permission of an API key, `capability:level` (`audit:write`) or `admin`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);

impl Scope {
    /// Every scope: manage keys, read and write everything, in any tenant.
    pub const ADMIN: &'static str = "admin";
    /// Append audit events.
    pub const AUDIT_WRITE: &'static str = "audit:write";
    /// Read, query, stream and export the audit log.
    pub const AUDIT_READ: &'static str = "audit:read";
    /// See the personal data (`pii`) of audit events decrypted; without it readers
    /// get `{"redacted": true}`. Only useful with `audit:read`.
    pub const AUDIT_PII: &'static str = "audit:pii";

    /// The scopes this build knows. Unknown scopes are rejected so a typo never
    /// silently grants nothing (or, worse, is read differently by a later version).
    pub const KNOWN: &'static [&'static str] = &[
        Self::ADMIN,
        Self::AUDIT_WRITE,
        Self::AUDIT_READ,
        Self::AUDIT_PII,
        "authz:admin",
        "authz:check",
        "auth:admin",
        "auth:issue",
        "auth:verify",
        "crypto:admin",
        "crypto:use",
        "guard:admin",
        "guard:check",
        "compliance:admin",
    ];

    /// Parses a known scope.
    pub fn parse(raw: &str) -> Result<Self, UnknownScope> {
        if Self::KNOWN.contains(&raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(UnknownScope(raw.chars().take(64).collect()))
        }
    }

    /// The scope as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Scope {
    type Error = UnknownScope;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Scope> for String {
    fn from(scope: Scope) -> Self {
        scope.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A scope name this build does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}")]
pub struct UnknownScope(pub String);

/// The set of scopes a key carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// Parses a list of scope names.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, UnknownScope> {
        names
            .into_iter()
            .map(Scope::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Only `admin`.
    pub fn admin() -> Self {
        Self(BTreeSet::from([Scope(Scope::ADMIN.to_owned())]))
    }

    /// Whether the key may do what `required` names; `admin` allows everything.
    pub fn allows(&self, required: &str) -> bool {
        self.0
            .iter()
            .any(|s| s.as_str() == required || s.as_str() == Scope::ADMIN)
    }

    /// Whether this is an admin key (may act in any tenant and manage keys).
    pub fn is_admin(&self) -> bool {
        self.allows(Scope::ADMIN)
    }

    /// The scopes in order.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// Space-separated, as stored.
    pub fn to_stored(&self) -> String {
        self.0
            .iter()
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Reads the stored form; unknown names (from a newer version) are dropped, never widened.
    pub fn from_stored(stored: &str) -> Self {
        Self(
            stored
                .split_whitespace()
                .filter_map(|s| Scope::parse(s).ok())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_allows_everything_and_others_only_themselves() {
        let admin = Scopes::admin();
        assert!(admin.allows("audit:read") && admin.is_admin());
        let writer = Scopes::parse(["audit:write"]).unwrap_or_default();
        assert!(writer.allows("audit:write"));
        assert!(!writer.allows("audit:read"));
        assert!(!writer.is_admin());
    }

    #[test]
    fn rejects_unknown_scopes() {
        assert!(Scopes::parse(["audit:write", "audit:wrte"]).is_err());
    }

    #[test]
    fn stored_form_round_trips_and_drops_unknown_names() {
        let scopes = Scopes::parse(["audit:write", "audit:read"]).unwrap_or_default();
        assert_eq!(Scopes::from_stored(&scopes.to_stored()), scopes);
        assert_eq!(
            Scopes::from_stored("audit:read future:thing").to_stored(),
            "audit:read"
        );
    }
}
