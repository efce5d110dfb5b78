//! The in-process limiter (to be written).

use super::Limit;

/// Enforces one [`Limit`] per key in process.
#[derive(Debug)]
pub struct LocalLimiter {
    limit: Limit,
}
