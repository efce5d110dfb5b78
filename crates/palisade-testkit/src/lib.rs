//! Test-only support for Palisade's integration tests.
//!
//! - [`postgres::TestDatabase`]: a fresh, uniquely named schema on the test
//!   PostgreSQL server, dropped with the value.
//! - [`PostgresServer`]: a throwaway TLS-enabled PostgreSQL server.
//! - [`redis::redis_url`] and [`redis::unique_prefix`]: the shared test Redis
//!   and a key prefix no other test uses.
//! - [`redis_server`]: throwaway `redis-server` processes (single, Sentinel,
//!   Cluster) for tests that need a topology or must disturb the server.
//! - [`fault_proxy::FaultProxy`]: a TCP proxy that cuts, blackholes or slows
//!   the link to a real server.
//! - [`MotoServer`]: a throwaway `moto_server` (AWS emulator) for AWS KMS.
//! - [`OpenBaoServer`]: a throwaway `bao server -dev` with Transit enabled.
//! - [`ManualClock`]: time that moves only when the test says so.
//! - [`within`] and [`eventually`]: bounded waits that panic with what they
//!   waited for, so no test hangs.
//!
//! Servers come from `PALISADE_TEST_DATABASE_URL` and
//! `PALISADE_TEST_REDIS_URL` (defaults: the local CI services); `scripts/test`
//! starts throwaway ones when nothing listens there. Every wait in this crate is
//! bounded and fails with a message saying what it waited for.

mod child;
pub mod error;
pub mod fault_proxy;
pub mod moto;
pub mod openbao;
pub mod postgres;
pub mod postgres_server;
pub mod redis;
pub mod redis_server;
pub mod tls;
pub mod wait;

pub use error::TestkitError;
pub use fault_proxy::FaultProxy;
pub use moto::MotoServer;
pub use openbao::OpenBaoServer;
/// Re-exported so tests need not depend on `palisade-core` just for time control.
pub use palisade_core::clock::ManualClock;
pub use postgres::TestDatabase;
pub use postgres_server::PostgresServer;
pub use redis_server::{RedisCluster, RedisSentinel, RedisServer};
pub use wait::{eventually, within};
