//! Tower layers and middleware of the HTTP stack.

pub mod idempotency;
pub mod problems;
pub mod telemetry;
