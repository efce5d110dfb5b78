//! Route handlers, one module per area.

pub mod api_keys;
pub mod audit;
pub mod audit_export;
pub mod audit_stream;
pub mod authz;
mod changes;
pub mod crypto;
pub mod csrf;
pub mod health;
pub mod inspect;
pub mod passwords;
pub mod ratelimit;
pub mod threats;
pub mod tokens;
