//! `[authz]` in `palisade.toml`: how decisions are cached and audited, and
//! how quickly policy changes made on other instances are picked up.

use crate::config::ConfigError;
use serde::Deserialize;
use std::time::Duration;

/// `[authz]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthzConfig {
    /// How often each instance compares its policy versions with the
    /// database's. With PostgreSQL a change also arrives at once by
    /// LISTEN/NOTIFY; this poll is what keeps an instance correct when that
    /// connection is lost, so it bounds how long a stale decision can live.
    pub refresh_ms: u64,
    /// Most decisions kept in the in-process decision cache.
    pub cache_max_entries: u64,
    /// Longest a cached decision is kept. A policy change makes cached
    /// decisions of the old version unreachable at once regardless.
    pub cache_ttl_ms: u64,
    /// Share of allowed decisions written to the audit log (denied ones always
    /// are): 0.0 to 1.0.
    pub audit_allowed_ratio: f64,
}

impl Default for AuthzConfig {
    fn default() -> Self {
        Self {
            refresh_ms: 250,
            cache_max_entries: 100_000,
            cache_ttl_ms: 60_000,
            audit_allowed_ratio: 0.0,
        }
    }
}

impl AuthzConfig {
    /// Checks the settings; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        };
        if !(10..=1_000).contains(&self.refresh_ms) {
            return Err(invalid(
                "authz.refresh_ms",
                "must be between 10 and 1000, so a change reaches every instance within a second",
            ));
        }
        if self.cache_ttl_ms == 0 {
            return Err(invalid("authz.cache_ttl_ms", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.audit_allowed_ratio) {
            return Err(invalid(
                "authz.audit_allowed_ratio",
                "must be between 0.0 and 1.0",
            ));
        }
        Ok(())
    }

    /// The version poll interval.
    pub fn refresh(&self) -> Duration {
        Duration::from_millis(self.refresh_ms)
    }

    /// The decision cache's time to live.
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_millis(self.cache_ttl_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_the_key() {
        AuthzConfig::default().validate().unwrap();
        for (text, key) in [
            ("refresh_ms = 5000", "authz.refresh_ms"),
            ("cache_ttl_ms = 0", "authz.cache_ttl_ms"),
            ("audit_allowed_ratio = 1.5", "authz.audit_allowed_ratio"),
        ] {
            let config: AuthzConfig = toml::from_str(text).unwrap();
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
    }
}
