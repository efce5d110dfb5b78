//! The numbers of brute-force protection: how many failures are free, how the
//! delay after each further failure grows, when a lockout starts, how long it
//! lasts and when failures are forgotten.
//!
//! The arithmetic here is the only arithmetic: the in-process backend calls it,
//! and the Redis scripts mirror it line for line in milliseconds (doubles in
//! Lua are exact far beyond the 30-day ceilings below).

use super::LockoutError;
use serde::Deserialize;
use std::time::Duration;

/// Longest lockout, backoff cap or forgetting window accepted: 30 days.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Highest `lockout_after` accepted. Counts are bounded by it in practice
/// (a locked key is refused before it can fail again), so it bounds state too.
pub const MAX_LOCKOUT_AFTER: u32 = 10_000;

/// When failures of one key (an account, or a client address) start to cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Failures that cost nothing: typos.
    pub free_failures: u32,
    /// The failure that starts a lockout instead of a backoff delay; every
    /// failure after it (within the window) renews the lockout.
    pub lockout_after: u32,
}

/// What one failure costs the key it was counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Penalty {
    /// Still within the free failures.
    None,
    /// Further attempts wait this long.
    Backoff(Duration),
    /// The key is locked out for this long.
    Lockout(Duration),
}

impl Penalty {
    /// How long further attempts are refused.
    pub fn duration(self) -> Duration {
        match self {
            Self::None => Duration::ZERO,
            Self::Backoff(d) | Self::Lockout(d) => d,
        }
    }
}

/// Brute-force protection settings. Accounts and client addresses have their
/// own thresholds; backoff, lockout length and window are shared.
///
/// With the defaults, an account's 6th to 9th consecutive failures make the
/// next attempt wait 1, 2, 4 and 8 s, the 10th locks it for 15 minutes, and
/// each failure after that (until an hour has passed without one) locks it
/// again. A client address gets 20 free failures (many users can share one
/// address behind NAT) and is locked at the 100th.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures against one account, from any address.
    pub account: Thresholds,
    /// Failures from one client address (an IPv4 address or an IPv6 /64),
    /// against any account.
    pub client: Thresholds,
    /// The delay after the first failure past the free ones; it doubles with
    /// each further failure.
    pub backoff_base: Duration,
    /// The longest backoff delay.
    pub backoff_cap: Duration,
    /// How long a lockout lasts.
    pub lockout_duration: Duration,
    /// Failures are forgotten once this long has passed since the key's last
    /// failure and its last delay or lockout ended.
    pub window: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            account: Thresholds {
                free_failures: 5,
                lockout_after: 10,
            },
            client: Thresholds {
                free_failures: 20,
                lockout_after: 100,
            },
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(5 * 60),
            lockout_duration: Duration::from_secs(15 * 60),
            window: Duration::from_secs(3600),
        }
    }
}

impl LockoutPolicy {
    /// Checks the settings against each other and the ceilings.
    pub fn validate(&self) -> Result<(), LockoutError> {
        let invalid = |why| Err(LockoutError::InvalidPolicy(why));
        for t in [self.account, self.client] {
            if t.lockout_after == 0 || t.lockout_after > MAX_LOCKOUT_AFTER {
                return invalid("lockout_after must be between 1 and 10000");
            }
            if t.free_failures >= t.lockout_after {
                return invalid("free_failures must be less than lockout_after");
            }
        }
        if self.backoff_base < Duration::from_millis(1) {
            return invalid("backoff_base must be at least 1 ms");
        }
        if self.backoff_cap < self.backoff_base {
            return invalid("backoff_cap must be at least backoff_base");
        }
        if self.lockout_duration < self.backoff_cap {
            return invalid("lockout_duration must be at least backoff_cap");
        }
        if self.window < Duration::from_secs(1) {
            return invalid("window must be at least 1 s");
        }
        if self.lockout_duration > MAX_DURATION || self.window > MAX_DURATION {
            return invalid("lockout_duration and window must be at most 30 days");
        }
        Ok(())
    }

    /// What failure number `failures` (1 for the first) of a key with
    /// `thresholds` costs.
    pub fn penalty(&self, thresholds: Thresholds, failures: u32) -> Penalty {
        if failures >= thresholds.lockout_after {
            Penalty::Lockout(self.lockout_duration)
        } else if failures > thresholds.free_failures {
            let doublings = failures - thresholds.free_failures - 1;
            let factor = 1u64.checked_shl(doublings).unwrap_or(u64::MAX);
            let delay = ms(self.backoff_base).saturating_mul(factor);
            Penalty::Backoff(Duration::from_millis(delay.min(ms(self.backoff_cap))))
        } else {
            Penalty::None
        }
    }

    /// The arguments the Redis failure script takes for `thresholds`, in its
    /// order: free failures, lockout after, base, cap, lockout, window (ms).
    pub(crate) fn script_args(&self, thresholds: Thresholds) -> [u64; 6] {
        [
            u64::from(thresholds.free_failures),
            u64::from(thresholds.lockout_after),
            ms(self.backoff_base),
            ms(self.backoff_cap),
            ms(self.lockout_duration),
            ms(self.window),
        ]
    }
}

/// Whole milliseconds, saturating (durations are validated far below that).
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: Thresholds = Thresholds {
        free_failures: 3,
        lockout_after: 8,
    };

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            account: ACCOUNT,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(3),
            lockout_duration: Duration::from_secs(60),
            ..LockoutPolicy::default()
        }
    }

    #[test]
    fn free_failures_cost_nothing_then_the_delay_doubles_up_to_the_cap() {
        let p = policy();
        let delays: Vec<Penalty> = (1..=7).map(|n| p.penalty(ACCOUNT, n)).collect();
        let backoff = |ms| Penalty::Backoff(Duration::from_millis(ms));
        assert_eq!(
            delays,
            [
                Penalty::None,
                Penalty::None,
                Penalty::None,
                backoff(500),
                backoff(1_000),
                backoff(2_000),
                backoff(3_000),
            ]
        );
    }

    #[test]
    fn the_lockout_failure_and_every_later_one_lock_for_the_lockout_duration() {
        let p = policy();
        for n in [8, 9, 500, u32::MAX] {
            assert_eq!(
                p.penalty(ACCOUNT, n),
                Penalty::Lockout(Duration::from_secs(60))
            );
        }
    }

    #[test]
    fn huge_doubling_counts_saturate_at_the_cap() {
        let p = LockoutPolicy {
            account: Thresholds {
                free_failures: 0,
                lockout_after: MAX_LOCKOUT_AFTER,
            },
            ..policy()
        };
        for n in [63, 64, 65, 200, 9_999] {
            assert_eq!(
                p.penalty(p.account, n),
                Penalty::Backoff(Duration::from_secs(3)),
                "{n}"
            );
        }
    }

    #[test]
    fn defaults_are_valid_and_inconsistent_settings_are_refused() {
        LockoutPolicy::default()
            .validate()
            .unwrap_or_else(|e| panic!("{e}"));
        let bad = [
            LockoutPolicy {
                account: Thresholds {
                    free_failures: 10,
                    lockout_after: 10,
                },
                ..LockoutPolicy::default()
            },
            LockoutPolicy {
                client: Thresholds {
                    free_failures: 0,
                    lockout_after: 0,
                },
                ..LockoutPolicy::default()
            },
            LockoutPolicy {
                backoff_base: Duration::ZERO,
                ..LockoutPolicy::default()
            },
            LockoutPolicy {
                backoff_cap: Duration::from_millis(10),
                ..LockoutPolicy::default()
            },
            LockoutPolicy {
                lockout_duration: Duration::from_secs(1),
                ..LockoutPolicy::default()
            },
            LockoutPolicy {
                window: Duration::from_millis(10),
                ..LockoutPolicy::default()
            },
            LockoutPolicy {
                lockout_duration: MAX_DURATION + Duration::from_secs(1),
                ..LockoutPolicy::default()
            },
        ];
        for policy in bad {
            assert!(
                matches!(policy.validate(), Err(LockoutError::InvalidPolicy(_))),
                "{policy:?}"
            );
        }
    }
}
