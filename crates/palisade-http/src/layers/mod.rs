//! Tower layers and middleware of the HTTP stack.

pub mod authorize;
pub mod bearer;
pub mod cors;
pub mod csrf;
pub mod idempotency;
pub mod inspect;
pub mod problems;
pub mod rate_limit;
pub mod security_headers;
pub mod telemetry;
pub mod threat_block;
pub mod timeout;
