//! `[passwords]` in `palisade.toml`: the password policy and how much hashing
//! may run at once.

use crate::config::ConfigError;
use palisade_auth::passwords::{PasswordPolicy, Passwords};
use serde::Deserialize;
use std::time::Duration;

/// `[passwords]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordsConfig {
    /// Lengths and argon2id cost (`min_chars`, `max_chars`, `argon2.memory_kib`,
    /// `argon2.iterations`, `argon2.parallelism`); OWASP's parameters by default.
    pub policy: PasswordPolicy,
    /// Hashes running at once; 0 means one less than the CPUs (at least 1), so
    /// a core stays free for everything else.
    pub max_concurrent: usize,
    /// Longest a request waits for a hashing slot before a 503.
    pub wait_timeout_ms: u64,
    /// Most requests waiting for a slot before new ones get a 503 at once.
    pub max_waiting: usize,
}

impl Default for PasswordsConfig {
    fn default() -> Self {
        Self {
            policy: PasswordPolicy::default(),
            max_concurrent: 0,
            wait_timeout_ms: 5_000,
            max_waiting: 1_000,
        }
    }
}

impl PasswordsConfig {
    /// Checks the policy; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.policy.validate().map_err(|e| ConfigError::Invalid {
            key: "passwords.policy".into(),
            message: e.to_string(),
        })?;
        if self.wait_timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                key: "passwords.wait_timeout_ms".into(),
                message: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// The hasher these settings describe.
    pub fn passwords(&self) -> Result<Passwords, ConfigError> {
        let slots = match self.max_concurrent {
            0 => Passwords::default_concurrency(),
            n => n,
        };
        Passwords::new(self.policy.clone(), slots)
            .map(|p| {
                p.with_wait_timeout(Duration::from_millis(self.wait_timeout_ms))
                    .with_max_waiting(self.max_waiting)
            })
            .map_err(|e| ConfigError::Invalid {
                key: "passwords".into(),
                message: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_build_and_a_weak_policy_names_the_key() {
        let config = PasswordsConfig::default();
        config.validate().unwrap();
        config.passwords().unwrap();
        let weak: PasswordsConfig =
            toml::from_str("[policy.argon2]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n")
                .unwrap();
        let error = weak.validate().unwrap_err().to_string();
        assert!(error.contains("passwords.policy"), "{error}");
    }
}
