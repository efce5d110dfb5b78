//! What request protection can fail with.

/// Errors of `palisade-guard`, each one a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// A limit, rule or request argument is out of range or malformed. The
    /// message names the field; over HTTP this is a 422.
    #[error("{field}: {reason}")]
    Invalid {
        /// The offending field (`limit`, `period_ms`, `cost`, `key`, ...).
        field: &'static str,
        /// What is wrong with it, never echoing a secret.
        reason: String,
    },
    /// The check costs more units than the limit can ever hold, so waiting can
    /// never make it pass. Over HTTP this is a 422, not a 429.
    #[error("cost {cost} exceeds the capacity {capacity} of this limit")]
    CostExceedsCapacity {
        /// The units asked for.
        cost: u64,
        /// The most units this limit allows at once.
        capacity: u64,
    },
    /// No rule has this name.
    #[error("no rate-limit rule named {0:?}")]
    UnknownRule(String),
    /// The in-process limiter tracks its maximum number of keys, all of them
    /// active, so a new key cannot be tracked. Fails closed: the request is
    /// treated as limited.
    #[error("the rate limiter tracks its maximum of {0} active keys")]
    Full(usize),
    /// The rule store failed: a bad row or statement.
    #[error("rule store: {0}")]
    Store(String),
    /// The rule store's database is unreachable; trying again later may work
    /// (over HTTP a 503 with `Retry-After`).
    #[error("rule store unavailable: {0}")]
    StoreUnavailable(String),
    /// The system's cryptography failed (no random bytes): nothing a caller
    /// did wrong, and nothing to retry at once.
    #[error("cryptography: {0}")]
    Crypto(&'static str),
}

impl GuardError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
