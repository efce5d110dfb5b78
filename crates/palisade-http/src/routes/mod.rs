//! Route handlers, one module per area.

pub mod api_keys;
pub mod audit;
pub mod health;
