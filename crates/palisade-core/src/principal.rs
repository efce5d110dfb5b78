//! Who is calling: the principal behind a request and the tenant it acts in.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A tenant identifier (a customer, an environment: whatever a deployment isolates by).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// The tenant used when a deployment has only one.
    pub const DEFAULT: &'static str = "default";

    /// Validates and wraps a tenant id: 1 to 64 characters of `[A-Za-z0-9._-]`.
    pub fn parse(raw: &str) -> Result<Self, InvalidTenant> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidTenant)
        }
    }

    /// The default tenant.
    pub fn default_tenant() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant id that is empty, too long or has characters outside `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("tenant ids are 1 to 64 characters of letters, digits, '.', '_' or '-'")]
pub struct InvalidTenant;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_simple_tenant_ids_and_rejects_others() {
        assert!(TenantId::parse("acme-prod.eu_1").is_ok());
        for bad in ["", "a b", "x/y", "ü", &"a".repeat(65)] {
            assert_eq!(TenantId::parse(bad), Err(InvalidTenant), "{bad:?}");
        }
    }
}
