//! `[lockout]` in `palisade.toml`: brute-force protection of password
//! verification (`POST /v1/auth/passwords/verify` with `account` or
//! `client_ip`). Shared through Redis when `[redis]` is configured.

use crate::config::ConfigError;
use palisade_auth::lockout::{Lockout, LockoutKeys, LockoutPolicy, Thresholds};
use palisade_core::{Secret, SecurityEvents, SharedClock};
use palisade_store::Redis;
use serde::Deserialize;
use std::time::Duration;

/// `[lockout]`. The defaults are [`LockoutPolicy::default`]'s.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutConfig {
    /// Whether failures are counted at all. Off, every attempt is let in.
    pub enabled: bool,
    /// Failures of one account that cost nothing.
    pub account_free_failures: u32,
    /// The account failure that locks the account.
    pub account_lockout_after: u32,
    /// Failures from one client address (IPv6: one /64) that cost nothing.
    pub client_free_failures: u32,
    /// The failure from one address that locks the address.
    pub client_lockout_after: u32,
    /// Delay after the first failure past the free ones; doubles after each.
    pub backoff_base_ms: u64,
    /// Longest delay.
    pub backoff_cap_ms: u64,
    /// How long a lockout lasts.
    pub lockout_ms: u64,
    /// Failures are forgotten this long after the last one (and its delay).
    pub window_ms: u64,
    /// Most accounts and addresses each instance keeps counts for in
    /// process (all of them without Redis; its fallback copy with Redis).
    pub max_local_entries: usize,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        let policy = LockoutPolicy::default();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            enabled: true,
            account_free_failures: policy.account.free_failures,
            account_lockout_after: policy.account.lockout_after,
            client_free_failures: policy.client.free_failures,
            client_lockout_after: policy.client.lockout_after,
            backoff_base_ms: ms(policy.backoff_base),
            backoff_cap_ms: ms(policy.backoff_cap),
            lockout_ms: ms(policy.lockout_duration),
            window_ms: ms(policy.window),
            max_local_entries: Lockout::DEFAULT_LOCAL_CAPACITY,
        }
    }
}

impl LockoutConfig {
    /// The policy these settings describe.
    pub fn policy(&self) -> LockoutPolicy {
        LockoutPolicy {
            account: Thresholds {
                free_failures: self.account_free_failures,
                lockout_after: self.account_lockout_after,
            },
            client: Thresholds {
                free_failures: self.client_free_failures,
                lockout_after: self.client_lockout_after,
            },
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_cap: Duration::from_millis(self.backoff_cap_ms),
            lockout_duration: Duration::from_millis(self.lockout_ms),
            window: Duration::from_millis(self.window_ms),
        }
    }

    /// Checks the settings; errors name the section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.policy()
            .validate()
            .map_err(|e| invalid("lockout", &e.to_string()))?;
        if self.max_local_entries == 0 {
            return Err(invalid("lockout.max_local_entries", "must be at least 1"));
        }
        Ok(())
    }

    /// The lockout these settings describe, publishing to `events`. Its keys
    /// are derived from `secret` (`secrets.api_key_pepper`, by HKDF with
    /// lockout's own labels), so every instance with the same configuration
    /// names counts alike in the shared `redis`.
    pub fn lockout(
        &self,
        secret: &Secret,
        clock: SharedClock,
        redis: Option<Redis>,
        events: SecurityEvents,
    ) -> Result<Lockout, ConfigError> {
        if !self.enabled {
            return Ok(Lockout::disabled(clock, events));
        }
        let keys = LockoutKeys::derive_from(secret)
            .map_err(|e| invalid("secrets.api_key_pepper", &e.to_string()))?;
        let lockout = Lockout::new(self.policy(), keys, clock, events)
            .map_err(|e| invalid("lockout", &e.to_string()))?
            .with_local_capacity(self.max_local_entries);
        Ok(match redis {
            Some(redis) => lockout.with_redis(redis),
            None => lockout,
        })
    }
}

fn invalid(key: &str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::SystemClock;

    #[test]
    fn defaults_are_the_policy_defaults_and_build_an_enabled_lockout() {
        let config = LockoutConfig::default();
        config.validate().unwrap();
        assert_eq!(config.policy(), LockoutPolicy::default());
        let lockout = config
            .lockout(
                &Secret::new("p".repeat(32)),
                SystemClock::shared(),
                None,
                SecurityEvents::new(1),
            )
            .unwrap();
        assert!(lockout.is_enabled() && !lockout.is_shared());
    }

    #[test]
    fn contradictory_settings_name_the_section_and_off_means_off() {
        let bad: LockoutConfig =
            toml::from_str("account_free_failures = 10\naccount_lockout_after = 3\n").unwrap();
        let error = bad.validate().unwrap_err().to_string();
        assert!(error.contains("lockout"), "{error}");
        let off: LockoutConfig = toml::from_str("enabled = false\n").unwrap();
        let lockout = off
            .lockout(
                &Secret::new("p".repeat(32)),
                SystemClock::shared(),
                None,
                SecurityEvents::new(1),
            )
            .unwrap();
        assert!(!lockout.is_enabled());
        assert!(toml::from_str::<LockoutConfig>("lockout_after = 3\n").is_err());
    }
}
