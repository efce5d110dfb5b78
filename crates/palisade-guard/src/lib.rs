//! Request protection: rate limiting (GCRA, sliding and fixed windows, in
//! process or shared through Redis, degrading to per-instance shares when Redis
//! is down) and CSRF tokens and policy. Knows nothing about HTTP; the tower
//! layers and routes live in `palisade-http`.

pub mod anomaly;
pub mod csrf;
mod error;
pub mod inspect;
pub mod ratelimit;
pub mod reputation;
pub mod threats;

pub use error::GuardError;
