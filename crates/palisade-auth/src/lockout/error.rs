//! Why an attempt is refused, and why lockout cannot be set up.

use std::fmt;
use std::time::Duration;

/// Which count blocked an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockScope {
    /// The account's failures, from every client.
    Account,
    /// The client address's failures, against every account.
    Client,
}

impl LockScope {
    /// A stable lowercase name, for events, audit metadata and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Client => "client",
        }
    }
}

/// An attempt refused because earlier failures blocked it. Answer it without
/// checking the password (HTTP: 429 with `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct Locked {
    /// How long until an attempt can be let in again.
    pub retry_after: Duration,
    /// Which count blocked it (the one with the longer wait when both did).
    pub scope: LockScope,
    /// Whether the count has reached `lockout_after` (a lockout) rather than
    /// being in a backoff delay.
    pub lockout: bool,
}

impl Locked {
    /// `retry_after` in whole seconds, rounded up and at least 1, as
    /// `Retry-After` needs.
    pub fn retry_after_secs(&self) -> u64 {
        u64::try_from(self.retry_after.as_millis().div_ceil(1000))
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

impl fmt::Display for Locked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.lockout {
            "locked out"
        } else {
            "delayed"
        };
        write!(
            f,
            "{} {what} after repeated failures; retry in {} s",
            self.scope.as_str(),
            self.retry_after_secs()
        )
    }
}

/// Why lockout could not be set up or an attempt could not be described.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockoutError {
    /// The policy's settings contradict each other or exceed the ceilings.
    #[error("invalid lockout policy: {0}")]
    InvalidPolicy(&'static str),
    /// The account name is empty (after normalisation), longer than
    /// [`super::MAX_ACCOUNT_BYTES`] or holds control characters.
    #[error("account must be 1 to {max} bytes, not only whitespace, without control characters", max = super::MAX_ACCOUNT_BYTES)]
    InvalidAccount,
    /// The secret to derive keys from is too short, or no key could be made.
    #[error("lockout keys: {0}")]
    Key(&'static str),
}

impl LockoutError {
    /// A stable, machine-readable name for the kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPolicy(_) => "lockout_policy_invalid",
            Self::InvalidAccount => "lockout_account_invalid",
            Self::Key(_) => "lockout_key",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        let locked = |ms| Locked {
            retry_after: Duration::from_millis(ms),
            scope: LockScope::Account,
            lockout: false,
        };
        assert_eq!(locked(0).retry_after_secs(), 1);
        assert_eq!(locked(1).retry_after_secs(), 1);
        assert_eq!(locked(1_000).retry_after_secs(), 1);
        assert_eq!(locked(1_001).retry_after_secs(), 2);
        assert_eq!(locked(900_000).retry_after_secs(), 900);
        assert_eq!(
            locked(2_500).to_string(),
            "account delayed after repeated failures; retry in 3 s"
        );
    }
}
