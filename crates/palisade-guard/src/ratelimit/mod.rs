//! Rate limiting: what a limit is, what a check answers, and the limiters that
//! enforce limits in process ([`LocalLimiter`]) or across instances through
//! Redis.
//!
//! Three algorithms, all with costs (a check may take N units):
//! - **GCRA** (generic cell rate algorithm): a token bucket refilled
//!   continuously at `limit / period`, holding at most `burst` units. Exact,
//!   one number of state per key.
//! - **Sliding window**: a weighted two-window counter. The previous window's
//!   count is weighted by the share of it still inside the sliding window, as
//!   if its requests had been spread evenly. Two counters of state per key;
//!   the error bound is documented on [`Algorithm::SlidingWindow`].
//! - **Fixed window**: a counter per calendar window of `period`. Cheapest,
//!   but lets through up to twice the limit across a window edge.

mod algorithm;
mod limiter;
mod local;
mod outcomes;
mod redis;
mod rules;
mod store;
mod sync;
mod tighten;

pub use limiter::{
    BlockReport, BlockReporter, Checked, MAX_INLINE_LIMITS, MAX_KEY_BYTES, RateLimiter,
    RateLimiterSettings, rules_from_specs,
};
pub use local::{LocalLimiter, StoredKey};
pub use redis::{RedisLimiter, script_source};
pub use rules::{AdaptiveSpec, KeySource, LimitSpec, Rule, RuleOrigin, RuleSpec};
pub use store::RuleStore;
pub use sync::RuleSync;
pub use tighten::{MAX_TIGHTEN_FACTOR, Tightening, Tightenings};

use crate::GuardError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The largest `limit` (and `burst`) accepted: a billion units per period.
/// Larger numbers are not rate limits, and keeping counts under 2^32 lets a
/// window's index and count share one atomic word.
pub const MAX_LIMIT: u64 = 1_000_000_000;

/// The shortest period accepted.
pub const MIN_PERIOD: Duration = Duration::from_millis(1);

/// The longest period accepted: a year (366 days), enough for yearly quotas.
pub const MAX_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);

/// How a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Token bucket refilled continuously (GCRA): `limit` units per `period`,
    /// at most `burst` at once. The default: smooth and exact.
    Gcra,
    /// Weighted two-window counter: at time `t` in window `w`, the count is
    /// `count(w-1) * (1 - elapsed(t)/period) + count(w)`.
    ///
    /// It is exact when the previous window's traffic was evenly spread. Its
    /// worst case is traffic bunched at the end of the previous window: the
    /// estimate then under-counts by up to `count(w-1) * elapsed/period`, so
    /// a sliding window of exactly `period` can see up to about twice the limit
    /// under adversarial timing. On random (Poisson) traffic offered at about
    /// the limit, the worst span of one period admitted 1.5x the limit at a
    /// limit of 10, 1.15x at 100 and 1.05x at 1,000: the error is statistical
    /// and shrinks as the limit grows (measured against an exact sliding log
    /// in `local.rs`'s tests; see BENCHMARKS.md). Prefer GCRA for small limits.
    SlidingWindow,
    /// A counter per window `[k*period, (k+1)*period)`. Up to `2 * limit` can
    /// pass within one period across a window edge.
    FixedWindow,
}

impl Algorithm {
    /// The name used in configuration, the API and Redis keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gcra => "gcra",
            Self::SlidingWindow => "sliding_window",
            Self::FixedWindow => "fixed_window",
        }
    }
}

/// A quota: `limit` units per `period`, counted by `algorithm`. Validated on
/// construction, so a `Limit` in hand is always usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    algorithm: Algorithm,
    limit: u64,
    period: Duration,
    burst: u64,
}

impl Limit {
    /// `limit` units per `period`. For GCRA the burst defaults to `limit`
    /// (a full period's worth may be spent at once).
    pub fn new(algorithm: Algorithm, limit: u64, period: Duration) -> Result<Self, GuardError> {
        if limit == 0 || limit > MAX_LIMIT {
            return Err(GuardError::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        if period < MIN_PERIOD || period > MAX_PERIOD {
            return Err(GuardError::invalid(
                "period_ms",
                format!(
                    "must be between {} and {} milliseconds",
                    MIN_PERIOD.as_millis(),
                    MAX_PERIOD.as_millis()
                ),
            ));
        }
        Ok(Self {
            algorithm,
            limit,
            period,
            burst: limit,
        })
    }

    /// The same limit with a GCRA burst: the most units spendable at once.
    /// Only GCRA has a burst; the windows' capacity is always `limit`.
    pub fn with_burst(mut self, burst: u64) -> Result<Self, GuardError> {
        if self.algorithm != Algorithm::Gcra && burst != self.limit {
            return Err(GuardError::invalid(
                "burst",
                "only the gcra algorithm has a burst",
            ));
        }
        if burst == 0 || burst > MAX_LIMIT {
            return Err(GuardError::invalid(
                "burst",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        self.burst = burst;
        Ok(self)
    }

    /// The share of this limit one of `instances` instances enforces on its
    /// own while the shared store is unreachable: `ceil(limit / instances)`
    /// (and the same for the burst), never less than 1.
    pub fn share(&self, instances: u32) -> Self {
        let instances = u64::from(instances.max(1));
        Self {
            limit: self.limit.div_ceil(instances).max(1),
            burst: self.burst.div_ceil(instances).max(1),
            ..*self
        }
    }

    /// How this limit counts.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Units allowed per period.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The most units a single check, or a burst of checks, can take at once:
    /// the burst for GCRA, the limit for the windows.
    pub fn capacity(&self) -> u64 {
        match self.algorithm {
            Algorithm::Gcra => self.burst,
            Algorithm::SlidingWindow | Algorithm::FixedWindow => self.limit,
        }
    }

    /// Fails unless `cost` units could ever pass this limit.
    pub fn check_cost(&self, cost: u64) -> Result<(), GuardError> {
        if cost == 0 {
            return Err(GuardError::invalid("cost", "must be at least 1"));
        }
        if cost > self.capacity() {
            return Err(GuardError::CostExceedsCapacity {
                cost,
                capacity: self.capacity(),
            });
        }
        Ok(())
    }
}

/// The answer to one check.
///
/// A denied check consumes nothing. The fields map onto the IETF `RateLimit`
/// headers and the JSON of `POST /v1/ratelimit/check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the units were granted (and consumed).
    pub allowed: bool,
    /// The limit's units per period.
    pub limit: u64,
    /// Units that could still be taken right now, after this check.
    pub remaining: u64,
    /// Time until the key is back to its full capacity if nothing more is
    /// taken (GCRA: until the bucket is full; windows: until the counts that
    /// matter have expired).
    pub reset_after: Duration,
    /// When denied, the shortest wait after which the same check can pass;
    /// zero when allowed.
    pub retry_after: Duration,
}
