//! Storage plumbing shared by every domain crate: PostgreSQL and SQLite pools,
//! the embedded migrations, and the Redis connection. Domain crates own their
//! tables and queries; this crate only hands them healthy, guarded connections.

mod config;
mod database;
mod error;
pub mod idempotency;
pub mod migrate;
pub mod notify;
mod on_primary;
mod postgres;
mod sqlite;

pub use config::DatabaseConfig;
pub use database::{Backend, Database, DatabaseHealth};
pub use error::StoreError;
pub use postgres::PostgresDb;
pub use sqlite::SqliteDb;

/// Re-exported so domain crates use the same sqlx as the pools.
pub use sqlx;

mod redis;
pub use self::redis::{Redis, RedisConfig, RedisError, RedisHealth, RedisMode};
