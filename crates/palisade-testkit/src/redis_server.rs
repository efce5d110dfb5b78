//! Throwaway `redis-server` processes: a single server, a Sentinel deployment
//! and a Cluster.
//!
//! The shared test Redis (see [`crate::redis`]) covers most tests; these
//! fixtures are for tests that need a topology CI does not provide, or that
//! stop, fail over or otherwise disturb the server. Each fixture runs its
//! processes on free loopback ports in its own temporary directory, returns
//! only once they answer, and kills them and removes the directory when
//! dropped. Every wait is bounded; a missing `redis-server` is reported as
//! [`TestkitError::MissingProgram`].

mod cluster;
mod process;
mod sentinel;

use std::net::SocketAddr;

pub use cluster::RedisCluster;
pub use sentinel::RedisSentinel;

use crate::TestkitError;
use process::{Mode, Ports, ServerProcess};

/// One standalone `redis-server` without persistence.
#[derive(Debug)]
pub struct RedisServer {
    // Fields drop in order: the process must die before its directory goes.
    process: ServerProcess,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers PING.
    pub async fn start() -> Result<Self, TestkitError> {
        Self::start_with_config("").await
    }

    /// Like [`start`](Self::start), with `extra_config` (redis.conf lines, such
    /// as `maxmemory 1mb`) appended to the fixture's own config.
    ///
    /// The readiness check sends an unauthenticated PING, so settings that
    /// make it fail (`requirepass`, TLS-only ports) end in a timeout; set
    /// those with `CONFIG SET` after start instead.
    pub async fn start_with_config(extra_config: &str) -> Result<Self, TestkitError> {
        let dir = temp_dir("palisade-redis-")?;
        let process = process::spawn(
            dir.path(),
            "server",
            Mode::Server,
            Ports::Client,
            |port, home| format!("{}{extra_config}\n", process::base_config(port, home)),
        )
        .await?;
        Ok(Self { process, _dir: dir })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.process.addr()
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// A `redis://` URL for the server.
    pub fn url(&self) -> String {
        process::url(self.addr())
    }
}

fn temp_dir(prefix: &str) -> Result<tempfile::TempDir, TestkitError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| TestkitError::io("create temp dir for redis-server", e))
}
