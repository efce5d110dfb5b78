//! Palisade's foundation: clocks, ids, principals, error kinds, resilience
//! (circuit breaker, retry, timeout) and the health registry. No I/O of its own.

pub mod clock;
pub mod health;
pub mod id;
pub mod principal;
pub mod resilience;
pub mod secret;
pub mod security_event;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use id::new_id;
pub use secret::Secret;
pub use security_event::{SecurityEvent, SecurityEventKind, SecurityEvents};
